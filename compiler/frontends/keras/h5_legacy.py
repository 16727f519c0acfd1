"""Read legacy HDF5 model and weight files with h5py alone.

Written by Keras 3 ``model.save("x.h5")``, tf.keras 2.x / tf_keras and standalone
Keras 2.0-2.2. The layout is the same in all three::

    /  attrs: keras_version, backend, model_config (JSON), training_config (JSON)
    /model_weights  attrs: layer_names = [layer, ...]
    /model_weights/<layer>  attrs: weight_names = ["<layer>/kernel:0", ...]
    /model_weights/<layer>/<weight_name>  the array (the name's "/" make subgroups)

A Keras 2 ``save_weights("x.h5")`` file is the ``model_weights`` group at the root.
Differences: Keras 3 names are variable paths without ``:0``
(``bi/forward_gru/gru_cell/kernel``, nested ``inner/dense/kernel``); tf.keras adds
``:0`` and drops the outer model in nested names (``dense/kernel:0``); Keras 2.0
written with old h5py stores attributes as bytes. Long attribute lists are split
into ``weight_names0``, ``weight_names1``... by tf.keras.

Within one layer the order is ``layer.weights`` order in every writer, so names
come from the positional table in load_weights.py. A nested model's list is
ordered trainable-first across its layers, so it is split by layer name first.
"""
from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from kcc import limits
from kcc.errors import ModelFileError

from .load_weights import flat_weight_names
from .spec import KerasLayer, KerasModelSpec

H5_EXPECTED = ("a Keras model saved with model.save('x.h5') (an HDF5 file with a "
               "model_config attribute and a model_weights group)")


def read_h5_model(f: h5py.File, where: str) -> tuple[dict, dict | None, str | None]:
    """The model config, raw training config and Keras version of a full-model h5 file."""
    if "model_config" not in f.attrs:
        hint = ""
        if "layer_names" in f.attrs or "layers" in f or "vars" in f:
            hint = (" This looks like a weights-only file: pass the architecture too, "
                    "as (model.json, weights.h5).")
        raise ModelFileError(f"{where}: the HDF5 file has no model_config attribute; "
                             f"expected {H5_EXPECTED}.{hint}")
    config = limits.load_json(_text(f.attrs["model_config"], "model_config", where),
                              f"{where}: model_config")
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: model_config holds a {type(config).__name__}, "
                             "not a model config")
    training = f.attrs.get("training_config")
    training = limits.load_json(_text(training, "training_config", where),
                                f"{where}: training_config") if training is not None else None
    return config, training if isinstance(training, dict) else None, keras_version_of(f)


def _text(value: Any, name: str, where: str) -> str:
    """A JSON attribute as text (str or bytes, as the writer's h5py stored it)."""
    value = decode(value)
    if not isinstance(value, str):
        raise ModelFileError(f"{where}: the {name} attribute is not text (found {type(value).__name__})")
    return value


def keras_version_of(f: h5py.Group) -> str | None:
    """The ``keras_version`` attribute of the file root or its ``model_weights``."""
    for group in (f, f.get("model_weights")):
        if isinstance(group, h5py.Group) and "keras_version" in group.attrs:
            return str(decode(group.attrs["keras_version"]))
    return None


def weights_root(f: h5py.File) -> h5py.Group:
    """The group that holds ``layer_names``: ``model_weights`` or the file root."""
    return f["model_weights"] if "model_weights" in f else f


def fill_weights(spec: KerasModelSpec, root: h5py.Group, where: str) -> None:
    """Set ``weights`` of every layer of ``spec`` (recursively) from a legacy group."""
    for layer in spec.layers:
        group = root.get(layer.name)
        named = [] if group is None else [
            (n, _dataset(group, n, f"{where}: layer {layer.name!r}"))
            for n in attr_list(group, "weight_names")]
        _assign(layer, named, f"{where}: layer {layer.name!r}")


def _dataset(group: h5py.Group, name: str, what: str) -> np.ndarray:
    if name not in group:
        raise ModelFileError(f"{what}: weight_names lists {name!r}, which the file does not hold")
    return limits.read_dataset(group[name], f"{what}: weight {name!r}")


def _assign(layer: KerasLayer, named: list[tuple[str, np.ndarray]], what: str) -> None:
    if layer.model is not None:
        _assign_nested(layer.model, named, what)
        return
    names = flat_weight_names(layer.class_name, layer.config)
    if names is None:  # not in the table: keep the stored short name (kernel:0 -> kernel)
        names = [n.split("/")[-1].split(":")[0] for n, _ in named]
    if len(names) != len(named):
        raise ModelFileError(f"{what} ({layer.class_name}) has {len(named)} stored weights "
                             f"{[n for n, _ in named]}, expected {len(names)} ({', '.join(names)})")
    layer.weights = {name: array for name, (_, array) in zip(names, named)}


def _assign_nested(model: KerasModelSpec, named: list[tuple[str, np.ndarray]], what: str) -> None:
    """Split a nested model's weight list by the layer named in each weight path."""
    owner_of: dict[str, KerasLayer] = {}
    for layer in model.layers:
        for name in _names_within(layer):
            owner_of.setdefault(name, layer)
    groups: dict[str, list[tuple[str, np.ndarray]]] = {layer.name: [] for layer in model.layers}
    for weight_name, array in named:
        owner = next((owner_of[p] for p in weight_name.split("/")[:-1] if p in owner_of), None)
        if owner is None:
            return _assign_positional(model, named, what)
        groups[owner.name].append((weight_name, array))
    for layer in model.layers:
        _assign(layer, groups[layer.name], f"{what}/{layer.name}")


def _assign_positional(model: KerasModelSpec, named: list[tuple[str, np.ndarray]], what: str) -> None:
    """Fallback when weight names do not name layers: layer after layer, in order."""
    rest = list(named)
    for layer in _leaves(model):
        names = flat_weight_names(layer.class_name, layer.config)
        if names is None:
            raise ModelFileError(f"{what}: cannot tell which stored weights belong to layer "
                                 f"{layer.name!r} ({layer.class_name})")
        _assign(layer, rest[:len(names)], f"{what}/{layer.name}")
        rest = rest[len(names):]
    if rest:
        raise ModelFileError(f"{what}: {len(rest)} stored weights belong to no layer: "
                             f"{[n for n, _ in rest]}")


def _names_within(layer: KerasLayer) -> list[str]:
    inner = [n for sub in layer.model.layers for n in _names_within(sub)] if layer.model else []
    return [layer.name] + inner


def _leaves(model: KerasModelSpec) -> list[KerasLayer]:
    return [leaf for layer in model.layers
            for leaf in (_leaves(layer.model) if layer.model else [layer])]


def attr_list(group: h5py.Group, name: str) -> list[str]:
    """A string-list attribute, joined from ``name0, name1...`` chunks if tf.keras split it."""
    if name in group.attrs:
        values = group.attrs[name]
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(group.attrs[f"{name}{i}"])
            i += 1
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        values = [values]
    return [str(decode(v)) for v in values]


def decode(value: Any) -> Any:
    """h5py returns bytes for attributes written by old h5py versions (Keras 2.0 era)."""
    if isinstance(value, np.bytes_):
        value = bytes(value)
    return value.decode("utf-8") if isinstance(value, bytes) else value
