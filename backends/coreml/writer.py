"""Writing a NeuralNetwork ``.mlmodel`` with its weights streamed from arrays.

A NeuralNetwork model is one protobuf, weights inside (``WeightParams``:
``floatValue`` packed float32, or ``float16Value`` bytes). Building the spec
with every weight in it and then serializing it holds the weights three times
(the IR's arrays, the spec, the bytes). When the model is written to a file
(``write_coreml``, the CLI), the emitter instead leaves each large weight out:
``defer_weights`` clears the ``WeightParams`` and puts a marker with the
weight's index in its ``rawValue``, and keeps the array. ``write_spec`` then
writes the spec's fields in field-number order (the order ``SerializeToString``
uses): a message without a marker inside is written whole; one with a marker
inside is written field by field, each nested message's length computed from
its parts, and a marked ``WeightParams`` becomes ``floatValue``'s (or
``float16Value``'s) tag, length and the array's own memory. The file's bytes
are the ones the spec with its weights filled in serializes to (the tests
compare them).
"""
from __future__ import annotations

import struct
from typing import Any, BinaryIO

import numpy as np

from kcc.backends.proto_stream import field_bytes, length_key, varint

# Weights smaller than this go into the spec as usual.
DEFER_BYTES = 1024
# rawValue of a left-out weight: MARK + its index (8 bytes, little-endian).
MARK = b"\x00kcc:weights-left-out\x00"
WEIGHT_PARAMS = "CoreML.Specification.WeightParams"
FLOAT_VALUE, FLOAT16_VALUE, RAW_VALUE = 1, 2, 30


def defer_weights(params: Any, array: np.ndarray, float16: bool, holes: list[np.ndarray]) -> bool:
    """Leave ``array`` out of ``params`` (a ``WeightParams``), marked, when it is large; True if so.

    The array kept is what ``set_weights`` would write: row-major float32 (or float16).
    """
    flat = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    if flat.nbytes < DEFER_BYTES:
        return False
    params.Clear()
    params.rawValue = weight_marker(len(holes))
    holes.append(flat.astype("<f2") if float16 else flat)
    return True


def weight_marker(index: int) -> bytes:
    """The ``rawValue`` that stands for left-out weight number ``index``."""
    return MARK + struct.pack("<Q", index)


def write_spec(spec: Any, holes: list[np.ndarray], f: BinaryIO) -> int:
    """Write ``spec``'s bytes with the left-out weights in place; return how many bytes."""
    total = 0
    for part in _encode(spec, holes):
        f.write(part)
        total += len(part)
    return total


def _encode(message: Any, holes: list[np.ndarray]) -> list[Any]:
    """``message``'s encoding in parts (bytes, or an array's memory), field-number order."""
    if message.DESCRIPTOR.full_name == WEIGHT_PARAMS and message.rawValue.startswith(MARK):
        return _weight_parts(message, holes)
    parts: list[Any] = []
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            parts.append(field_bytes(message, lambda n: n == field.number))
            continue
        for item in (value if field.is_repeated else [value]):
            data = item.SerializeToString()
            if MARK not in data:
                parts += [length_key(field.number) + varint(len(data)), data]
            else:
                inner = _encode(item, holes)
                parts += [length_key(field.number) + varint(sum(len(p) for p in inner))] + inner
    return parts


def _weight_parts(params: Any, holes: list[np.ndarray]) -> list[Any]:
    """A marked ``WeightParams``: its array as ``floatValue`` or ``float16Value``, then its other fields."""
    array = holes[struct.unpack("<Q", params.rawValue[len(MARK):len(MARK) + 8])[0]]
    data = memoryview(array).cast("B")
    number = FLOAT16_VALUE if array.dtype == np.float16 else FLOAT_VALUE
    rest = [field.number for field, _ in params.ListFields() if field.number != RAW_VALUE]
    return [length_key(number) + varint(len(data)), data] + [field_bytes(params, lambda n, k=k: n == k)
                                                              for k in rest]


__all__ = ["defer_weights", "write_spec", "weight_marker", "DEFER_BYTES"]
