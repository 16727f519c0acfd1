"""The Core ML frontend: ML Program models (``.mlpackage``, ``.mlmodel`` with an
``mlProgram``, in-memory specs and ``MLModel`` objects) -> IR graph.

    graph = mlprogram_frontend("model.mlpackage", options={"function_name": "main"})

Reading never imports coremltools (its converters import TensorFlow): the
protobuf classes come from :mod:`kcc.coreml.proto`. Modules: ``package`` finds
the spec and the weights directory, ``blob`` reads ``weight.bin``,
``mil_values`` turns MIL types and values into IR types and numpy arrays,
``mlprogram`` walks the MIL function, the ``mil_ops_*`` modules fill the
table from MIL op type to handler (``mil_registry.MIL_OPS``), and
``mlprogram_run`` runs a program through the IR interpreter for
``kcc.coreml.predict`` / ``kcc run``.

NeuralNetwork models (``neuralNetwork``, ``neuralNetworkClassifier``,
``neuralNetworkRegressor`` and pipelines of them) go through
``neuralnetwork_frontend``: ``neuralnetwork`` walks the layers, the ``nn_*``
modules fill the table from layer type to handler (``nn_context.NN_LAYERS``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kcc.errors import ModelFileError
from kcc.frontends.coreml.mil_registry import MIL_OPS, mil_op, supported_mil_ops
from kcc.frontends.coreml.mlprogram import OPSETS, import_mlprogram
from kcc.frontends.coreml.package import is_coreml_object, is_coreml_path, load_source
from kcc.ir import Graph


def load_mlprogram(source: Any, options: dict[str, Any] | None = None) -> Graph:
    """The IR graph of an ML Program source (see the module docstring)."""
    options = options or {}
    spec, weights_dir, where = load_source(source, options.get("weights_dir"))
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ModelFileError(f"{where} is a Core ML {kind} model; the ML Program frontend reads mlProgram models "
                             f"only")
    return import_mlprogram(spec, weights_dir, where, options)


def mlprogram_frontend(source: Any, *, boundary: str = "channels_first", options: dict[str, Any] | None = None) -> Graph:
    """Frontend entry point (see kcc.frontends.frontend_for); ``boundary`` does not apply to Core ML."""
    return load_mlprogram(source, options)


def neuralnetwork_frontend(source: Any, *, boundary: str = "channels_first",
                           options: dict[str, Any] | None = None) -> Graph:
    """Frontend entry point for NeuralNetwork models and pipelines of them (see neuralnetwork.py)."""
    from kcc.frontends.coreml.neuralnetwork import load_neuralnetwork

    return load_neuralnetwork(source, options)


def is_mlprogram_source(source: Any) -> bool:
    """True for an .mlpackage, or an .mlmodel / spec / MLModel whose model is an mlProgram."""
    if is_coreml_object(source):
        spec = source.get_spec() if hasattr(source, "get_spec") else source
        return spec.WhichOneof("Type") == "mlProgram"
    if not is_coreml_path(source):
        return False
    path = Path(source)
    if path.suffix.lower() == ".mlpackage":
        return True
    # An unreadable or corrupt .mlmodel is not claimed: the caller's other paths report it.
    if not path.is_file():
        return False
    try:
        spec, _, _ = load_source(path)
    except ModelFileError:
        return False
    return spec.WhichOneof("Type") == "mlProgram"


__all__ = ["MIL_OPS", "OPSETS", "is_mlprogram_source", "load_mlprogram", "mil_op", "mlprogram_frontend",
           "neuralnetwork_frontend", "supported_mil_ops"]
