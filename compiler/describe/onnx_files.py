"""``kcc inspect`` for ONNX files: read with ``onnx`` only, external weights left on disk."""
from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import helper

from kcc.errors import ModelFileError

from . import ModelInfo, TensorInfo

# The first op that consumes a rank-4 input tells its layout: channels-first ops read NCHW
# directly; a Transpose to channels-first means the input is NHWC.
_CHANNELS_FIRST_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "BatchNormalization",
                       "InstanceNormalization", "GlobalAveragePool", "GlobalMaxPool", "LpPool"}


def matches(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".onnx"


def _dtype(elem_type: int) -> str:
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "?"


def _tensor(value: onnx.ValueInfoProto) -> TensorInfo:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(value.name, None, kind or "?", note=value.doc_string)
    tt = value.type.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
    return TensorInfo(value.name, shape, _dtype(tt.elem_type), note=value.doc_string)


def _layout(graph: onnx.GraphProto, name: str) -> str:
    for node in graph.node:
        if name not in node.input:
            continue
        if node.op_type in _CHANNELS_FIRST_OPS:
            return "NCHW"
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm == [0, 3, 1, 2]:
                return "NHWC"
        return ""
    return ""


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every node, those inside If/Loop/Scan bodies included."""
    out = []
    for node in graph.node:
        out.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out += _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    out += _all_nodes(g)
    return out


def _add_tensor(info: ModelInfo, t: onnx.TensorProto) -> None:
    count = math.prod(t.dims) if t.dims else 1
    dtype = _dtype(t.data_type)
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 0
    info.add_parameters(count, dtype, count * itemsize)


def read(path: Path, weights: Path | None = None) -> ModelInfo:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: a corrupt or foreign file
        raise ModelFileError(f"{path}: cannot read it as an ONNX model ({type(e).__name__}: {e})") from None
    g = model.graph
    info = ModelInfo(str(path), "ONNX", name=g.name, op_kind="nodes")
    info.versions["ir_version"] = str(model.ir_version)
    for opset in model.opset_import:
        info.versions["opset" if opset.domain in ("", "ai.onnx") else f"opset {opset.domain}"] = str(opset.version)
    if model.producer_name:
        info.versions["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    initializers = {t.name for t in g.initializer}
    info.inputs = [_tensor(v) for v in g.input if v.name not in initializers]
    for t in info.inputs:
        if t.shape is not None and len(t.shape) == 4:
            t.layout = _layout(g, t.name)
    info.outputs = [_tensor(v) for v in g.output]
    nodes = _all_nodes(g)
    info.count_ops([n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in nodes])
    external = set()
    for t in g.initializer:
        _add_tensor(info, t)
        if t.data_location == onnx.TensorProto.EXTERNAL:
            external.update(e.value for e in t.external_data if e.key == "location")
    for n in nodes:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    _add_tensor(info, a.t)
    if external:
        info.notes.append(f"weights stored outside the file: {', '.join(sorted(external))}")
    if model.model_version:
        info.metadata["model_version"] = str(model.model_version)
    if model.domain:
        info.metadata["domain"] = model.domain
    if model.doc_string:
        info.metadata["doc_string"] = model.doc_string
    for prop in model.metadata_props:
        info.metadata[prop.key] = prop.value
    return info
