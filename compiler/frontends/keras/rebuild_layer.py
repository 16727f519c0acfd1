"""Rebuild single layers of a ``.keras`` archive with Keras, not the whole model.

A Lambda, or a class kcc has no handler for, is traced (trace.py), and tracing
needs the live layer object. Rebuilding the whole model with
``keras.saving.load_model`` costs seconds per hundred layers (25 s for
InceptionResNetV2); the layers that need tracing are usually a handful. Each
one is rebuilt on its own, as Keras's loader would rebuild it:

    raw layer entry --keras.saving.deserialize_keras_object--> layer (built from
      its build_config) --Keras's own variable loader, at the layer's path in
      model.weights.h5--> weights --one call on symbolic inputs of the recorded
      input shape--> ``KerasLayer.live``

``safe_mode`` and ``custom_objects`` go to Keras unchanged. The symbolic call is
the one Keras's model reconstruction makes, so a Lambda body runs at load time
exactly when ``load_model`` would run it. When a layer cannot be rebuilt alone
(a custom layer inside a wrapper or RNN cell, a layer without a build config,
weights the file's layout does not place, a Keras whose private loader differs)
``rebuild_layers`` returns False and the caller rebuilds the whole model.

Every layer read without Keras (built-ins, keras.ops operations, keras.applications'
``LayerScale``) gets a deferred rebuild instead (``defer_rebuilds``): a handler
that meets a configuration it does not express hands the layer to the fallback
chain, which then builds just that layer from its config and weights.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, Callable

import h5py

from kcc.extras import require

from . import archive_keras3, safety
from .h5_tree import H5Node
from .load_memory import live_weights
from .load_weights import flat_weight_names, weight_slots
from .spec import KerasLayer, KerasModelSpec

# (spec layer, its raw serialized entry, the path of its group in model.weights.h5 or None)
Target = tuple[KerasLayer, dict, "str | None"]


def rebuild_layers(spec: KerasModelSpec, entry: dict, weights: bytes, needs_keras: Callable[[dict], bool],
                   inner_layers: Callable[[dict], Iterable[dict]], where: str, *, safe_mode: bool,
                   custom_objects: dict | None) -> bool:
    """Set ``live`` on every layer ``needs_keras`` selects; False if one must come from the whole model.

    ``inner_layers(raw)`` lists the layer entries inside a layer's config (wrapped
    layers, RNN cells): one of those needing Keras needs its wrapper rebuilt too.
    """
    with h5py.File(io.BytesIO(weights), "r") as f:
        tree = safety.check_hdf5(f, f"{where}: model.weights.h5")
        targets = _targets(spec, entry, tree.root, needs_keras, inner_layers, _is_sequential(entry))
    if targets is None:
        return False
    keras = require("keras", f"{where}: rebuilding its Lambda or non-built-in layers with Keras")
    try:
        from keras.src.saving.saving_lib import H5IOStore, _load_state

        store = H5IOStore(io.BytesIO(weights), mode="r")
        try:
            rebuilt = [(layer, _rebuild(keras, raw, path, store, _load_state, safe_mode, custom_objects))
                       for layer, raw, path in targets]
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - any failure: the whole-model route, which reports Keras's error
        return False
    for layer, live in rebuilt:
        layer.live = live
        if weight_slots(layer.class_name, layer.config) is None:
            layer.weights = live_weights(live, layer.class_name, layer.config)
    return True


def defer_rebuilds(spec: KerasModelSpec, entry: dict, select: Callable[[dict], bool], where: str, *,
                   safe_mode: bool, custom_objects: dict | None) -> None:
    """Give every layer ``select`` picks a ``rebuild_live`` that builds it with Keras when first asked.

    These are layers read without Keras (a handler lowers them from the config)
    whose handler may still hand an unusual configuration to the fallback chain,
    which traces the live layer. Keras is imported only then, for that layer.
    """
    for layer, raw in _pairs(spec, entry):
        if select(raw):
            layer.rebuild_live = _deferred(layer, raw, where, safe_mode, custom_objects)


def _deferred(layer: KerasLayer, raw: dict, where: str, safe_mode: bool,
              custom_objects: dict | None) -> Callable[[], Any]:
    def rebuild() -> Any:
        keras = require("keras", f"{where}: rebuilding layer {layer.name!r} with Keras to trace it")
        live = keras.saving.deserialize_keras_object(raw, custom_objects=custom_objects, safe_mode=safe_mode)
        if not layer.weights:
            return live
        if not getattr(live, "built", False):
            raise ValueError("its config records no build shape to load its variables into")
        names = flat_weight_names(layer.class_name, layer.config)
        if names is not None:  # a table class: canonical names, in ``layer.weights`` order
            live.set_weights([layer.weights[n] for n in names])
        elif set(layer.weights) == {str(i) for i in range(len(layer.weights))}:
            live.load_own_variables(dict(layer.weights))  # by position, as the archive stores them
        else:
            raise ValueError("its stored variables are not one flat list of the layer's own")
        return live
    return rebuild


def _pairs(spec: KerasModelSpec, entry: dict) -> Iterable[tuple[KerasLayer, dict]]:
    """(spec layer, its raw entry) of every non-model layer, nested models included."""
    raw_by_name = {_name(e): e for e in _raw_layers(entry)}
    for layer in spec.layers:
        raw = raw_by_name.get(layer.name)
        if raw is None:
            continue
        if layer.model is not None:
            yield from _pairs(layer.model, raw)
        else:
            yield layer, raw


def _rebuild(keras: Any, raw: dict, path: str | None, store: Any, load_state: Callable[..., None],
             safe_mode: bool, custom_objects: dict | None) -> Any:
    layer = keras.saving.deserialize_keras_object(raw, custom_objects=custom_objects, safe_mode=safe_mode)
    build = raw.get("build_config") or {}
    if not getattr(layer, "built", False) or "input_shape" not in build:
        raise ValueError(f"layer {raw.get('name')!r} records no build config")
    if layer.weights:
        if path is None:
            raise ValueError(f"layer {raw.get('name')!r} has no weights group")
        load_state(layer, store, None, path)
    layer(_symbolic(keras, build["input_shape"]))
    return layer


def _symbolic(keras: Any, shape: Any) -> Any:
    """KerasTensors of a build_config ``input_shape``: one shape, a list or a dict of shapes."""
    if isinstance(shape, dict):
        return {k: _symbolic(keras, v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
        return keras.KerasTensor(tuple(shape), dtype="float32")
    if isinstance(shape, (list, tuple)):
        return [_symbolic(keras, s) for s in shape]
    raise ValueError(f"unexpected input_shape {shape!r}")


def _targets(spec: KerasModelSpec, entry: dict, f: H5Node | None, needs_keras: Callable[[dict], bool],
             inner_layers: Callable[[dict], Iterable[dict]], sequential: bool) -> list[Target] | None:
    """The layers to rebuild at this model level and below; None if one hides inside a wrapper."""
    raw_by_name = {_name(e): e for e in _raw_layers(entry)}
    groups = archive_keras3._layer_groups(spec, f, sequential) if f is not None else {}
    out: list[Target] = []
    for layer in spec.layers:
        raw = raw_by_name.get(layer.name)
        if raw is None:
            continue  # a Sequential's added InputLayer
        group = groups.get(layer.name)
        if layer.model is not None:
            inner = _targets(layer.model, raw, group, needs_keras,
                             inner_layers, _is_sequential(raw))
            if inner is None:
                return None
            out += inner
        elif needs_keras(raw):
            out.append((layer, raw, group.name.lstrip("/") if group is not None else None))
        elif any(needs_keras(e) for e in inner_layers(raw)):
            return None
    return out


def _raw_layers(entry: dict) -> list[dict]:
    config = entry.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers") or []
    return [e for e in layers if isinstance(e, dict)]


def _name(raw: dict) -> str | None:
    config = raw.get("config")
    return raw.get("name") or (config.get("name") if isinstance(config, dict) else None)


def _is_sequential(entry: dict) -> bool:
    return entry.get("class_name") == "Sequential" or isinstance(entry.get("config"), list)


__all__ = ["rebuild_layers", "defer_rebuilds"]
