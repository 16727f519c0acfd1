"""Writing an ONNX model to disk with its weights streamed from the IR's arrays.

The emitter leaves the bytes of every numeric initializer of ``SIZE_THRESHOLD``
bytes or more out of its ``TensorProto`` (name, dims and type are set) and keeps
the array in a table, name -> array (``initializer``). Then either

* ``fill_weights`` puts the bytes in, one tensor at a time: the in-memory
  ``onnx.ModelProto`` that ``kcc.compile`` returns; or
* ``write_model`` writes the file(s) without ever holding the model's bytes: a
  protobuf is a sequence of fields, each a tag, a length and its bytes, written
  in field-number order, so the file is the model's fields before ``graph``,
  then the graph's own fields before ``initializer``, then each initializer
  (its fields before ``raw_data``, then ``raw_data``'s tag, length and the
  array's memory itself), then the fields after. The lengths come from the
  arrays' sizes. The bytes are the ones ``SerializeToString`` gives for the
  filled model (the tests compare them). Past the 2 GB protobuf limit
  (``external_data.needs_external_data``) the model file holds references and
  the arrays go, in order, into ``<name>.data`` beside it, as onnx's own
  external-data writer lays them out.

Either way the weights exist in memory once (in the IR) plus one tensor in
flight for the in-memory model, and nothing more for the file.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import helper, numpy_helper

from kcc.backends.proto_stream import field_bytes, length_key, varint
from kcc.backends.onnx.external_data import SIZE_THRESHOLD, data_file_name, needs_external_data
from kcc.files import write_atomic

# Field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer, TensorProto.raw_data.
MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9
# dtype kinds whose raw_data is the array's memory in little-endian order (numpy_helper.from_array).
_PLAIN_KINDS = "biuf"


def initializer(array: np.ndarray, name: str, weights: dict[str, np.ndarray]) -> onnx.TensorProto:
    """The initializer ``name`` for ``array``; a large plain numeric array's bytes are left out
    and the array goes into ``weights`` (``numpy_helper.from_array`` makes the others)."""
    if array.nbytes < SIZE_THRESHOLD or not _plain(array.dtype):
        return numpy_helper.from_array(array, name)
    tensor = onnx.TensorProto(name=name, dims=array.shape, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
    weights[name] = np.ascontiguousarray(array)
    return tensor


def _plain(dtype: np.dtype) -> bool:
    little = dtype.byteorder == "<" or dtype.byteorder == "|" or (dtype.byteorder == "=" and sys.byteorder == "little")
    return dtype.kind in _PLAIN_KINDS and little and dtype in _TENSOR_DTYPES


_TENSOR_DTYPES = {np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                                        np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)}


def fill_weights(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> None:
    """Put each left-out initializer's bytes into ``model`` (one tensor's copy in flight at a time)."""
    for tensor in model.graph.initializer:
        array = weights.pop(tensor.name, None)
        if array is not None:
            tensor.raw_data = array.tobytes()
    weights.clear()


def write_model(model: onnx.ModelProto, weights: dict[str, np.ndarray], path: str | os.PathLike) -> list[Path]:
    """Write ``model`` with its left-out initializers taken from ``weights`` at ``path`` (plus
    ``<name>.data`` past 2 GB); return the paths written. ``model`` is not changed."""
    path = Path(path)
    if needs_external_data(model):
        data_name = data_file_name(path)
        skeleton, order = _external_skeleton(model, weights, data_name)

        def write_both(work: Path) -> None:
            with open(work / data_name, "wb") as f:
                for name in order:
                    f.write(_memory(weights[name]))
            (work / path.name).write_bytes(skeleton.SerializeToString())

        return write_atomic(path, [path.name, data_name], write_both)

    def write_one(work: Path) -> None:
        with open(work / path.name, "wb") as f:
            write_stream(model, weights, f)

    return write_atomic(path, [path.name], write_one)


def write_stream(model: onnx.ModelProto, weights: dict[str, np.ndarray], f: BinaryIO) -> int:
    """Write the bytes ``model.SerializeToString()`` would give once ``weights`` are filled in; return their count."""
    graph = model.graph
    entries = [_initializer_entry(t, weights) for t in graph.initializer]
    graph_parts = [field_bytes(graph, lambda n: n < GRAPH_INITIALIZER)]
    graph_parts += [part for entry in entries for part in entry]
    graph_parts.append(field_bytes(graph, lambda n: n > GRAPH_INITIALIZER))
    graph_size = sum(len(p) for p in graph_parts)
    parts = [field_bytes(model, lambda n: n < MODEL_GRAPH)]
    if model.HasField("graph"):
        parts += [length_key(MODEL_GRAPH) + varint(graph_size)] + graph_parts
    parts.append(field_bytes(model, lambda n: n > MODEL_GRAPH))
    total = 0
    for part in parts:
        f.write(part)
        total += len(part)
    return total


def _initializer_entry(tensor: onnx.TensorProto, weights: dict[str, np.ndarray]) -> list[Any]:
    """``GraphProto.initializer``'s encoding of one tensor, its raw bytes as the array's memory."""
    array = weights.get(tensor.name)
    if array is None:
        body = [tensor.SerializeToString()]
    else:
        raw = _memory(array)
        body = [field_bytes(tensor, lambda n: n < TENSOR_RAW_DATA), length_key(TENSOR_RAW_DATA) + varint(len(raw)),
                raw, field_bytes(tensor, lambda n: n > TENSOR_RAW_DATA)]
    return [length_key(GRAPH_INITIALIZER) + varint(sum(len(p) for p in body))] + body


def _external_skeleton(model: onnx.ModelProto, weights: dict[str, np.ndarray],
                       data_name: str) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` whose left-out initializers point into ``data_name`` (offsets in order),
    and the order their arrays go into it."""
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)  # the large tensors hold no bytes: a small copy
    order, offset = [], 0
    for tensor in skeleton.graph.initializer:
        array = weights.get(tensor.name)
        if array is None:
            continue
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", data_name), ("offset", offset), ("length", array.nbytes)):
            tensor.external_data.add(key=key, value=str(value))
        order.append(tensor.name)
        offset += array.nbytes
    return skeleton, order


def _memory(array: np.ndarray) -> memoryview:
    """The array's bytes without a copy (C order; ``initializer`` made it contiguous)."""
    return memoryview(np.ascontiguousarray(array)).cast("B")


__all__ = ["initializer", "fill_weights", "write_model", "write_stream"]
