"""What a Keras model file may make kcc do: run no code and read no other file.

Two checks run before anything in a file is deserialized or read as weights:

* ``find_code(config)``: the first place in a model config where Keras would
  turn file contents into Python code when it rebuilds the model. Keras and
  tf_keras store code in these forms, all found anywhere in the config tree
  (nested models, wrappers, cells, activations, ``arguments``):

  - Keras 3: ``{"class_name": "__lambda__", "config": {"code" | "value": ...}}``;
  - Keras 2 Lambda: ``function`` (or ``output_shape``, ``mask``) stored as a
    list ``[bytecode, defaults, closure]``, whatever its ``function_type`` says
    (Keras 3's legacy loader turns every list into a ``__lambda__``), or any
    ``*_type == "lambda"`` (tf_keras then unmarshals the value as bytecode);
  - Keras 2 Lambda naming a function by string together with a ``module``
    outside Keras/TensorFlow: tf_keras looks the name up in that module, so
    ``{"function": "system", "module": "os"}`` would call ``os.system``.

  Class references with a ``module`` outside the Keras family are not code
  here: Keras 3 refuses to import them in safe mode, and kcc hands files to
  Keras with the caller's ``safe_mode``.

* ``check_hdf5(f, where)``: an HDF5 file may point outside itself (external
  links, external raw storage, virtual datasets mapping other files, soft links
  that can loop). Keras never writes any of these, and following them would put
  host files into the converted model, so each is refused with the object's path.
"""
from __future__ import annotations

from typing import Any

import h5py
from h5py import h5d, h5g, h5l, h5o

from kcc.errors import ModelFileError, UnsafeModelError
from kcc.limits import array_bytes

from .h5_tree import DATASET, GROUP, H5Tree

# Keras 2 Lambda fields: the stored value and the field that says how to read it.
_LAMBDA_FIELDS = (("function", "function_type", "module"),
                  ("output_shape", "output_shape_type", "output_shape_module"),
                  ("mask", "mask_type", "mask_module"))
# Modules whose functions a Keras 2 Lambda may name by string without running file code.
_TRUSTED_MODULE_ROOTS = ("keras", "tf_keras", "tensorflow", "__main__")
UNSAFE_HINT = "If you trust the file, pass safe_mode=False (API) or --unsafe (CLI)."


def find_code(config: Any) -> str | None:
    """Where ``config`` stores Python code (``"layer 'f': ..."``), or None if it stores none.

    Walks the tree iteratively, so a deeply nested config cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(config, "")]
    while stack:
        item, layer = stack.pop()
        if isinstance(item, list):
            stack.extend((child, layer) for child in item)
            continue
        if not isinstance(item, dict):
            continue
        inner = item.get("config")
        name = item.get("name") or (inner.get("name") if isinstance(inner, dict) else None)
        if isinstance(name, str) and "class_name" in item:
            layer = name
        if item.get("class_name") == "__lambda__":
            return f"{_where(layer)} stores a Python lambda as bytecode"
        if item.get("class_name") == "Lambda" and isinstance(inner, dict):
            found = _lambda_code(inner)
            if found:
                return f"{_where(layer)} (Lambda) {found}"
        stack.extend((child, layer) for child in item.values() if isinstance(child, (dict, list)))
    return None


def _where(layer: str) -> str:
    return f"layer {layer!r}" if layer else "the model config"


def _lambda_code(config: dict) -> str | None:
    for field, type_field, module_field in _LAMBDA_FIELDS:
        value, kind = config.get(field), config.get(type_field)
        if kind == "lambda":
            return f"stores its {field} as Python bytecode ({type_field}='lambda')"
        if isinstance(value, (list, tuple)) and not _is_shape(field, value):
            return f"stores its {field} as Python bytecode (a [code, defaults, closure] list)"
        module = config.get(module_field)
        if isinstance(value, str) and module is not None and not _trusted(module):
            return (f"names its {field} {value!r} in module {module!r}; loading it would call "
                    "a function of that module")
    return None


def _is_shape(field: str, value: Any) -> bool:
    """An ``output_shape`` stored as a list of dims is data, not code."""
    return field == "output_shape" and all(v is None or isinstance(v, int) for v in value)


def _trusted(module: Any) -> bool:
    return isinstance(module, str) and module.split(".")[0] in _TRUSTED_MODULE_ROOTS


def refuse_code(config: Any, where: str) -> None:
    """Raise UnsafeModelError if ``config`` stores code (see ``find_code``)."""
    found = find_code(config)
    if found:
        raise UnsafeModelError(f"{where}: {found}, and loading it would run code from the file. "
                               f"{UNSAFE_HINT}")


def check_hdf5(f: h5py.File, where: str) -> H5Tree:
    """Refuse an HDF5 file whose objects point outside it (see the module docstring).

    Returns the tree the walk found (``h5_tree.H5Tree``: every path, which are
    groups and which datasets, and the bytes the datasets declare, each object
    counted once), for the weights reader.
    """
    found: list[str] = []
    tree = H5Tree(f)
    objects: dict[int, Any] = {}  # object address -> DATASET, GROUP, or None for another kind

    def visit(raw: bytes, info: Any) -> bool | None:
        # h5py stops the walk on a non-None return; an exception raised here would
        # surface as a SystemError, so the finding is raised after the walk.
        hard = info.type == h5l.TYPE_HARD
        if hard and _plain_hard_link(f, raw, info.u, objects, tree):
            tree.add(raw.decode("utf-8"), objects[info.u])
            return None
        name = f._d(raw)
        problem = _outside_pointer(f, name, f.get(name, getlink=True))
        if problem:
            found.append(f"HDF5 {problem}")
            return True
        if hard:
            obj = f.get(name)
            if info.u not in objects:
                tree.declared_bytes += _declared_bytes(obj)
            objects[info.u] = (DATASET if isinstance(obj, h5py.Dataset)
                               else GROUP if isinstance(obj, h5py.Group) else None)
            tree.add(name, objects[info.u])
        return None

    try:
        # The walk of ``f.visititems_links``, with link types from the walk itself
        # and objects opened at the low level: a weights file has one link per
        # array, and h5py's high-level objects cost most of the load time of a
        # model with many layers (bench/graph_scaling.py).
        f.id.links.visit(visit, info=True)
    except SystemError as e:  # how h5py surfaces an error met while walking a corrupt object tree
        raise ModelFileError(f"{where}: cannot read the HDF5 file's object tree (corrupt or "
                             f"truncated?): {e.__context__ or e}") from None
    if found:
        raise UnsafeModelError(f"{where}: {found[0]}; kcc reads weights only from the file it "
                               "is given (Keras never writes these). Re-save the model with Keras.")
    return tree


def _plain_hard_link(f: h5py.File, raw: bytes, address: int, objects: dict[int, Any],
                     tree: H5Tree) -> bool:
    """True when the object a hard link names (at ``address``) is no dataset, or a dataset
    with its data in this file (no external storage, not virtual); its kind goes in
    ``objects`` and its declared bytes in ``tree``. False when in doubt (a
    name that is not UTF-8, an object that cannot be opened here): ``_outside_pointer``
    then looks through h5py's high-level objects, as before, and fails as they do."""
    try:
        raw.decode("utf-8")  # a name that is not UTF-8 fails in h5py's high-level path
        if address in objects:  # another link to an object already looked at
            return True
        oid = h5o.open(f.id, raw)
        if not isinstance(oid, h5d.DatasetID):
            objects[address] = GROUP if isinstance(oid, h5g.GroupID) else None
            return True
        dcpl = oid.get_create_plist()
        if dcpl.get_external_count() > 0 or dcpl.get_layout() == h5d.VIRTUAL:
            return False
        shape = oid.shape
        tree.declared_bytes += 0 if shape is None else array_bytes(shape, oid.dtype.itemsize)
        objects[address] = DATASET
        return True
    except Exception:  # noqa: BLE001 - decided by the high-level path, as before
        return False


def _declared_bytes(obj: Any) -> int:
    """The bytes a high-level object declares (0 for anything but a dataset)."""
    if hasattr(obj, "dtype") and hasattr(obj, "shape") and obj.shape is not None:
        return array_bytes(obj.shape, obj.dtype.itemsize)
    return 0


def _outside_pointer(f: h5py.File, name: str, link: Any) -> str | None:
    if isinstance(link, h5py.ExternalLink):
        return f"object '/{name}' is an external link to {link.filename!r}"
    if isinstance(link, h5py.SoftLink):
        return f"object '/{name}' is a soft link to {link.path!r}"
    obj = f.get(name)
    if isinstance(obj, h5py.Dataset):
        if obj.external:
            return (f"dataset '/{name}' keeps its data in external file(s) "
                    f"{[e[0] for e in obj.external]!r}")
        if obj.is_virtual:
            return f"dataset '/{name}' is a virtual dataset mapping other files"
    return None
