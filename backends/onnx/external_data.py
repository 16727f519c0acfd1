"""ONNX models past the 2 GB protobuf limit: checked and written with external data.

A serialized protobuf cannot exceed 2 GiB, so a larger ONNX model keeps its
tensors in a separate file. ``save_with_external_data(model, "model.onnx")`` writes:

    model.onnx         the graph; each large tensor is a reference
                       (data_location=EXTERNAL, location="model.onnx.data", offset, length)
    model.onnx.data    the tensors' bytes, beside it

through onnx's own writer (``onnx.save_model(..., save_as_external_data=True)``),
which onnxruntime loads with default session options. Both files are written in a
temporary folder next to the output and moved into place only when both are
complete, so a failure leaves neither (``kcc.files.write_atomic``). A model under
the limit is one file, as before (``needs_external_data`` tells; ``kcc.save`` asks
it). In memory a model of any size is an ordinary ``ModelProto`` holding its
tensors. The CLI (``kcc.compile_to_file``) writes the same two files from the IR's
arrays without a model holding them (writer.py).

Whether a model is "large" is decided from the tensors' declared shapes and types
(no tensor bytes are read or copied): ``tensor_bytes(model) > EXTERNAL_DATA_THRESHOLD``.
``check_onnx`` checks every model as a skeleton without its large tensors, so
checking costs no copy of the weights at any size, and ``move_initializers``
puts the emitter's tensors into the model with one copy in flight at a time.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper, helper

from kcc.errors import ConversionError
from kcc.files import write_atomic

# A serialized protobuf holds at most 2 GiB - 1 bytes.
PROTOBUF_LIMIT = 2**31 - 1
# Tensor bytes above which a model is written (and checked) with external data: the
# protobuf limit less 64 MiB for the graph itself. A module constant, so tests can
# lower it and exercise the external-data path with a small model.
EXTERNAL_DATA_THRESHOLD = PROTOBUF_LIMIT - 2**26
# Tensors smaller than this stay inside the model file (onnx's default).
SIZE_THRESHOLD = 1024


def data_file_name(path: str | os.PathLike) -> str:
    """The external data file's name for the model file ``path``: ``model.onnx`` -> ``model.onnx.data``."""
    return Path(path).name + ".data"


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers, Constant-node and other tensor attributes, subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _nbytes(t: onnx.TensorProto) -> int:
    """A tensor's data size from its dims and type (strings count by their stored length)."""
    if t.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in t.string_data)
    count = int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
    return count * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all the tensors a model holds inline (external ones are not counted)."""
    return sum(_nbytes(t) for t in _tensors(model.graph) if t.data_location != onnx.TensorProto.EXTERNAL)


def needs_external_data(model: onnx.ModelProto) -> bool:
    """True when the model's tensors are past ``EXTERNAL_DATA_THRESHOLD``: one protobuf cannot hold it."""
    return tensor_bytes(model) > EXTERNAL_DATA_THRESHOLD


def move_initializers(tensors: list[onnx.TensorProto], graph: onnx.GraphProto) -> None:
    """Append ``tensors`` to ``graph.initializer`` in order, emptying the list as it goes.

    Appending copies a tensor; dropping each original right after keeps the
    weights in memory twice for one tensor at a time, not for the whole model
    (``helper.make_graph`` then ``make_model`` would hold three copies at once).
    """
    for i, tensor in enumerate(tensors):
        graph.initializer.append(tensor)
        tensors[i] = None  # type: ignore[call-overload]
    tensors.clear()


def check_onnx(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model(full_check=True)``, for a model of any size.

    The checker serializes the model (which fails past 2 GiB) and parses it again
    in C++: two more copies of the weights. So the model is checked as a
    skeleton: its initializers of 1 KiB or more become graph inputs of the same
    type and shape (their bytes are neither copied nor touched). Small
    initializers, where shape inference reads values (Reshape shapes, Pad
    amounts), stay. ``numpy_helper`` made every tensor, so its bytes agree with
    its shape.
    """
    try:
        onnx.checker.check_model(_skeleton(model), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ConversionError(f"kcc produced an invalid ONNX model (a kcc bug; please report): {e}") from e


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose initializers of SIZE_THRESHOLD bytes or more are graph inputs.

    Built field by field, never touching a large tensor's bytes (protobuf's arena
    would keep a cleared field's memory until the whole model is freed).
    """
    skeleton = onnx.ModelProto()
    _copy_fields(model, skeleton, skip="graph")
    _copy_fields(model.graph, skeleton.graph, skip="initializer")
    for t in model.graph.initializer:
        if _nbytes(t) < SIZE_THRESHOLD and t.data_location != onnx.TensorProto.EXTERNAL:
            skeleton.graph.initializer.append(t)
        else:
            skeleton.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return skeleton


def _copy_fields(src: Any, dst: Any, *, skip: str) -> None:
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "extend"):  # a repeated field
            getattr(dst, field.name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def save_with_external_data(model: onnx.ModelProto, path: str | os.PathLike, *,
                            keep_in_memory: bool = True) -> list[Path]:
    """Write ``model`` as ``path`` plus its data file beside it (``data_file_name``); return both paths.

    Nothing is left behind on failure. onnx's writer moves the tensors' bytes out
    of ``model``; ``keep_in_memory`` reads them back afterwards, so the caller's
    model stays whole (the CLI, which drops the model, skips that).
    """
    path = Path(path)
    data_name = data_file_name(path)

    def write(work: Path) -> None:
        try:
            onnx.save_model(model, work / path.name, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=SIZE_THRESHOLD, convert_attribute=True)
        finally:
            if keep_in_memory:
                _read_back(model, work)

    return write_atomic(path, [path.name, data_name], write)


def _read_back(model: onnx.ModelProto, directory: Path) -> None:
    """Undo onnx's external-data writer on ``model``: every tensor inline again, as emitted.

    After a failure part way, a tensor may still hold its bytes (only marked
    external) or may already be in the data file; both come back.
    """
    for t in _tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if not t.HasField("raw_data"):
            external_data_helper.load_external_data_for_tensor(t, str(directory))
        del t.external_data[:]
        t.ClearField("data_location")


__all__ = ["save_with_external_data", "check_onnx", "move_initializers", "needs_external_data", "tensor_bytes",
           "data_file_name", "EXTERNAL_DATA_THRESHOLD", "PROTOBUF_LIMIT"]
