"""Read Keras 3 ``.keras`` archives and Keras-3-layout weight files with zipfile/h5py.

A ``.keras`` file is a zip of ``config.json`` (the serialized model plus
``compile_config``), ``metadata.json`` (``keras_version``) and ``model.weights.h5``.
``model.save_weights("x.weights.h5")`` writes the same h5 layout alone (Keras 3 and
tf_keras >= 2.13 alike). The layout follows the object tree, not layer names::

    vars/                                  the top model's own variables (none)
    layers/<key>/vars/<i>                  a layer's own variables, by position
    layers/<key>/cell/vars/<i>             an RNN's cell
    layers/<key>/forward_layer/cell/...    Bidirectional (also backward_layer)
    layers/<key>/layer/vars/<i>            TimeDistributed
    layers/<key>/layers/<key2>/vars/<i>    a nested model's layers

``<key>`` is the snake-cased class name made unique in layer order (``dense``,
``dense_1``; a Sequential's InputLayer is not counted). Keras 3 also writes the
layer name as the ``name`` attribute of each ``vars`` group; tf_keras does not, so
the name is used when present and the class-name order otherwise.
"""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from kcc import limits
from kcc.errors import ModelFileError

from .load_weights import Child, weight_slots
from .spec import KerasModelSpec

ARCHIVE_EXPECTED = "a Keras 3 .keras archive (a zip holding config.json and model.weights.h5)"


def read_archive(path: Path) -> tuple[dict, bytes, str | None]:
    """The model config, the weights h5 bytes and the Keras version of a ``.keras`` file."""
    with zipfile.ZipFile(path) as archive:
        limits.check_zip(archive, str(path))
        names = set(archive.namelist())
        if "config.json" not in names:
            raise ModelFileError(f"{path}: the zip archive has no config.json; expected {ARCHIVE_EXPECTED}")
        if "model.weights.h5" not in names:
            sharded = " (sharded weights are not supported)" if "model.weights.json" in names else ""
            raise ModelFileError(f"{path}: the archive has no model.weights.h5{sharded}; "
                                 f"expected {ARCHIVE_EXPECTED}")
        config = limits.load_json(archive.read("config.json"), f"{path}: config.json")
        metadata = limits.load_json(archive.read("metadata.json"), f"{path}: metadata.json") \
            if "metadata.json" in names else {}
        weights = archive.read("model.weights.h5")
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: config.json holds a {type(config).__name__}, not a model config")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return config, weights, version if isinstance(version, str) else None


def open_weights(data: bytes) -> h5py.File:
    """An h5py file over in-memory bytes (the archive member)."""
    return h5py.File(io.BytesIO(data), "r")


def is_keras3_layout(f: h5py.Group) -> bool:
    """True for the object-tree layout (``layers/...``, ``vars``), not legacy ``layer_names``."""
    return "layer_names" not in f.attrs and "model_weights" not in f and ("layers" in f or "vars" in f)


def fill_weights(spec: KerasModelSpec, group: h5py.Group, sequential: bool, where: str) -> None:
    """Set ``weights`` of every layer of ``spec`` (recursively) from a Keras 3 layout group."""
    groups = _layer_groups(spec, group, sequential)
    for layer in spec.layers:
        g = groups.get(layer.name)
        if layer.model is not None:
            if g is not None:
                fill_weights(layer.model, g, layer.class_name == "Sequential", where)
            continue
        weights = read_layer(g, layer.class_name, layer.config, f"{where}: layer {layer.name!r}")
        layer.weights = weights if weights is not None else _generic(g)


def read_layer(group: h5py.Group | None, class_name: str, config: dict,
               what: str) -> dict[str, np.ndarray] | None:
    """One layer's variables by canonical name, or None if the class is not in the table."""
    slots = weight_slots(class_name, config)
    if slots is None:
        return None
    own = [s for s in slots if isinstance(s, str)]
    stored = group.get("vars") if group is not None else None
    count = len(stored) if stored is not None else 0
    if count != len(own):
        raise ModelFileError(f"{what} ({class_name}) has {count} stored variables, expected "
                             f"{len(own)} ({', '.join(own) or 'none'})")
    if stored is not None and not isinstance(stored, h5py.Group):
        raise ModelFileError(f"{what} ({class_name}): 'vars' is not a group of variables")
    out = {}
    for i, name in enumerate(own):
        if str(i) not in stored:
            raise ModelFileError(f"{what} ({class_name}): variable {i} ({name}) is missing from "
                                 f"'vars' (it holds {sorted(stored)})")
        out[name] = limits.read_dataset(stored[str(i)], f"{what}: variable {name}")
    for child in (s for s in slots if isinstance(s, Child)):
        sub = group.get(child.attr) if group is not None else None
        inner = read_layer(sub, child.class_name, child.config, f"{what}/{child.attr}")
        if inner is None:
            inner = _generic(sub)
        out.update({child.prefix + k: v for k, v in inner.items()})
    return out


def _generic(group: h5py.Group | None) -> dict[str, np.ndarray]:
    """Variables of a class without a table entry, named by their path (``0``, ``cell/1``)."""
    out: dict[str, np.ndarray] = {}
    if group is not None:
        # Collected first and read after the walk: h5py does not pass exceptions out of it cleanly.
        found: list[tuple[str, h5py.Dataset]] = []
        group.visititems(lambda name, obj: found.append((name, obj))
                         if isinstance(obj, h5py.Dataset) else None)
        for name, obj in found:
            out[name.replace("vars/", "")] = limits.read_dataset(obj, f"{group.name}/{name}")
    return out


def _layer_groups(spec: KerasModelSpec, group: h5py.Group, sequential: bool) -> dict[str, h5py.Group]:
    """Layer name -> its h5 group under ``group/layers``."""
    container = group.get("layers")
    if container is None:
        return {}
    by_attr = {str(_decode(sub["vars"].attrs["name"])): sub for sub in container.values()
               if "vars" in sub and "name" in sub["vars"].attrs}
    if by_attr:
        return by_attr
    used: dict[str, int] = {}
    out = {}
    for layer in spec.layers:
        if sequential and layer.class_name == "InputLayer":
            continue
        key = _unique(_snake_case(layer.class_name), used)
        if key in container:
            out[layer.name] = container[key]
    return out


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _decode(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value
