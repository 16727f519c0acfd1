"""``load_keras_model``: every Keras model source -> one KerasModelSpec.

Sources: an in-memory ``keras.Model``; a Keras 3 ``.keras`` archive; a legacy
``.h5`` full model (Keras 3, tf.keras 2.x, Keras 2.0-2.2); an
``(architecture.json, weights.h5)`` pair. Files are recognised by their first
bytes (zip or HDF5 signature), not only by their suffix.

Files whose layers are all Keras built-ins, or classes Keras ships elsewhere that
kcc has a handler for (keras.applications' ``LayerScale``, ``CustomScaleLayer``),
are read with json, zipfile and h5py only: TensorFlow and Keras are never
imported. Keras is imported only for an in-memory model, or when a file holds a
``Lambda`` or a class kcc has no handler for, since then only Keras can rebuild
the layer (to trace it). Such files are still parsed here; Keras supplies the
``live`` layer objects (and the weights of layers this loader has no table for):
from a ``.keras`` archive only those layers are rebuilt, each alone
(rebuild_layer.py); from ``.h5`` and JSON files, or when a layer cannot be rebuilt
alone, the whole model. Under ``safe_mode`` a file that stores Python code, in any form Keras
2 or 3 writes it, is refused before anything is deserialized, and HDF5 links out
of the file are always refused (safety.py).

One model loaded from different sources gives equal specs (names, classes, calls,
inputs, outputs, configs, weights) except for: ``source``; ``live`` (set for
in-memory models and for files Keras had to load); ``module``/``registered_name``
(None from legacy ``.h5``, which does not record them); ``keras_version`` (None for
a Keras 3 ``to_json`` + ``.weights.h5`` pair, which records none); and
``training_config`` of files written after a Keras 3 ``model.save("x.h5")``, which
drops the optimizer from the model's compile config.
"""
from __future__ import annotations

import contextlib
import json
import lzma
import mmap
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import h5py

from kcc import limits
from kcc.errors import KccError, ModelFileError, UnsupportedLayerError
from kcc.extras import require

from . import archive_keras3, h5_legacy, safety, validate
from .load_builtins import BUILTIN_LAYER_CLASSES
from .load_config import NESTED_LAYER_KEYS, is_model_entry, normalize_training_config, parse_model
from .load_memory import attach_live, spec_from_model
from .load_subclass import is_subclass_entry, load_subclass_model
from .rebuild_layer import defer_rebuilds, rebuild_layers
from .registry import handler_for
from .spec import KerasModelSpec

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# What h5py, zipfile and the decompressors raise on a corrupt file (h5py also raises a
# bare RuntimeError, e.g. on a damaged B-tree; RecursionError is handled apart).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
               zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, RuntimeError)
JSON_EXPECTED = "an architecture JSON written by model.to_json()"
WEIGHTS_EXPECTED = ("a weights file written by model.save_weights() (Keras 3 '.weights.h5' "
                    "or Keras 2 '.h5')")


def load_keras_model(source: Any, *, safe_mode: bool = True,
                     custom_objects: dict | None = None) -> KerasModelSpec:
    """Load a Keras model from memory or a file into a normalized KerasModelSpec.

    ``source`` is a ``keras.Model``, a path to a ``.keras`` or ``.h5`` model file, or
    a ``(json_path, weights_path)`` pair. ``safe_mode`` refuses Lambda layers
    stored as bytecode; ``custom_objects`` is passed to Keras when a file holds
    custom layers.
    """
    if _is_keras_model(source):
        keras = require("keras", "converting an in-memory Keras model")
        spec, compile_config = spec_from_model(source)
        return _finish(spec, "memory", keras.__version__, compile_config)
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ModelFileError(f"expected a (model.json, weights.h5) pair, got {len(source)} items")
        return _load_json_and_weights(Path(source[0]), Path(source[1]), safe_mode, custom_objects)
    if isinstance(source, (str, os.PathLike)):
        return _load_model_file(Path(source), safe_mode, custom_objects)
    raise ModelFileError(f"cannot load a Keras model from a {type(source).__name__}: pass a "
                         "keras.Model, a .keras/.h5 path or a (model.json, weights.h5) pair")


def _is_keras_model(source: Any) -> bool:
    return not isinstance(source, (str, bytes, os.PathLike, tuple, list)) \
        and hasattr(source, "get_config") and hasattr(source, "layers")


def _load_model_file(path: Path, safe_mode: bool, custom_objects: dict | None) -> KerasModelSpec:
    kind = _sniff(path)
    if kind == "zip":
        with _read_errors(path, archive_keras3.ARCHIVE_EXPECTED):
            entry, weights, version = archive_keras3.read_archive(path)
            if is_subclass_entry(entry):  # a KerasHub Backbone/Task: Keras rebuilds it (load_subclass.py)
                spec = load_subclass_model(path, entry, weights.read(), safe_mode=safe_mode,
                                           custom_objects=custom_objects)
                return _finish(spec, "keras", version, entry.get("compile_config"))
            spec = _parse_checked(entry, path, safe_mode)
            archive_keras3.check_member(weights, f"{path}: model.weights.h5")
            with archive_keras3.open_weights(weights) as f:  # read in place, each array once
                tree = safety.check_hdf5(f, f"{path}: model.weights.h5")  # and its datasets' bytes
                limits.check_memory(tree.declared_bytes, str(path))
                archive_keras3.fill_weights(spec, tree.root, _is_sequential(entry), str(path))
            validate.validate_spec(spec, str(path))
        spec = _finish(spec, "keras", version, entry.get("compile_config"))
        defer_rebuilds(spec, entry, _read_without_keras, str(path), safe_mode=safe_mode,
                       custom_objects=custom_objects)
        # Only the layers that need Keras are rebuilt, each alone (rebuild_layer.py).
        if _needs_keras(entry) and rebuild_layers(
                spec, entry, weights.read(), _rebuilt_by_keras, _layer_entries, str(path),
                safe_mode=safe_mode, custom_objects=custom_objects):
            return spec
        del weights
    else:
        _check_heaps(path)
        with _read_errors(path, h5_legacy.H5_EXPECTED), h5py.File(path, "r") as f:
            declared = safety.check_hdf5(f, str(path)).declared_bytes
            entry, training, version = h5_legacy.read_h5_model(f, str(path))
            spec = _parse_checked(entry, path, safe_mode)
            limits.check_memory(declared, str(path))
            h5_legacy.fill_weights(spec, h5_legacy.weights_root(f), str(path))
            validate.validate_spec(spec, str(path))
        spec = _finish(spec, "h5", version, training)
        defer_rebuilds(spec, entry, _read_without_keras, str(path), safe_mode=safe_mode,
                       custom_objects=custom_objects)
    if _needs_keras(entry):
        _attach_keras_model(spec, entry, path, lambda keras: keras.saving.load_model(
            path, safe_mode=safe_mode, custom_objects=custom_objects, compile=False),
            lambda tf_keras: tf_keras.models.load_model(
                path, custom_objects=custom_objects, compile=False))
    return spec


def _load_json_and_weights(json_path: Path, weights_path: Path, safe_mode: bool,
                           custom_objects: dict | None) -> KerasModelSpec:
    with _read_errors(json_path, JSON_EXPECTED):
        entry = limits.load_json(json_path.read_bytes(), str(json_path))
        if not isinstance(entry, dict) or "class_name" not in entry:
            raise ModelFileError(f"{json_path}: expected {JSON_EXPECTED}, found no model class_name")
        spec = _parse_checked(entry, json_path, safe_mode)
    if _sniff(weights_path) != "hdf5":
        raise ModelFileError(f"{weights_path}: expected {WEIGHTS_EXPECTED}, found a zip archive")
    _check_heaps(weights_path)
    with _read_errors(weights_path, WEIGHTS_EXPECTED), h5py.File(weights_path, "r") as f:
        where = str(weights_path)
        tree = safety.check_hdf5(f, where)
        limits.check_memory(tree.declared_bytes, where)
        if archive_keras3.is_keras3_layout(f):
            archive_keras3.fill_weights(spec, tree.root, _is_sequential(entry), where)
        else:
            h5_legacy.fill_weights(spec, h5_legacy.weights_root(f), where)
        validate.validate_spec(spec, f"{json_path} + {weights_path}")
        version = entry.get("keras_version") or h5_legacy.keras_version_of(f)
    spec = _finish(spec, "json+h5", version, entry.get("compile_config"))
    defer_rebuilds(spec, entry, _read_without_keras, str(json_path), safe_mode=safe_mode,
                   custom_objects=custom_objects)
    if _needs_keras(entry):
        text = json.dumps(entry)

        def with_keras(keras: Any) -> Any:
            model = keras.saving.deserialize_keras_object(
                entry, custom_objects=custom_objects, safe_mode=safe_mode)
            model.load_weights(weights_path)
            return model

        def with_tf_keras(tf_keras: Any) -> Any:
            model = tf_keras.models.model_from_json(text, custom_objects=custom_objects)
            model.load_weights(weights_path)
            return model

        _attach_keras_model(spec, entry, json_path, with_keras, with_tf_keras)
    return spec


def _finish(spec: KerasModelSpec, source: str, version: str | None,
            training: dict | None) -> KerasModelSpec:
    spec.source = source
    spec.keras_version = version if isinstance(version, str) or version is None else str(version)
    try:
        spec.training_config = normalize_training_config(training)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ModelFileError(f"{spec.name}: the saved training (compile) configuration is malformed "
                             f"({type(e).__name__}: {e}); re-save the model, or save it without "
                             "compiling") from None
    return spec


def _sniff(path: Path) -> str:
    """``"zip"`` or ``"hdf5"`` from the file's first bytes; a ModelFileError otherwise."""
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory (a TensorFlow SavedModel?); expected a "
                             ".keras or .h5 file: re-save the model with model.save('model.keras')")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot open: {e}") from None
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == HDF5_MAGIC:
        return "hdf5"
    if path.suffix.lower() == ".json":
        raise ModelFileError(
            f"{path}: an architecture JSON holds no weights; pass it together with its "
            "weights file as a pair: load_keras_model(('model.json', 'model.weights.h5'))")
    raise ModelFileError(
        f"{path}: not a Keras model file: expected {archive_keras3.ARCHIVE_EXPECTED} or "
        f"{h5_legacy.H5_EXPECTED}, but the file starts with neither the zip nor the HDF5 "
        f"signature{' (it is empty)' if not head else ''}")


@contextlib.contextmanager
def _read_errors(path: Path, expected: str) -> Iterator[None]:
    """Turn h5py/zipfile/json failures into one ModelFileError naming the file."""
    try:
        yield
    except KccError:
        raise
    except RecursionError:
        raise ModelFileError(f"{path}: the file nests too deeply to read (corrupt or hostile "
                             "file?)") from None
    except READ_ERRORS as e:
        raise ModelFileError(f"{path}: cannot read it as {expected} "
                             f"(corrupt or truncated?): {type(e).__name__}: {e}") from e


def _check_heaps(path: Path) -> None:
    """``limits.check_hdf5_heaps`` over the file, mapped rather than read into memory."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            limits.check_hdf5_heaps(data, str(path))
    except (OSError, ValueError):  # unreadable or empty: h5py reports it next, in its own words
        pass


def _is_sequential(entry: dict) -> bool:
    return entry.get("class_name") == "Sequential" or isinstance(entry.get("config"), list)


def _parse_checked(entry: dict, path: Path, safe_mode: bool) -> KerasModelSpec:
    """Refuse a config that stores code under safe_mode (``safety.find_code``), then parse it."""
    if safe_mode:
        safety.refuse_code(entry, str(path))
    if not is_model_entry(entry):
        raise ModelFileError(f"{path}: the config describes a {entry.get('class_name')!r}, "
                             "not a Sequential or functional model")
    try:
        return parse_model(entry)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        # The parser trusts the structure Keras writes; a file that breaks it is malformed.
        raise ModelFileError(f"{path}: the model config is malformed and does not follow the "
                             f"structure Keras writes ({type(e).__name__}: {e})") from None


def _layer_entries(entry: dict) -> Iterator[dict]:
    """Every serialized layer in a model config: model layers, wrapped layers, cells."""
    config = entry.get("config")
    children: list = []
    if isinstance(config, list):
        children = config
    elif isinstance(config, dict):
        children = list(config.get("layers") or [])
        for key in NESTED_LAYER_KEYS:
            if isinstance(config.get(key), dict):
                children.append(config[key])
        if isinstance(config.get("cells"), list):
            children += config["cells"]
    for child in children:
        if isinstance(child, dict) and "class_name" in child:
            yield child
            yield from _layer_entries(child)


def _is_custom(layer: dict) -> bool:
    """True for a layer entry whose class is not a Keras built-in (Lambda aside)."""
    cls, module, registered = layer.get("class_name"), layer.get("module"), layer.get("registered_name")
    if cls == "Lambda":
        return False
    # "keras_hub..." is another package: its Gemma RMSNormalization is not Keras's.
    foreign = module is not None and not (module == "keras" or str(module).startswith("keras."))
    renamed = registered not in (None, cls) and not str(registered).startswith("keras")
    return cls not in BUILTIN_LAYER_CLASSES or foreign or renamed


def _custom_layers(entry: dict) -> list[tuple[str, str]]:
    """(name, class) of every layer Keras must rebuild that is not a Keras built-in (Lambda aside)."""
    def name(layer: dict) -> str:
        config = layer.get("config")
        return layer.get("name") or (config.get("name", "?") if isinstance(config, dict) else "?")
    return [(name(layer), layer.get("class_name"))
            for layer in _layer_entries(entry) if _is_custom(layer) and _rebuilt_by_keras(layer)]


def _handled_without_keras(layer: dict) -> bool:
    """A class Keras itself ships outside ``keras.layers`` that kcc has a handler for.

    keras.applications' ``LayerScale`` (ConvNeXt) and ``CustomScaleLayer``
    (InceptionResNetV2), keras.ops operations recorded in a functional graph: the
    handler lowers the config and the stored variables, so the file is read as if
    they were built-ins (a handler that falls back to tracing gets the layer
    rebuilt alone then, ``defer_rebuilds``). A class of the same name from another
    module (or registered under another name) is the user's own: Keras rebuilds
    it, as any custom class.
    """
    module, cls = layer.get("module"), layer.get("class_name")
    keras_module = module is None or module == "keras" or str(module).startswith("keras.")
    renamed = layer.get("registered_name") not in (None, cls)
    return keras_module and not renamed and handler_for(str(cls)) is not None


def _rebuilt_by_keras(layer: dict) -> bool:
    """True for a layer entry only Keras can turn into a layer object: Lambda, or custom without a handler."""
    return layer.get("class_name") == "Lambda" or (_is_custom(layer) and not _handled_without_keras(layer))


def _read_without_keras(layer: dict) -> bool:
    return not _rebuilt_by_keras(layer)


def _needs_keras(entry: dict) -> bool:
    return any(_rebuilt_by_keras(layer) for layer in _layer_entries(entry))


def _attach_keras_model(spec: KerasModelSpec, entry: dict, path: Path,
                        with_keras: Callable[[Any], Any],
                        with_tf_keras: Callable[[Any], Any]) -> None:
    """Let Keras (or tf_keras, for Keras 2 files) rebuild the model; attach its layers."""
    errors = []
    loaders: list[tuple[str, Callable[[Any], Any]]] = [("keras", with_keras)]
    if str(spec.keras_version or "").startswith("2."):
        loaders.append(("tf_keras", with_tf_keras))
    purpose = f"{path}: rebuilding its Lambda or non-built-in layers with Keras"
    require("keras", purpose)  # missing: one error naming the extra, before any attempt
    for module_name, load in loaders:
        try:
            module = require(module_name, purpose)
            model = load(module)
        except Exception as e:  # Keras raises many types; all mean "could not rebuild"
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            errors.append(f"{module_name}: {type(e).__name__}: {first_line[:300]}")
            continue
        attach_live(spec, model, with_weights=False)
        return
    reason = "; ".join(errors)
    custom = _custom_layers(entry)
    if custom:
        name, cls = custom[0]
        raise UnsupportedLayerError(
            f"{path}: layer {name!r} has class {cls!r}, which is not a Keras built-in, and "
            f"Keras could not rebuild it. Pass custom_objects={{{cls!r}: TheClass}} so Keras "
            "can deserialize it, register a custom conversion function for the class, or "
            f"convert it to a Core ML custom layer with add_custom_layers=True. ({reason})")
    raise ModelFileError(f"{path}: Keras could not rebuild the model's Lambda layers ({reason})")
