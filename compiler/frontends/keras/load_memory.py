"""In-memory Keras models: the serialized config plus the live layers' variables.

The config goes through the same parser as files (load_config.py), so an in-memory
model and its saved file give equal specs. Weights come from the live variables,
named by ``Variable.name``; wrappers and RNNs are walked through the same
sub-layer table as files (``forward_layer`` -> ``forward/``, ``cell`` -> "").
Only this module (and loader.py's fallback for custom layers) imports Keras.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import ConversionError
from kcc.extras import require

from .live_graph import is_functional, model_entry
from .load_config import parse_model
from .load_weights import Child, weight_slots
from .spec import KerasModelSpec


def spec_from_model(model: Any) -> tuple[KerasModelSpec, dict | None]:
    """A spec with ``live`` layers and their weights, and the raw compile config."""
    keras = require("keras", "converting an in-memory Keras model")

    if not isinstance(model, keras.Model):
        raise ConversionError(
            f"in-memory models must be Keras 3 keras.Model objects, not {type(model).__module__}."
            f"{type(model).__name__}; save a tf.keras model with model.save('model.h5') and "
            "load the file")
    if not is_graph_model(model):
        raise ConversionError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed keras.Model with no "
            "functional layer graph; kcc converts Sequential and functional models (and "
            "Functional subclasses such as KerasHub backbones). Rebuild it with "
            "keras.Model(inputs, outputs).")
    entry = _as_json(model_entry(keras, model))
    spec = parse_model(entry)
    attach_live(spec, model, with_weights=True)
    return spec, _compile_config(keras, model)


def is_graph_model(model: Any) -> bool:
    """True for a model kcc can read a layer graph from: Sequential or (a subclass of) Functional."""
    keras = require("keras", "converting an in-memory Keras model")
    return isinstance(model, keras.Sequential) or is_functional(model)


def _compile_config(keras: Any, model: Any) -> dict | None:
    """``get_compile_config()``, completed from ``model.optimizer``/``model.loss``.

    Keras 3 ``model.save("x.h5")`` pops "optimizer" out of the model's stored compile
    config (a Keras quirk), so the live optimizer is the reliable source.
    """
    if not getattr(model, "compiled", False):
        return None
    config = dict(model.get_compile_config() or {})
    if config.get("optimizer") is None and getattr(model, "optimizer", None) is not None:
        config["optimizer"] = keras.saving.serialize_keras_object(model.optimizer)
    if config.get("loss") is None and getattr(model, "loss", None) is not None:
        config["loss"] = keras.saving.serialize_keras_object(model.loss)
    return config or None


def _as_json(x: Any) -> Any:
    """Tuples as lists, as in a config read back from a file."""
    if isinstance(x, dict):
        return {k: _as_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_as_json(v) for v in x]
    return x


def attach_live(spec: KerasModelSpec, model: Any, *, with_weights: bool) -> None:
    """Set ``live`` on every layer of ``spec`` found in ``model`` (recursively).

    With ``with_weights`` every layer's weights are read from it; otherwise only
    layers whose weights the file readers could not name (no table entry) are.
    """
    for layer in spec.layers:
        live = find_layer(model, layer.name)
        layer.live = live
        if live is None:
            continue
        if layer.model is not None:
            attach_live(layer.model, live, with_weights=with_weights)
        elif with_weights or weight_slots(layer.class_name, layer.config) is None:
            layer.weights = live_weights(live, layer.class_name, layer.config)


def find_layer(model: Any, name: str) -> Any:
    """The layer called ``name``; a Sequential's InputLayer is not in ``model.layers``.

    ``operations`` also holds the keras.ops calls of a functional graph (``GetItem``).
    """
    for layer in list(getattr(model, "layers", [])) + list(getattr(model, "_layers", [])) \
            + list(getattr(model, "operations", [])):
        if getattr(layer, "name", None) == name:
            return layer
    return None


def live_weights(live: Any, class_name: str, config: dict) -> dict[str, np.ndarray]:
    """Canonical name -> value of a live layer's variables."""
    slots = weight_slots(class_name, config)
    children = [s for s in slots or [] if isinstance(s, Child)]
    if not children:
        return _named(getattr(live, "weights", []))  # a keras.ops Operation has none
    out: dict[str, np.ndarray] = {}
    for child in children:
        sub = getattr(live, child.attr)
        out.update({child.prefix + k: v
                    for k, v in live_weights(sub, child.class_name, child.config).items()})
    return out


def _named(variables: list) -> dict[str, np.ndarray]:
    """By ``Variable.name``; by path below the common prefix if names collide."""
    names = [v.name.split("/")[-1].split(":")[0] for v in variables]  # tf.keras: "dense/kernel:0"
    if len(set(names)) < len(names):
        paths = [getattr(v, "path", v.name).split("/") for v in variables]
        common = 0
        while all(len(p) > common + 1 and p[common] == paths[0][common] for p in paths):
            common += 1
        names = ["/".join(p[common:]) for p in paths]
    return {name: np.array(v) for name, v in zip(names, variables)}
