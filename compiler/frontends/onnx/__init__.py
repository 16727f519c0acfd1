"""The ONNX frontend: an ``onnx.ModelProto`` or ``.onnx`` file -> IR graph.

ONNX is channels-first like the IR, so tensors keep their layout and the graph
has no boundary transposes (``boundary`` is a Keras option and is ignored here).
Symbolic input dims stay symbolic: the first axis is the batch ``N``, other
named dims keep their ``dim_param``. The importer (importer.py) is also what the
Keras frontend uses to splice traced Lambda and custom layers in.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
from onnx import external_data_helper

from kcc.errors import ModelFileError, ShapeError, UnsafeModelError
from kcc.frontends.onnx.importer import OnnxImporter, opset_of
from kcc.frontends.onnx.registry import ir_dtype, onnx_op, supported_op_types
from kcc.frontends.onnx.validate import check_onnx_model
from kcc.ir import Graph, TensorType


def load_onnx(source: Any) -> onnx.ModelProto:
    """An ONNX model from a ModelProto or a file; external data only from inside the file's folder.

    The model is checked (validate.py: sizes, tensors, attributes, onnx.checker) before it is returned.
    """
    if isinstance(source, onnx.ModelProto):
        check_onnx_model(source, "the ONNX model")
        return source
    path = Path(source)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelFileError(f"{path}: cannot read it as an ONNX model: {type(e).__name__}: {e}") from None
    _load_external_data(model, path)
    check_onnx_model(model, str(path))
    return model


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read each external-data tensor from a file inside the model's own folder.

    A location that is absolute, climbs out with ``..``, or resolves (through
    symbolic links) outside the folder is refused: a model file must not make
    kcc read other host files into the converted model.
    """
    folder = path.resolve().parent
    for tensor in _all_tensors(model.graph):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = external_data_helper.ExternalDataInfo(tensor).location
        target = (folder / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(folder):
            raise UnsafeModelError(
                f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, outside the "
                f"model's folder {str(folder)!r}; kcc reads external data only from files beside "
                "the model. Move the data file next to the model and name it relatively.")
        try:
            external_data_helper.load_external_data_for_tensor(tensor, str(folder))
        except Exception as e:  # onnx raises ValueError, OSError and its own checker errors
            raise ModelFileError(f"{path}: cannot read external data {location!r} of tensor "
                                 f"{tensor.name!r}: {type(e).__name__}: {e}") from None


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes of a graph and of its subgraphs."""
    yield from graph.initializer
    yield from (s.values for s in graph.sparse_initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_tensors(sub)


def _input_type(vi: onnx.ValueInfoProto, override: tuple | None) -> TensorType:
    tt = vi.type.tensor_type
    dims: list[Any] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append("N" if i == 0 else (d.dim_param or f"{vi.name}_d{i}"))
    if override is not None:
        override = tuple(override)
        if len(override) == len(dims) - 1:
            override = (None,) + override
        if len(override) != len(dims):
            raise ShapeError(f"input shape {override} for {vi.name!r} has rank {len(override)}, "
                             f"the model's input has rank {len(dims)}")
        dims = [d if o is None else int(o) for d, o in zip(dims, override)]
    return TensorType(tuple(dims), ir_dtype(tt.elem_type, f"input {vi.name!r}"))


def import_onnx_model(model: onnx.ModelProto, *, options: dict[str, Any] | None = None) -> Graph:
    options = options or {}
    shapes = dict(options.get("input_name_shape_dict") or {})
    g = model.graph
    graph = Graph(g.name or "model")
    inits = {i.name for i in g.initializer}
    bound = {}
    for vi in g.input:
        if vi.name in inits:
            continue
        bound[vi.name] = graph.add_input(vi.name, _input_type(vi, shapes.pop(vi.name, None)))
    if shapes:
        raise ShapeError(f"input_name_shape_dict names {sorted(shapes)}, but the model's inputs are {sorted(bound)}")
    importer = OnnxImporter(graph, opset_of(model))
    outs = importer.import_graph(g, bound)
    values = []
    for o, x in zip(g.output, outs):
        v = importer.materialize(x, o.name)
        if v in values or v in graph.inputs or v.is_const:
            v = graph.add_node("identity", [v], {}, name=o.name, origin=o.name).output
        values.append(v)
    graph.set_outputs(values, [o.name for o in g.output])
    graph.meta["boundary"] = "channels_first"
    graph.meta["input_layout"] = {v.name: "native" for v in graph.inputs}
    return graph


def onnx_frontend(source: Any, *, boundary: str = "channels_first", options: dict[str, Any] | None = None) -> Graph:
    """Frontend entry point (see kcc.frontends.frontend_for); ``boundary`` does not apply to ONNX."""
    return import_onnx_model(load_onnx(source), options=options)


def is_onnx_source(source: Any) -> bool:
    if isinstance(source, onnx.ModelProto):
        return True
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".onnx"


__all__ = ["OnnxImporter", "import_onnx_model", "onnx_frontend", "load_onnx", "onnx_op", "supported_op_types",
           "is_onnx_source"]
