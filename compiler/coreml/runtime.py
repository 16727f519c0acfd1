"""Run a Core ML NeuralNetwork model (.mlmodel) with numpy.

The executor walks ``layers`` in order, looks each layer type up in the table
of :mod:`kcc.coreml.registry` and keeps every blob in one name -> array scope.
Around that walk this module owns the model-level semantics of Core ML:

* loading (an ``MLModel``, a ``Model_pb2.Model`` spec or a .mlmodel path);
* inputs: multiarrays are checked against the declared shape (or its
  flexibility). With ``RANK5_ARRAY_MAPPING`` (the default, and the only mapping
  before specification 4) a declared (C,) or (C, H, W) array becomes the rank-5
  blob [Seq, Batch, C, H, W]: the caller passes the declared shape, optionally
  preceded by Seq or by Seq, Batch. With ``EXACT_ARRAY_MAPPING`` the array is the
  blob. Images go through :mod:`kcc.coreml.images`;
* outputs: with rank-5 mapping a [1, 1, C, H, W] blob is returned in the declared
  output shape (or as [C, H, W] when none is declared); blobs with a real Seq or
  Batch axis stay rank 5. Arrays are cast to the declared data type;
* classifiers: the probability blob (``labelProbabilityLayerName``, else the last
  layer's output) gives the predicted label and the {label: probability} dict.

All arithmetic is float32, like Core ML on the CPU.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from kcc.coreml import images, proto, registry
from kcc.coreml.registry import ControlFlowSignal, LayerContext
from kcc.errors import KccError, RuntimeModelError, naming_files
from kcc.table import Table

# Importing the layer families fills the registry table.
from kcc.coreml import (  # noqa: F401,E402
    layers_activation, layers_control, layers_dense, layers_elementwise, layers_norm,
    layers_recurrent, layers_reduce, layers_shape, layers_spatial, layers_spatial3d, layers_tensor,
)

_NETWORK_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")

_NESTED = {"branch": ("ifBranch", "elseBranch"), "loop": ("conditionNetwork", "bodyNetwork")}

_OUTPUT_DTYPES = {"FLOAT32": np.float32, "DOUBLE": np.float64, "INT32": np.int32,
                  "FLOAT16": np.float16, "INT8": np.int8}


# Core ML model types this runtime does not execute itself -> runner(model_or_path, inputs).
# kcc.frontends.coreml.mlprogram_run registers "mlProgram" (ML Programs run through the IR
# interpreter) and kcc/__init__.py imports it; a table, so this core module imports no frontend.
MODEL_RUNNERS: Table = Table("Core ML model runner")


def _is_package(model_or_path: Any) -> bool:
    return isinstance(model_or_path, (str, os.PathLike)) and \
        os.fspath(model_or_path).rstrip("/\\").lower().endswith(".mlpackage")


def _runner(kind: str):
    if kind not in MODEL_RUNNERS:
        raise RuntimeModelError(f"no runner for Core ML {kind} models is registered; import kcc first")
    return MODEL_RUNNERS[kind]


def load_spec(model_or_path: Any):
    """The ``Model_pb2.Model`` of an MLModel, a spec, or a .mlmodel file path."""
    model_pb2 = proto.module("Model_pb2")
    if isinstance(model_or_path, model_pb2.Model):
        return model_or_path
    if hasattr(model_or_path, "get_spec"):
        return model_or_path.get_spec()
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if os.path.isdir(path):
            raise RuntimeModelError(
                f"{path} is a directory (an .mlpackage?): the kcc runtime runs NeuralNetwork "
                f".mlmodel files only")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise RuntimeModelError(f"cannot read model file {path}: {e.strerror}") from None
        spec = model_pb2.Model()
        try:
            spec.ParseFromString(data)
        except Exception:
            raise RuntimeModelError(f"{path} is not a Core ML .mlmodel file (protobuf parse failed)") from None
        return spec
    raise RuntimeModelError(
        f"expected an MLModel, a Model_pb2.Model spec or a .mlmodel path, got {type(model_or_path).__name__}")


def network_of(spec):
    """The NeuralNetwork(-Classifier/-Regressor) message of a spec, or a clear error."""
    kind = spec.WhichOneof("Type")
    if kind not in _NETWORK_KINDS:
        hint = " (convert with convert_to='neuralnetwork')" if kind == "mlProgram" else ""
        raise RuntimeModelError(
            f"the model is of type '{kind}'; the kcc Core ML runtime runs only "
            f"neuralNetwork, neuralNetworkClassifier and neuralNetworkRegressor models{hint}")
    return getattr(spec, kind)


def check_layers(network) -> None:
    """Fail before running if any layer (also inside branches and loops) has no implementation."""
    for lyr in network.layers:
        registry.lookup(lyr)
        kind = lyr.WhichOneof("layer")
        params = getattr(lyr, kind)
        for field in _NESTED.get(kind, ()):
            if params.HasField(field):
                check_layers(getattr(params, field))


def predict(model_or_path: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run a Core ML model (NeuralNetwork, or ML Program via the IR) on one set of named inputs.

    Returns the model's outputs by name: numpy arrays, and for classifiers the
    predicted label plus the {label: probability} dictionary, as coremltools'
    ``MLModel.predict`` does on macOS. An error about a model file names the file.
    """
    with naming_files(model_or_path):
        return _predict(model_or_path, inputs)


def _predict(model_or_path: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    if _is_package(model_or_path):
        return _runner("mlProgram")(model_or_path, inputs)
    spec = load_spec(model_or_path)
    kind = spec.WhichOneof("Type")
    if kind in MODEL_RUNNERS:
        # The runner gets the source as given: a path locates an ML Program's weights/ beside it.
        return MODEL_RUNNERS[kind](model_or_path, inputs)
    network = network_of(spec)
    check_layers(network)
    rank5_arrays = network.arrayInputShapeMapping == 0
    rank4_images = network.imageInputShapeMapping == 1
    blobs = _input_blobs(spec, network, inputs, rank5_arrays, not rank4_images)
    _Executor(blobs, rank5_arrays).run(network)
    return _outputs(spec, network, blobs, rank5_arrays)


class _Executor:
    """Walks layers in order over one shared blob scope (nested networks included)."""

    def __init__(self, blobs: dict[str, np.ndarray], rank5: bool) -> None:
        self.blobs = blobs
        self.rank5 = rank5

    def run(self, network) -> None:
        for lyr in network.layers:
            self._run_layer(lyr)

    def _run_layer(self, lyr) -> None:
        impl = registry.lookup(lyr)
        kind = lyr.WhichOneof("layer")
        missing = [n for n in lyr.input if n not in self.blobs]
        if missing:
            raise RuntimeModelError(
                f"layer '{lyr.name}' ({kind}) reads blob '{missing[0]}', which no model input "
                f"or earlier layer produced")
        args = [self.blobs[n] for n in lyr.input]
        ctx = LayerContext(layer=lyr, blobs=self.blobs, run_network=self.run, rank5=self.rank5)
        try:
            result = impl(getattr(lyr, kind), args, ctx)
        except (KccError, ControlFlowSignal):
            raise
        except Exception as e:  # numpy's complaint, with the layer that caused it
            shapes = ", ".join(str(list(a.shape)) for a in args)
            raise RuntimeModelError(
                f"layer '{lyr.name}' ({kind}) failed on inputs of shape {shapes or 'none'}: "
                f"{type(e).__name__}: {e}") from e
        outs = list(result) if isinstance(result, (list, tuple)) else [result]
        if len(outs) != len(lyr.output):
            raise RuntimeModelError(
                f"layer '{lyr.name}' ({kind}) produced {len(outs)} outputs, the model names "
                f"{len(lyr.output)}")
        for name, value in zip(lyr.output, outs):
            value = np.asarray(value, dtype=np.float32)
            # Core ML has no rank-0 tensors: a scalar result is a shape-(1,) blob.
            self.blobs[name] = value.reshape(1) if value.ndim == 0 else value


# ------------------------------------------------------------------ inputs

def _input_blobs(spec, network, inputs: Mapping[str, Any], rank5_arrays: bool,
                 rank5_images: bool) -> dict[str, np.ndarray]:
    if not isinstance(inputs, Mapping):
        raise RuntimeModelError(f"inputs must be a dict from input name to value, got {type(inputs).__name__}")
    features = {f.name: f for f in spec.description.input}
    unknown = sorted(set(inputs) - set(features))
    if unknown:
        raise RuntimeModelError(
            f"unknown input '{unknown[0]}'; the model's inputs are: {', '.join(features) or 'none'}")
    blobs: dict[str, np.ndarray] = {}
    image_inputs = [f.name for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"]
    for name, feature in features.items():
        if name not in inputs:
            if feature.type.isOptional:
                continue
            raise RuntimeModelError(f"missing input '{name}'; the model's inputs are: {', '.join(features)}")
        kind = feature.type.WhichOneof("Type")
        if kind == "multiArrayType":
            blobs[name] = _array_blob(name, feature.type.multiArrayType, inputs[name], rank5_arrays)
        elif kind == "imageType":
            steps = [p for p in network.preprocessing
                     if p.featureName == name or (not p.featureName and len(image_inputs) == 1)]
            blobs[name] = images.image_tensor(name, feature.type.imageType, inputs[name], steps, rank5_images)
        elif kind in ("doubleType", "int64Type"):
            blobs[name] = np.asarray(inputs[name], dtype=np.float32).reshape(1)
        else:
            raise RuntimeModelError(f"input '{name}' is of type {kind}, which the runtime does not support")
    return blobs


def _allowed(array_type) -> tuple[list[list[int]] | None, list[tuple[int, int]] | None]:
    """(enumerated shapes, per-dimension ranges) of an ArrayFeatureType; both None if fixed."""
    flex = array_type.WhichOneof("ShapeFlexibility")
    if flex == "enumeratedShapes":
        return [list(s.shape) for s in array_type.enumeratedShapes.shapes], None
    if flex == "shapeRange":
        return None, [(int(r.lowerBound), int(r.upperBound)) for r in array_type.shapeRange.sizeRanges]
    return None, None


def _shape_ok(shape: tuple[int, ...], array_type) -> bool:
    enumerated, ranges = _allowed(array_type)
    if enumerated is not None:
        return list(shape) in enumerated
    if ranges is not None:
        return len(shape) == len(ranges) and all(
            lo <= d and (hi < 0 or d <= hi) for d, (lo, hi) in zip(shape, ranges))
    declared = list(array_type.shape)
    return not declared or list(shape) == declared


def _expected(array_type) -> str:
    enumerated, ranges = _allowed(array_type)
    if enumerated is not None:
        return " or ".join(str(s) for s in enumerated)
    if ranges is not None:
        return "[" + ", ".join(f"{lo}..{'*' if hi < 0 else hi}" for lo, hi in ranges) + "]"
    return str(list(array_type.shape))


def _array_blob(name: str, array_type, value, rank5: bool) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise RuntimeModelError(f"input '{name}' must be a numeric array, got {type(value).__name__}") from None
    declared = list(array_type.shape)
    if not rank5:
        if not _shape_ok(arr.shape, array_type):
            raise RuntimeModelError(
                f"input '{name}' has shape {list(arr.shape)}, but the model expects {_expected(array_type)}")
        return arr
    rank = len(declared) or (len(_allowed(array_type)[1] or []) or arr.ndim)
    if rank not in (1, 3):
        raise RuntimeModelError(
            f"input '{name}' declares shape {declared}: rank-5 mapped inputs must be (C,) or (C, H, W)")
    lead, core = arr.shape[:arr.ndim - rank], arr.shape[arr.ndim - rank:]
    if arr.ndim < rank or len(lead) > 2 or not _shape_ok(core, array_type):
        raise RuntimeModelError(
            f"input '{name}' has shape {list(arr.shape)}, but the model expects {_expected(array_type)}, "
            f"optionally preceded by a sequence axis (and a batch axis)")
    seq = lead[0] if len(lead) > 0 else 1
    batch = lead[1] if len(lead) > 1 else 1
    return arr.reshape((seq, batch) + (core if rank == 3 else core + (1, 1)))


# ----------------------------------------------------------------- outputs

def _outputs(spec, network, blobs: dict[str, np.ndarray], rank5: bool) -> dict[str, Any]:
    desc = spec.description
    classifier = spec.WhichOneof("Type") == "neuralNetworkClassifier"
    result: dict[str, Any] = {}
    label = probabilities = None
    if classifier:
        label, probabilities = _classify(network, blobs)
    for feature in desc.output:
        name = feature.name
        kind = feature.type.WhichOneof("Type")
        if classifier and name == desc.predictedFeatureName:
            result[name] = label
        elif classifier and (name == desc.predictedProbabilitiesName or kind == "dictionaryType") \
                and name not in blobs:
            result[name] = probabilities
        elif name not in blobs:
            raise RuntimeModelError(f"no layer produced the model output '{name}'")
        elif kind == "imageType":
            result[name] = images.blob_to_image(name, feature.type.imageType, blobs[name])
        elif classifier and kind == "dictionaryType":
            result[name] = probabilities
        else:
            result[name] = _array_output(blobs[name], feature.type.multiArrayType, rank5)
    return result


def _array_output(blob: np.ndarray, array_type, rank5: bool) -> np.ndarray:
    if array_type.dataType not in type(array_type).ArrayDataType.values():
        raise RuntimeModelError(f"an output declares array data type {array_type.dataType}, which "
                                "Core ML does not define; the model file is inconsistent")
    dtype_name = type(array_type).ArrayDataType.Name(array_type.dataType)
    out = blob
    if rank5 and blob.ndim == 5 and blob.shape[0] == blob.shape[1] == 1:
        declared = [int(d) for d in array_type.shape]
        if declared and int(np.prod(declared)) == blob.size:
            out = blob.reshape(declared)
        else:
            out = blob.reshape(blob.shape[2:])
    dtype = _OUTPUT_DTYPES.get(dtype_name, np.float32)
    if np.issubdtype(dtype, np.integer):
        out = np.rint(out)
    return np.asarray(out).astype(dtype)


def _classify(network, blobs: dict[str, np.ndarray]):
    labels_kind = network.WhichOneof("ClassLabels")
    if labels_kind is None:
        raise RuntimeModelError("the classifier has no class labels")
    labels = list(getattr(network, labels_kind).vector)
    prob_name = network.labelProbabilityLayerName or (
        network.layers[-1].output[0] if len(network.layers) else "")
    if prob_name not in blobs:
        raise RuntimeModelError(f"the classifier's probability blob '{prob_name}' was not produced")
    probs = blobs[prob_name].reshape(-1)
    if probs.size != len(labels):
        raise RuntimeModelError(
            f"the classifier has {len(labels)} labels but blob '{prob_name}' has {probs.size} values")
    label = labels[int(np.argmax(probs))]
    return label, {lab: float(p) for lab, p in zip(labels, probs)}
