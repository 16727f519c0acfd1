"""Read MIL blob storage files (``weights/weight.bin``) by their documented layout.

The layout (coremltools ``mlmodel/src/MILBlob/Blob/StorageFormat.hpp``), all
little-endian, every record 64-byte aligned::

    storage_header (64 bytes): uint32 count, uint32 version (= 2), 7 x uint64 reserved
    blob_metadata  (64 bytes): uint32 sentinel (0xDEADBEEF), uint32 data type,
                               uint64 size in bytes, uint64 data offset,
                               uint64 padding in bits (sub-byte types), 4 x uint64 reserved
    raw data       (size bytes at the data offset)

A MIL ``BlobFileValue`` names the file and the offset of a blob's *metadata*.
Every offset and size is checked against the file's length before anything is
read, so a corrupt or hostile file gives a ``ModelFileError`` and never a read
outside the file. Arrays are views of one read-only memory map
(``np.frombuffer``), not copies; sub-byte types (int4, uint1..uint6) are
unpacked least-significant bits first, as coremltools packs them.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kcc.errors import ModelFileError

HEADER_SIZE = 64
METADATA_SIZE = 64
SENTINEL = 0xDEADBEEF
VERSION = 2

# BlobDataType (BlobDataType.hpp) -> (name, numpy dtype of one element or None for sub-byte, bits).
BLOB_DTYPES: dict[int, tuple[str, np.dtype | None, int]] = {
    1: ("float16", np.dtype("<f2"), 16),
    2: ("float32", np.dtype("<f4"), 32),
    3: ("uint8", np.dtype("u1"), 8),
    4: ("int8", np.dtype("i1"), 8),
    5: ("bfloat16", None, 16),
    6: ("int16", np.dtype("<i2"), 16),
    7: ("uint16", np.dtype("<u2"), 16),
    8: ("int4", None, 4),
    9: ("uint1", None, 1),
    10: ("uint2", None, 2),
    11: ("uint4", None, 4),
    12: ("uint3", None, 3),
    13: ("uint6", None, 6),
    14: ("int32", np.dtype("<i4"), 32),
    15: ("uint32", np.dtype("<u4"), 32),
    16: ("float8e4m3fn", None, 8),
    17: ("float8e5m2", None, 8),
}

_HEADER = struct.Struct("<II")
_METADATA = struct.Struct("<IIQQQ")


@dataclass(frozen=True)
class BlobInfo:
    """One blob's metadata record."""

    dtype: str
    size: int
    data_offset: int
    padding_bits: int


class BlobFile:
    """A weight file opened read-only; ``read(offset, count)`` returns the blob at a metadata offset."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                self.size = os.fstat(f.fileno()).st_size
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
        except OSError as e:
            raise ModelFileError(f"cannot read the weight file {self.path}: {e.strerror}; "
                                 f"an ML Program package needs its weights/ directory") from None
        if self.size < HEADER_SIZE:
            raise self._fail(f"is {self.size} bytes, shorter than the {HEADER_SIZE}-byte storage header")
        self.count, version = _HEADER.unpack_from(self._map, 0)
        if version != VERSION:
            raise self._fail(f"has storage format version {version}; kcc reads version {VERSION}")

    def _fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"weight file {self.path} {what}: the file is corrupt or not a MIL blob file; "
                              f"re-save the model with coremltools")

    def info(self, offset: int) -> BlobInfo:
        """The metadata record at ``offset``, checked against the file."""
        if offset < HEADER_SIZE or offset % 64 or offset + METADATA_SIZE > self.size:
            raise self._fail(f"has no blob metadata at offset {offset} (file size {self.size}; metadata is "
                             f"64-byte aligned after the header)")
        sentinel, code, size, data_offset, padding = _METADATA.unpack_from(self._map, offset)
        if sentinel != SENTINEL:
            raise self._fail(f"has sentinel {sentinel:#x} instead of {SENTINEL:#x} in the blob metadata at "
                             f"offset {offset}")
        if code not in BLOB_DTYPES:
            raise self._fail(f"has unknown blob data type {code} at offset {offset}")
        if data_offset < offset + METADATA_SIZE or size > self.size or data_offset > self.size - size:
            raise self._fail(f"says the blob at offset {offset} holds {size} bytes at offset {data_offset}, "
                             f"past the end of the file ({self.size} bytes)")
        return BlobInfo(BLOB_DTYPES[code][0], size, data_offset, padding)

    def read(self, offset: int, count: int, expect: str | None = None) -> np.ndarray:
        """``count`` elements of the blob at metadata ``offset``, as a flat array.

        ``expect`` is the element type the MIL program declares for the value
        (a BLOB_DTYPES name); a different stored type is an error.
        """
        info = self.info(offset)
        if expect is not None and info.dtype != expect:
            raise self._fail(f"stores {info.dtype} data at offset {offset}, but the program declares {expect}")
        name, np_dtype, bits = next(v for v in BLOB_DTYPES.values() if v[0] == info.dtype)
        if info.padding_bits >= 8 or (np_dtype is not None and info.padding_bits):
            raise self._fail(f"has {info.padding_bits} padding bits for {name} data at offset {offset}")
        available = (info.size * 8 - info.padding_bits) // bits
        if count > available:
            raise self._fail(f"holds {available} {name} values at offset {offset}, the program needs {count}")
        raw = np.frombuffer(self._map, dtype=np.uint8, count=info.size, offset=info.data_offset)
        if np_dtype is not None:
            return raw.view(np_dtype)[:count]
        if name == "bfloat16":
            return (raw.view("<u2")[:count].astype(np.uint32) << 16).view(np.float32)
        if name.startswith("float8"):
            raise ModelFileError(f"weight file {self.path}: {name} blobs are not supported by kcc; convert "
                                 f"the model with float16 or 8-bit integer weights")
        return unpack_bits(raw, bits, count, signed=name == "int4")


def unpack_bits(packed: np.ndarray, bits: int, count: int, signed: bool) -> np.ndarray:
    """Sub-byte elements packed least-significant bit first -> int8/uint8 array of ``count`` values."""
    flat = np.unpackbits(packed.astype(np.uint8, copy=False), bitorder="little")[: count * bits]
    weights = (1 << np.arange(bits, dtype=np.int32))
    values = flat.reshape(count, bits).astype(np.int32) @ weights
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
        return values.astype(np.int8)
    return values.astype(np.uint8)
