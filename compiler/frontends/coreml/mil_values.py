"""MIL types and values -> IR types and numpy arrays.

A MIL ``ValueType`` becomes a ``TensorType`` (unknown dims become symbols); a
MIL ``Value`` becomes a numpy array, read from its immediate value or from the
blob file it names. Blob paths are ``@model_path/weights/<file>``; they resolve
inside the model's ``weights/`` directory and nowhere else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcc.errors import ModelFileError
from kcc.frontends.coreml.blob import BlobFile
from kcc.ir import TensorType

# MIL DataType enum value -> (MIL name, numpy dtype used for the array, blob element name).
MIL_DTYPES: dict[int, tuple[str, np.dtype, str | None]] = {
    1: ("bool", np.dtype(np.bool_), None),
    2: ("string", np.dtype(object), None),
    10: ("fp16", np.dtype(np.float16), "float16"),
    11: ("fp32", np.dtype(np.float32), "float32"),
    12: ("fp64", np.dtype(np.float64), None),
    13: ("bf16", np.dtype(np.float32), "bfloat16"),
    21: ("int8", np.dtype(np.int8), "int8"),
    22: ("int16", np.dtype(np.int16), "int16"),
    23: ("int32", np.dtype(np.int32), "int32"),
    24: ("int64", np.dtype(np.int64), None),
    25: ("int4", np.dtype(np.int8), "int4"),
    31: ("uint8", np.dtype(np.uint8), "uint8"),
    32: ("uint16", np.dtype(np.uint16), "uint16"),
    33: ("uint32", np.dtype(np.uint32), "uint32"),
    35: ("uint4", np.dtype(np.uint8), "uint4"),
    36: ("uint2", np.dtype(np.uint8), "uint2"),
    37: ("uint1", np.dtype(np.uint8), "uint1"),
    38: ("uint6", np.dtype(np.uint8), "uint6"),
    39: ("uint3", np.dtype(np.uint8), "uint3"),
}
# Sub-byte types stored packed in immediate ``bytes`` values.
_BITS = {"int4": 4, "uint4": 4, "uint1": 1, "uint2": 2, "uint3": 3, "uint6": 6}

# MIL tensor element type -> IR dtype, for values that flow through the graph.
IR_DTYPES = {"bool": "bool", "fp16": "f16", "fp32": "f32", "fp64": "f32", "int8": "i8", "int16": "i32",
             "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "i32"}


def mil_dtype(code: int, where: str) -> tuple[str, np.dtype, str | None]:
    try:
        return MIL_DTYPES[code]
    except KeyError:
        raise ModelFileError(f"{where}: MIL data type {code} is not one kcc reads") from None


def tensor_type(value_type: Any, where: str, symbol: str) -> TensorType:
    """The IR type of a MIL tensor ValueType; unknown dims are named ``symbol``_d<i> (``N`` for axis 0)."""
    kind = value_type.WhichOneof("type")
    if kind != "tensorType":
        raise ModelFileError(f"{where}: a MIL {kind or 'untyped'} value, kcc handles tensors only")
    tt = value_type.tensorType
    name = mil_dtype(tt.dataType, where)[0]
    if name not in IR_DTYPES:
        raise ModelFileError(f"{where}: MIL {name} tensors cannot flow through the graph in kcc")
    dims: list[int | str] = []
    for i, d in enumerate(tt.dimensions):
        if d.WhichOneof("dimension") == "constant":
            dims.append(int(d.constant.size))
        else:
            dims.append("N" if i == 0 else f"{symbol}_d{i}")
    return TensorType(tuple(dims), IR_DTYPES[name])


def static_shape(value_type: Any) -> tuple[int, ...] | None:
    tt = value_type.tensorType
    dims = []
    for d in tt.dimensions:
        if d.WhichOneof("dimension") != "constant":
            return None
        dims.append(int(d.constant.size))
    return tuple(dims)


class ValueReader:
    """Turns MIL ``Value`` messages into numpy arrays; owns the open blob files."""

    def __init__(self, weights_dir: Path | None, where: str):
        self.weights_dir = weights_dir
        self.where = where
        self._files: dict[Path, BlobFile] = {}

    def read(self, value: Any, what: str) -> Any:
        """A numpy array (a Python str for a scalar string)."""
        kind = value.type.WhichOneof("type")
        if kind == "listType" and value.WhichOneof("value") == "immediateValue" \
                and value.immediateValue.WhichOneof("value") == "list":
            items = [self.read(v, f"{what}[{i}]") for i, v in enumerate(value.immediateValue.list.values)]
            return np.array([np.asarray(x).reshape(()).item() if not isinstance(x, str) else x for x in items],
                            dtype=object if any(isinstance(x, str) for x in items) else None)
        if kind != "tensorType":
            raise ModelFileError(f"{self.where}: {what} is a MIL {kind} value; kcc reads tensor values only")
        name, np_dtype, blob_name = mil_dtype(value.type.tensorType.dataType, f"{self.where}: {what}")
        shape = static_shape(value.type)
        if shape is None:
            raise ModelFileError(f"{self.where}: constant {what} has an unknown dimension")
        count = int(np.prod(shape, dtype=np.int64))
        which = value.WhichOneof("value")
        if which == "blobFileValue":
            if blob_name is None:
                raise ModelFileError(f"{self.where}: {what} stores {name} data in a blob file, which MIL does not allow")
            blob = self._file(value.blobFileValue.fileName, what)
            flat = blob.read(int(value.blobFileValue.offset), count, expect=blob_name)
        elif which == "immediateValue":
            flat = self._immediate(value.immediateValue, name, np_dtype, count, what)
            if isinstance(flat, str):
                return flat
        else:
            raise ModelFileError(f"{self.where}: {what} has no value")
        if flat.size != count:
            raise ModelFileError(f"{self.where}: {what} holds {flat.size} values, its type {list(shape)} needs {count}")
        return flat.reshape(shape)

    def _immediate(self, imm: Any, name: str, np_dtype: np.dtype, count: int, what: str) -> Any:
        if imm.WhichOneof("value") != "tensor":
            raise ModelFileError(f"{self.where}: {what} is a MIL {imm.WhichOneof('value')} immediate; kcc reads "
                                 f"tensor immediates only")
        tv = imm.tensor
        field = tv.WhichOneof("value")
        if field is None:
            return np.zeros(0, np_dtype)
        data = getattr(tv, field).values
        if field == "bytes":
            raw = np.frombuffer(data, dtype=np.uint8)
            if name in _BITS:
                from kcc.frontends.coreml.blob import unpack_bits
                return unpack_bits(raw, _BITS[name], count, signed=name == "int4")
            return raw.view(np_dtype)
        if field == "strings":
            strings = list(data)
            return strings[0] if count == 1 and len(strings) == 1 and name == "string" else np.array(strings, object)
        return np.asarray(list(data)).astype(np_dtype)

    def _file(self, file_name: str, what: str) -> BlobFile:
        if self.weights_dir is None:
            raise ModelFileError(f"{self.where}: {what} is stored in {file_name}, but no weights directory is "
                                 f"known; load the .mlpackage (or pass weights_dir=...)")
        prefix = "@model_path/"
        rel = Path(file_name[len(prefix):] if file_name.startswith(prefix) else file_name)
        base = self.weights_dir.parent
        path = (base / rel).resolve()
        root = self.weights_dir.resolve()
        if rel.is_absolute() or root not in path.parents:
            raise ModelFileError(f"{self.where}: {what} names the blob file {file_name!r}, outside the model's "
                                 f"weights directory; refusing to read it")
        if path not in self._files:
            if not path.is_file():
                raise ModelFileError(f"{self.where}: the weight file {path} is missing ({what} is stored in it); "
                                     f"copy the whole .mlpackage, including Data/com.apple.CoreML/weights/")
            self._files[path] = BlobFile(path)
        return self._files[path]
