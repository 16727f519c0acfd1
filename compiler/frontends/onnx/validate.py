"""Check an ONNX model before the importer trusts anything it declares.

``check_onnx_model`` runs on every model ``load_onnx`` returns, in this order:

1. bounds: node count and subgraph depth (``kcc.limits``), so a hostile graph
   fails with a message instead of exhausting memory or the stack;
2. every tensor kcc will turn into an array (initializers, sparse initializers'
   values, ``Constant``/tensor attributes, in subgraphs too): a known data type,
   dims >= 0, and exactly ``product(dims)`` elements present, in ``raw_data``
   (``product * itemsize`` bytes) or in the typed field, checked before any
   array is built; their total against the machine's memory;
3. attributes: a declared type that matches the field holding the value, and
   strings (names, string attributes) that decode as UTF-8;
4. ``onnx.checker.check_model(full_check=True)``: the schema of every node, its
   attribute types, and strict shape inference (skipped for models over the 2 GB
   protobuf limit, which the checker cannot take in memory).

Each failure is one ``ModelFileError`` naming the file and the node, initializer
or attribute, instead of a ValueError/KeyError/UnicodeDecodeError from deep
inside numpy_helper or the importer.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

from kcc import limits
from kcc.errors import ModelFileError

# Bits per element of the sub-byte types (packed two or more per byte in raw_data).
_SUB_BYTE_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in (("UINT4", 4), ("INT4", 4), ("FLOAT4E2M1", 4), ("UINT2", 2), ("INT2", 2),
                       ("FLOAT6E2M3", 6), ("FLOAT6E3M2", 6)) if hasattr(TensorProto, name)
}
# Types whose typed field holds two numbers per element.
_COMPLEX = (TensorProto.COMPLEX64, TensorProto.COMPLEX128)
_ATTRIBUTE_FIELDS = {
    AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.STRING: "s",
    AttributeProto.TENSOR: "t", AttributeProto.GRAPH: "g", AttributeProto.SPARSE_TENSOR: "sparse_tensor",
    AttributeProto.TYPE_PROTO: "tp", AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints",
    AttributeProto.STRINGS: "strings", AttributeProto.TENSORS: "tensors", AttributeProto.GRAPHS: "graphs",
    AttributeProto.SPARSE_TENSORS: "sparse_tensors", AttributeProto.TYPE_PROTOS: "type_protos",
}
_PROTOBUF_LIMIT = 2**31 - 1


def check_onnx_model(model: onnx.ModelProto, where: str) -> None:
    """Refuse a model whose declared sizes, tensors or attributes kcc cannot trust."""
    _check_counts(model.graph, where)
    total = 0
    for tensor, owner in _tensors(model.graph, ""):
        total += _check_tensor(tensor, owner, where)
    limits.check_memory(total, where, "its initializers")
    _check_names(model.graph, where)
    for node, path in _nodes(model.graph, ""):
        _check_node(node, path, where)
    _run_checker(model, where)


def _check_names(graph: onnx.GraphProto, where: str) -> None:
    """Every name is text: protobuf hands back bytes for a proto2 string that is not UTF-8."""
    stack = [graph]
    while stack:
        g = stack.pop()
        named = [("graph", g.name)] + [("value", v.name) for v in (*g.input, *g.output, *g.value_info)] \
            + [("initializer", t.name) for t in g.initializer]
        for i, node in enumerate(g.node):
            named += [(f"node {i}", text) for text in (node.name, node.op_type, node.domain, *node.input,
                                                       *node.output)]
            named += [(f"node {i} attribute", a.name) for a in node.attribute]
            for attr in node.attribute:
                stack.extend(_subgraphs(attr))
        outputs = [v.name for v in g.output]
        if len(set(outputs)) != len(outputs):
            raise ModelFileError(f"{where}: graph {g.name!r} lists an output twice ({outputs}); "
                                 "corrupt or hand-edited file")
        for v in (*g.input, *g.output, *g.value_info):
            dims = [d.dim_value for d in v.type.tensor_type.shape.dim if d.HasField("dim_value")]
            if any(d < 0 for d in dims):
                raise ModelFileError(f"{where}: value {v.name!r} declares a negative dimension "
                                     f"({dims}); corrupt or hand-edited file")
        for what, text in named:
            if not isinstance(text, str):
                raise ModelFileError(f"{where}: a {what} name {text[:40]!r} is not valid UTF-8 text; "
                                     "corrupt or hand-edited file")
            if "\x00" in text:
                raise ModelFileError(f"{where}: a {what} name {text[:40]!r} holds a NUL character; "
                                     "corrupt or hand-edited file")


def _check_counts(graph: onnx.GraphProto, where: str) -> None:
    count = 0
    stack: list[tuple[onnx.GraphProto, int]] = [(graph, 1)]
    while stack:
        g, depth = stack.pop()
        if depth > limits.MAX_GRAPH_DEPTH:
            raise ModelFileError(f"{where}: subgraphs nest deeper than {limits.MAX_GRAPH_DEPTH} levels "
                                 f"(at graph {g.name!r}); corrupt or hostile file?")
        count += len(g.node)
        limits.check_count(count, limits.MAX_NODES, where, "nodes")
        for node in g.node:
            for attr in node.attribute:
                stack.extend((sub, depth + 1) for sub in _subgraphs(attr))


def _subgraphs(attr: AttributeProto) -> list[onnx.GraphProto]:
    return ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)


def _nodes(graph: onnx.GraphProto, prefix: str) -> Iterator[tuple[onnx.NodeProto, str]]:
    for i, node in enumerate(graph.node):
        path = f"{prefix}node {node.name or i!r} ({node.op_type})"
        yield node, path
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                yield from _nodes(sub, f"{path}/{attr.name}: ")


def _tensors(graph: onnx.GraphProto, prefix: str) -> Iterator[tuple[TensorProto, str]]:
    for t in graph.initializer:
        yield t, f"{prefix}initializer {t.name!r}"
    for s in graph.sparse_initializer:
        yield s.values, f"{prefix}sparse initializer {s.values.name!r}"
    for i, node in enumerate(graph.node):
        path = f"{prefix}node {node.name or i!r} ({node.op_type})"
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t, f"{path} attribute {attr.name!r}"
            for t in attr.tensors:
                yield t, f"{path} attribute {attr.name!r}"
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values, f"{path} attribute {attr.name!r}"
            for sub in _subgraphs(attr):
                yield from _tensors(sub, f"{path}/{attr.name}: ")


def _check_tensor(t: TensorProto, owner: str, where: str) -> int:
    """Dims, data type and element count of one tensor; returns its size in bytes."""
    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{where}: {owner}: {problem}; corrupt or hand-edited file")

    if t.data_type not in TensorProto.DataType.values() or t.data_type == TensorProto.UNDEFINED:
        raise fail(f"data type {t.data_type} is not an ONNX tensor type")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise fail(f"dims {dims} include a negative size")
    count = limits.array_bytes(dims, 1)
    if t.data_location == TensorProto.EXTERNAL:
        return 0  # read from its file by load_onnx, then checked again as raw_data
    if t.data_type == TensorProto.STRING:
        if t.HasField("raw_data"):
            raise fail("a string tensor holds raw_data (strings live in string_data)")
        if len(t.string_data) != count:
            raise fail(f"dims {dims} declare {count} strings but string_data holds {len(t.string_data)}")
        return sum(len(s) for s in t.string_data)
    bits = _SUB_BYTE_BITS.get(t.data_type)
    itemsize = 0 if bits else np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    nbytes = -(-count * bits // 8) if bits else count * itemsize
    if t.HasField("raw_data"):
        if len(t.raw_data) != nbytes:
            raise fail(f"dims {dims} of {TensorProto.DataType.Name(t.data_type)} need {nbytes} bytes "
                       f"but raw_data holds {len(t.raw_data)}")
        return nbytes
    field = onnx.helper.tensor_dtype_to_field(t.data_type)
    held = len(getattr(t, field))
    # Sub-byte types may be stored one element per value or packed (per byte, per int32).
    wants = {count, -(-count * bits // 8), -(-count * bits // 32)} if bits \
        else {count * (2 if t.data_type in _COMPLEX else 1)}
    if held not in wants:
        raise fail(f"dims {dims} declare {count} elements but {field} holds {held} values")
    return nbytes


def _check_node(node: onnx.NodeProto, path: str, where: str) -> None:
    for attr in node.attribute:
        field = _ATTRIBUTE_FIELDS.get(attr.type)
        if field is None:
            raise ModelFileError(f"{where}: {path}: attribute {attr.name!r} has no type "
                                 f"(type {attr.type}); corrupt or hand-edited file")
        if field in ("t", "g", "sparse_tensor", "tp") and not attr.HasField(field):
            raise ModelFileError(f"{where}: {path}: attribute {attr.name!r} is declared "
                                 f"{AttributeProto.AttributeType.Name(attr.type)} but holds no value")
        for raw in ([attr.s] if attr.type == AttributeProto.STRING else list(attr.strings)):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelFileError(f"{where}: {path}: string attribute {attr.name!r} is not valid "
                                     "UTF-8 text; corrupt or hand-edited file") from None


def _run_checker(model: onnx.ModelProto, where: str) -> None:
    if model.ByteSize() > _PROTOBUF_LIMIT:
        return
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError,
            ValueError, TypeError, KeyError, IndexError) as e:
        # The checker's own validation raises the first two; its Python helpers the rest
        # (``ValueError: Invalid tensor data type`` for an out-of-range elem_type).
        first = str(e).strip().splitlines()
        raise ModelFileError(f"{where}: the ONNX checker refuses the model: "
                             f"{first[0] if first else type(e).__name__}"[:600]) from None
