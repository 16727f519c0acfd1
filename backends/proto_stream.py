"""Protobuf wire encoding by parts, for writers that stream a model's weights to a file.

A serialized message is its set fields in field-number order (what
``SerializeToString`` writes), each a key (field number and wire type), then for
a length-delimited field (bytes, a nested message, a packed repeated scalar) the
length as a varint and the bytes. So a writer can put a message's small fields
through protobuf (``field_bytes``) and write a large field's key and length
(``length_key`` + ``varint``) followed by an array's memory, never holding the
whole message's bytes. The ONNX and Core ML writers do that (onnx/writer.py,
coreml/writer.py).
"""
from __future__ import annotations

from typing import Any, Callable


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_key(field_number: int) -> bytes:
    """The key of a length-delimited field (wire type 2)."""
    return varint(field_number << 3 | 2)


def field_bytes(message: Any, keep: Callable[[int], bool]) -> bytes:
    """The encoding of ``message``'s set fields whose numbers ``keep`` accepts (in field-number order)."""
    part = type(message)()
    for field, value in message.ListFields():
        if not keep(field.number):
            continue
        target = getattr(part, field.name) if field.message_type is not None or field.is_repeated else None
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key in value:  # a map: its entries in the order the message holds them
                if field.message_type.fields_by_name["value"].message_type is not None:
                    target[key].CopyFrom(value[key])
                else:
                    target[key] = value[key]
        elif field.is_repeated:
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(part, field.name, value)
    return part.SerializeToString()


__all__ = ["varint", "length_key", "field_bytes"]
