"""Find and load the parts of a Core ML model: the spec and its weights directory.

Sources, all resolved to ``(spec, weights_dir, where)``:

* an ``.mlpackage`` directory: ``Manifest.json`` names the root model item
  (normally ``Data/com.apple.CoreML/model.mlmodel``); the weights are in the
  ``weights/`` folder beside that file;
* an ``.mlmodel`` file: for an ML Program, the ``weights/`` folder beside it;
* a ``Model_pb2.Model`` spec in memory (pass ``weights_dir`` for blob values);
* a ``coremltools.models.MLModel`` (its spec and its ``weights_dir``).

The protobuf classes come from :mod:`kcc.coreml.proto`, which loads
coremltools' generated ``*_pb2`` modules without importing coremltools (and so
without TensorFlow or the converters).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kcc.coreml import proto
from kcc.errors import ModelFileError
from kcc.limits import load_json

MODEL_FILE = Path("Data/com.apple.CoreML/model.mlmodel")


def is_coreml_path(source: Any) -> bool:
    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).suffix.lower() in (".mlpackage", ".mlmodel")


def is_coreml_object(source: Any) -> bool:
    """A ``Model_pb2.Model`` spec or a coremltools ``MLModel`` (recognised without importing coremltools)."""
    t = type(source)
    if t.__name__ == "Model" and hasattr(source, "WhichOneof") and hasattr(source, "mlProgram"):
        return True
    return t.__name__ == "MLModel" and (t.__module__ or "").startswith("coremltools") and hasattr(source, "get_spec")


def parse_spec(data: bytes, where: str):
    model_pb2 = proto.module("Model_pb2")
    spec = model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{where} is not a Core ML model (protobuf parse failed: {type(e).__name__}); "
                             f"the file is corrupt or of another format") from None
    if spec.WhichOneof("Type") is None:
        raise ModelFileError(f"{where} holds no model (empty or not a Core ML spec); re-save it with coremltools")
    return spec


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror}") from None


def package_model_file(package: Path) -> Path:
    """The root model file of an .mlpackage, as ``Manifest.json`` names it."""
    if not package.is_dir():
        raise ModelFileError(f"{package}: no such .mlpackage directory")
    manifest = package / "Manifest.json"
    if not manifest.is_file():
        raise ModelFileError(f"{package} has no Manifest.json: not an .mlpackage (or an incomplete copy)")
    info = load_json(_read(manifest), str(manifest))
    try:
        root = info["rootModelIdentifier"]
        rel = Path("Data") / info["itemInfoEntries"][root]["path"]
    except (KeyError, TypeError, IndexError):
        raise ModelFileError(f"{manifest} is corrupt: it names no root model item; re-save the package") from None
    if "\0" in str(rel):
        raise ModelFileError(f"{manifest} is corrupt: its root model path {str(rel)!r} holds a null byte; "
                             "re-save the package")
    target = (package / rel).resolve()
    if rel.is_absolute() or package.resolve() not in target.parents:
        raise ModelFileError(f"{manifest} points its root model outside the package ({rel}); refusing to read it")
    return target


def load_source(source: Any, weights_dir: str | os.PathLike | None = None) -> tuple[Any, Path | None, str]:
    """(spec, weights directory or None, a name for messages) of any Core ML source."""
    if is_coreml_object(source):
        if hasattr(source, "get_spec"):
            wd = weights_dir or getattr(source, "weights_dir", None)
            return source.get_spec(), Path(wd) if wd else None, "the MLModel"
        return source, Path(weights_dir) if weights_dir else None, "the spec"
    path = Path(source)
    if path.suffix.lower() == ".mlpackage" or path.is_dir():
        model_file = package_model_file(path)
        return parse_spec(_read(model_file), str(path)), model_file.parent / "weights", str(path)
    spec = parse_spec(_read(path), str(path))
    return spec, Path(weights_dir) if weights_dir else path.parent / "weights", str(path)
