"""``kcc inspect`` for Core ML: ``.mlmodel`` files and ``.mlpackage`` directories.

Read with the Core ML protobuf classes (kcc.coreml.proto), never with
coremltools' converters. NeuralNetwork models count layers by type and the
values of every ``WeightParams`` in them; ML Programs count operations by type
and the values of their ``const`` operations (inline or in the weights blob).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kcc.coreml import proto
from kcc.errors import ModelFileError

from . import ModelInfo, TensorInfo

_ARRAY_DTYPES = {65568: "float32", 65600: "float64", 131104: "int32", 65552: "float16", 131080: "int8"}
_MIL_ITEMSIZE = {"FLOAT16": 2, "FLOAT32": 4, "FLOAT64": 8, "BFLOAT16": 2, "INT8": 1, "UINT8": 1, "INT16": 2,
                 "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8, "BOOL": 1}
_NETWORKS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
_KIND_NAMES = {"neuralNetwork": "Core ML NeuralNetwork", "neuralNetworkClassifier": "Core ML NeuralNetwork classifier",
               "neuralNetworkRegressor": "Core ML NeuralNetwork regressor", "mlProgram": "Core ML ML Program",
               "pipeline": "Core ML pipeline", "pipelineClassifier": "Core ML pipeline classifier",
               "pipelineRegressor": "Core ML pipeline regressor"}


def matches_mlmodel(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".mlmodel"


def matches_mlpackage(path: Path) -> bool:
    return path.is_dir() and (path.suffix.lower() == ".mlpackage" or (path / "Manifest.json").is_file())


def _parse(data: bytes, where: str) -> Any:
    spec = proto.module("Model_pb2").Model()
    try:
        spec.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError: corrupt or another format
        raise ModelFileError(f"{where}: cannot read it as a Core ML model ({type(e).__name__})") from None
    if spec.WhichOneof("Type") is None:
        raise ModelFileError(f"{where}: the file holds no Core ML model (empty or another format)")
    return spec


def read_mlmodel(path: Path, weights: Path | None = None) -> ModelInfo:
    spec = _parse(path.read_bytes(), str(path))
    return _describe(spec, str(path), path.parent / "weights")


def read_mlpackage(path: Path, weights: Path | None = None) -> ModelInfo:
    """Manifest.json names the root model item; its weights are in ``weights/`` beside it."""
    try:
        manifest = json.loads((path / "Manifest.json").read_text(encoding="utf-8"))
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: not a readable .mlpackage (Manifest.json: {type(e).__name__}: {e})") from None
    model_file = path / "Data" / root
    if not model_file.is_file():
        raise ModelFileError(f"{path}: the package's model file {model_file} is missing")
    info = _describe(_parse(model_file.read_bytes(), str(model_file)), str(path), model_file.parent / "weights")
    info.format += " (.mlpackage)"
    return info


def _feature(f: Any) -> TensorInfo:
    t = f.type
    kind = t.WhichOneof("Type")
    if kind == "multiArrayType":
        a = t.multiArrayType
        shape: list[int | str] = list(a.shape)
        note = ""
        if a.WhichOneof("ShapeFlexibility") == "shapeRange":
            shape = [str(s.lowerBound) if s.lowerBound == s.upperBound
                     else f"{s.lowerBound}..{'inf' if s.upperBound < 0 else s.upperBound}"
                     for s in a.shapeRange.sizeRanges]
        elif a.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            note = f"{len(a.enumeratedShapes.shapes)} enumerated shapes"
        layout = {1: "C", 3: "CHW", 5: "SBCHW"}.get(len(shape), "")
        return TensorInfo(f.name, shape, _ARRAY_DTYPES.get(a.dataType, str(a.dataType)), layout,
                          " ".join(x for x in (note, f.shortDescription) if x))
    if kind == "imageType":
        im = t.imageType
        space = proto.module("FeatureTypes_pb2").ImageFeatureType.ColorSpace.Name(im.colorSpace)
        channels = 1 if space == "GRAYSCALE" else 3
        return TensorInfo(f.name, [channels, im.height, im.width], "image", f"image {space}", f.shortDescription)
    if kind == "dictionaryType":
        key = t.dictionaryType.WhichOneof("KeyType")
        return TensorInfo(f.name, None, f"dict[{'str' if key == 'stringKeyType' else 'int64'} -> float64]",
                          note=f.shortDescription)
    names = {"int64Type": "int64", "doubleType": "float64", "stringType": "string"}
    return TensorInfo(f.name, [], names.get(kind or "", kind or "?"), note=f.shortDescription)


def _weight_values(msg: Any, info: ModelInfo) -> None:
    """Add the values of every WeightParams inside ``msg`` (a layer's parameters)."""
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        repeated = hasattr(value, "__len__") and not hasattr(value, "ListFields")
        items = value if repeated else [value]
        for item in items:
            if fd.message_type.name == "WeightParams":
                if item.floatValue:
                    info.add_parameters(len(item.floatValue), "float32", 4 * len(item.floatValue))
                if item.float16Value:
                    info.add_parameters(len(item.float16Value) // 2, "float16", len(item.float16Value))
                if item.int8RawValue:
                    info.add_parameters(len(item.int8RawValue), "int8", len(item.int8RawValue))
                if item.rawValue:
                    bits = item.quantization.numberOfBits if item.HasField("quantization") else 32
                    info.add_parameters(len(item.rawValue) * 8 // max(bits, 1), f"raw{bits}", len(item.rawValue))
            elif hasattr(item, "ListFields"):
                _weight_values(item, info)


def _network(spec: Any, kind: str, info: ModelInfo) -> None:
    net = getattr(spec, kind)
    info.op_kind = "layers"
    info.count_ops([layer.WhichOneof("layer") or "?" for layer in net.layers])
    for layer in net.layers:
        _weight_values(layer, info)
    for pre in net.preprocessing:
        which = pre.WhichOneof("preprocessor")
        if which == "scaler":
            s = pre.scaler
            text = f"scale {s.channelScale:g}"
            biases = [b for b in (s.redBias, s.greenBias, s.blueBias, s.grayBias) if b]
            if biases:
                text += f", bias r{s.redBias:g} g{s.greenBias:g} b{s.blueBias:g} gray{s.grayBias:g}"
        else:
            text = which or "preprocessing"
        for t in info.inputs:
            if t.name == pre.featureName or (not pre.featureName and len(info.inputs) == 1):
                t.note = ", ".join(x for x in (text, t.note) if x)
    if kind == "neuralNetworkClassifier":
        labels = net.WhichOneof("ClassLabels")
        if labels == "stringClassLabels":
            info.labels = list(net.stringClassLabels.vector)
        elif labels == "int64ClassLabels":
            info.labels = [str(v) for v in net.int64ClassLabels.vector]


def _mil_operations(block: Any) -> list[Any]:
    out = []
    for op in block.operations:
        out.append(op)
        for inner in op.blocks:
            out += _mil_operations(inner)
    return out


def _program(spec: Any, info: ModelInfo, weights_dir: Path) -> None:
    mil = proto.module("MIL_pb2")
    program = spec.mlProgram
    info.op_kind = "operations"
    ops: list[Any] = []
    for fname, function in program.functions.items():
        block = function.block_specializations.get(function.opset)
        if block is None and function.block_specializations:
            block = next(iter(function.block_specializations.values()))
        if block is not None:
            ops += _mil_operations(block)
            if fname == "main":
                info.versions["opset"] = function.opset
    info.count_ops([op.type for op in ops])
    for op in ops:
        if op.type != "const" or "val" not in op.attributes:
            continue
        tt = op.attributes["val"].type.tensorType
        dtype = mil.DataType.Name(tt.dataType)
        if dtype not in _MIL_ITEMSIZE:  # strings (dtype names for cast, ...) are not parameters
            continue
        count = math.prod(d.constant.size for d in tt.dimensions) if tt.dimensions else 1
        info.add_parameters(count, dtype.lower(), count * _MIL_ITEMSIZE.get(dtype, 0))
    if weights_dir.is_dir():
        blobs = sorted(p.name for p in weights_dir.iterdir() if p.is_file())
        if blobs:
            info.notes.append(f"weights blob: {', '.join(blobs)} in {weights_dir}")


def _describe(spec: Any, where: str, weights_dir: Path) -> ModelInfo:
    from kcc.backends.coreml.spec_version import os_name

    kind = spec.WhichOneof("Type")
    info = ModelInfo(where, _KIND_NAMES.get(kind, f"Core ML {kind}"))
    version = spec.specificationVersion
    info.versions["specification"] = f"{version} ({os_name(version)})" if not os_name(version).startswith(
        "specification") else str(version)
    d = spec.description
    info.inputs = [_feature(f) for f in d.input]
    info.outputs = [_feature(f) for f in d.output]
    if kind in _NETWORKS:
        _network(spec, kind, info)
    elif kind == "mlProgram":
        _program(spec, info, weights_dir)
    else:
        info.op_kind = "models"
        info.notes.append(f"a {kind} model: kcc counts layers of NeuralNetwork and operations of ML Program models")
    if d.predictedFeatureName:
        info.metadata["predicted_feature"] = d.predictedFeatureName
    if d.predictedProbabilitiesName:
        info.metadata["predicted_probabilities"] = d.predictedProbabilitiesName
    m = d.metadata
    for key, value in (("short_description", m.shortDescription), ("version", m.versionString),
                       ("author", m.author), ("license", m.license)):
        if value:
            info.metadata[key] = value
    for key, value in sorted(m.userDefined.items()):
        info.metadata[key] = value
    if spec.isUpdatable:
        info.metadata["updatable"] = "yes"
    return info
