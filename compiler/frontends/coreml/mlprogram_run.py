"""Run ML Program models (``.mlpackage``, mlProgram specs) on Linux through the IR interpreter.

This frontend turns the MIL function into an IR graph; :func:`kcc.interpreter.run`
evaluates it with each op's numpy reference. The model-level conventions are
those of the NeuralNetwork runtime (``kcc.coreml.runtime``): inputs by name
(arrays, or PIL images / H x W x C pixel arrays for image inputs, which carry
their scale and bias as MIL ops), outputs by name, and for classifiers the
predicted label plus the {label: probability} dict.

``kcc.coreml.predict`` runs ML Programs through :func:`predict_mlprogram`: the
runtime (a core module, which may not import frontends) keeps a table of
runners by spec type, and importing this module registers ``mlProgram`` in it
(``kcc/__init__.py`` does, so it is there whenever kcc is).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from kcc.coreml import images
from kcc.coreml.runtime import MODEL_RUNNERS
from kcc.errors import KccError, RuntimeModelError
from kcc.frontends.coreml.mlprogram import import_mlprogram
from kcc.frontends.coreml.package import load_source
from kcc.interpreter import run as run_graph

_OUTPUT_DTYPES = {"FLOAT32": np.float32, "DOUBLE": np.float64, "INT32": np.int32, "FLOAT16": np.float16}


def load_program(model_or_path: Any, function_name: str | None = None):
    """(spec, IR graph) of an ML Program source."""
    spec, weights_dir, where = load_source(model_or_path)
    return spec, import_mlprogram(spec, weights_dir, where, {"function_name": function_name})


@MODEL_RUNNERS.register("mlProgram")
def predict_mlprogram(model_or_path: Any, inputs: Mapping[str, Any], function_name: str | None = None) -> dict[str, Any]:
    """Run an ML Program on one set of named inputs; outputs as ``MLModel.predict`` gives them."""
    spec, graph = load_program(model_or_path, function_name)
    if not isinstance(inputs, Mapping):
        raise RuntimeModelError(f"inputs must be a dict from input name to value, got {type(inputs).__name__}")
    features = {f.name: f for f in spec.description.input}
    names = [v.name for v in graph.inputs]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise RuntimeModelError(f"unknown input '{unknown[0]}'; the model's inputs are: {', '.join(names)}")
    feeds = {}
    for v in graph.inputs:
        if v.name not in inputs:
            raise RuntimeModelError(f"missing input '{v.name}'; the model's inputs are: {', '.join(names)}")
        value = inputs[v.name]
        feature = features.get(v.name)
        if feature is not None and feature.type.WhichOneof("Type") == "imageType":
            value = images.image_tensor(v.name, feature.type.imageType, value, [], False)
        feeds[v.name] = value
    try:
        produced = run_graph(graph, feeds)
    except KccError as e:
        raise RuntimeModelError(str(e)) from None
    return _outputs(spec, graph, produced)


def _outputs(spec: Any, graph: Any, produced: dict[str, np.ndarray]) -> dict[str, Any]:
    classifier = graph.classifier
    result: dict[str, Any] = {}
    for feature in spec.description.output:
        name = feature.name
        kind = feature.type.WhichOneof("Type")
        if classifier and name == classifier.label_output:
            probs = produced[classifier.probabilities_output].reshape(-1)
            result[name] = classifier.labels[int(np.argmax(probs))]
        elif classifier and name == classifier.probabilities_output and kind == "dictionaryType":
            probs = produced[name].reshape(-1)
            result[name] = {lab: float(p) for lab, p in zip(classifier.labels, probs)}
        elif name not in produced:
            raise RuntimeModelError(f"the program produced no output '{name}'")
        elif kind == "multiArrayType":
            array_type = feature.type.multiArrayType
            if array_type.dataType not in type(array_type).ArrayDataType.values():
                raise RuntimeModelError(f"output '{name}' declares array data type {array_type.dataType}, "
                                        "which Core ML does not define; the model file is inconsistent")
            dtype_name = type(array_type).ArrayDataType.Name(array_type.dataType)
            result[name] = np.asarray(produced[name]).astype(_OUTPUT_DTYPES.get(dtype_name, produced[name].dtype))
        else:
            result[name] = produced[name]
    return result
