"""Frontends: turn a source model into an IR graph.

``frontend_for(source)`` picks one by what the source is: an in-memory Keras
model, a ``.keras``/``.h5`` path, a ``(json, h5)`` pair -- and, for the way back,
``.onnx`` and ``.mlmodel`` files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from kcc.errors import ModelFileError
from kcc.ir import Graph

Frontend = Callable[..., Graph]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _is_keras_model(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return (mod.startswith("keras") or mod.startswith("tf_keras")) and hasattr(obj, "get_config")


def keras_frontend(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    from kcc.frontends.keras import convert_keras

    return convert_keras(source, boundary=boundary, options=options)


def onnx_frontend(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    from kcc.frontends.onnx import onnx_frontend as convert_onnx

    return convert_onnx(source, boundary=boundary, options=options)


def _is_onnx(source: Any) -> bool:
    if type(source).__name__ == "ModelProto" and type(source).__module__.startswith("onnx"):
        return True
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".onnx"


def mlprogram_frontend(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    from kcc.frontends.coreml import mlprogram_frontend as convert_mlprogram

    return convert_mlprogram(source, boundary=boundary, options=options)


def _is_mlprogram(source: Any) -> bool:
    """An .mlpackage, or an .mlmodel / Core ML spec / MLModel whose model is an mlProgram."""
    from kcc.frontends.coreml.package import is_coreml_object, is_coreml_path

    if not (is_coreml_path(source) or is_coreml_object(source)):
        return False
    from kcc.frontends.coreml import is_mlprogram_source

    return is_mlprogram_source(source)


def neuralnetwork_frontend(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    from kcc.frontends.coreml import neuralnetwork_frontend as convert_neuralnetwork

    return convert_neuralnetwork(source, boundary=boundary, options=options)


def _is_coreml(source: Any) -> bool:
    """Any other .mlmodel path, Core ML spec or MLModel: the NeuralNetwork frontend reads (or refuses) it."""
    from kcc.frontends.coreml.package import is_coreml_object, is_coreml_path

    return is_coreml_object(source) or (is_coreml_path(source) and Path(source).suffix.lower() == ".mlmodel")


def frontend_for(source: Any) -> Frontend:
    if _is_onnx(source):
        return onnx_frontend
    if _is_mlprogram(source):
        return mlprogram_frontend
    if _is_coreml(source):
        return neuralnetwork_frontend
    if _is_keras_model(source):
        return keras_frontend
    if isinstance(source, tuple) and len(source) == 2:
        return keras_frontend
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix in KERAS_SUFFIXES:
            return keras_frontend
        if suffix == ".json":
            raise ModelFileError(f"{path} holds only an architecture; pass the weights too: "
                                 f"kcc.compile(({str(path)!r}, 'weights.h5')) or `kcc {path} weights.h5 ...`")
        raise ModelFileError(f"{path}: unknown model file type {suffix or '(no suffix)'!r}; kcc reads "
                             f".keras, .h5/.hdf5, .onnx, or an architecture .json with a weights .h5")
    raise ModelFileError(f"cannot compile a {type(source).__name__}: pass a keras.Model, a model file path, "
                         f"or a (json_path, weights_h5_path) pair")
