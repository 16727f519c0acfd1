"""Parse a serialized Keras model config (any writer) into a weightless KerasModelSpec.

One parser serves every source: in-memory models (``serialize_keras_object``),
``.keras`` archives, legacy ``.h5`` files and ``to_json`` files, from Keras 3,
tf.keras 2.x and Keras 2.0-2.2. Writer differences handled here:

* inbound nodes: Keras 3 ``{"args": [...], "kwargs": {...}}`` with
  ``__keras_tensor__`` dicts, Keras 2 ``[[["name", node, tensor, {kwargs}], ...]]``;
* model inputs/outputs: one ``["name", 0, 0]`` triple, a list of them, or a dict;
* Sequential: a bare list of layers (Keras 2.0/2.1), a dict with or without an
  InputLayer, the input shape on the first layer's ``batch_input_shape`` or in
  ``build_input_shape``; always turned into an explicit InputLayer plus a chain;
* configs: ``batch_input_shape`` -> ``batch_shape``, dtype policies -> strings,
  serialized built-in activations -> strings, Keras 2 key renames, serialization
  bookkeeping (``shared_object_id``) dropped.

Weights are filled in afterwards by the format's reader (archive_keras3.py,
h5_legacy.py, load_memory.py).
"""
from __future__ import annotations

import copy
from typing import Any

from kcc.errors import ModelFileError

from .load_builtins import MODEL_CLASSES
from .spec import KerasLayer, KerasModelSpec, LayerCall, TensorRef

# Keras 2 config keys Keras 3 renamed, per layer class.
RENAMED_KEYS: dict[str, dict[str, str]] = {
    "LeakyReLU": {"alpha": "negative_slope"},
}
# Defaults of Keras 2.0-2.2 that differ from Keras 3 and were not written to files.
KERAS2_DEFAULTS: dict[str, dict[str, Any]] = {
    "GRU": {"reset_after": False},
    "GRUCell": {"reset_after": False},
}
ACTIVATION_KEYS = ("activation", "recurrent_activation")
# Config keys that hold a whole nested layer ({"class_name", "config"}).
NESTED_LAYER_KEYS = ("layer", "backward_layer", "cell")
# Keras parameter names of the 2nd, 3rd... positional call argument.
POSITIONAL_NAMES: dict[str, tuple[str, ...]] = {
    "MultiHeadAttention": ("query", "value", "key"),
    "GroupQueryAttention": ("query", "value", "key"),
    "GroupedQueryAttention": ("query", "value", "key"),
}


def is_model_entry(entry: dict) -> bool:
    """True for a serialized Sequential/Functional (or subclass with a graph config)."""
    config = entry.get("config")
    return (entry.get("class_name") in MODEL_CLASSES or isinstance(config, list)
            or (isinstance(config, dict) and isinstance(config.get("layers"), list)))


def parse_model(entry: dict) -> KerasModelSpec:
    """A serialized model ``{"class_name", "config"}`` -> spec without weights."""
    config = entry.get("config")
    if entry.get("class_name") == "Sequential" or isinstance(config, list):
        return _parse_sequential(entry)
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelFileError(f"model config of class {entry.get('class_name')!r} has no 'layers' list")
    layers = [_parse_layer(e) for e in config["layers"]]
    spec = KerasModelSpec(name=config.get("name", "model"), layers=layers,
                          inputs=_refs(config.get("input_layers", [])),
                          outputs=_refs(config.get("output_layers", [])))
    keras3 = any(isinstance(n, dict) for e in config["layers"] for n in e.get("inbound_nodes", []))
    _rebase_nested_refs(spec, keras3)
    return spec


def _rebase_nested_refs(spec: KerasModelSpec, keras3: bool) -> None:
    """Make ``node_index`` of references to nested models an index into their calls.

    A nested model's serialized node indices can count its own construction node
    ("Functional models start with a pre-existing node"). Keras 3 counts it only in
    ``output_layers`` and only for Functional (not Sequential); Keras 2 counts it
    everywhere, for Functional always and for tf.keras Sequential when it has an
    input shape. In Keras 2 every call is referenced (a call off the path to the
    outputs is not saved), so the offset is the largest index minus the last call.
    """
    refs = [r for layer in spec.layers for call in layer.calls for r in call.input_refs()]
    node_shift: dict[str, int] = {}
    output_shift: dict[str, int] = {}
    for layer in spec.layers:
        if layer.model is None or not layer.calls:
            continue
        if keras3:
            output_shift[layer.name] = int(layer.class_name != "Sequential")
        else:
            used = [r.node_index for r in refs + spec.outputs if r.layer == layer.name]
            shift = max(used, default=0) - (len(layer.calls) - 1)
            node_shift[layer.name] = output_shift[layer.name] = max(shift, 0)
    if any(node_shift.values()):
        for layer in spec.layers:
            for call in layer.calls:
                call.args = _shift(call.args, node_shift)
                call.kwargs = _shift(call.kwargs, node_shift)
    spec.outputs = _shift(spec.outputs, output_shift)


def _shift(x: Any, shift: dict[str, int]) -> Any:
    if isinstance(x, TensorRef):
        return TensorRef(x.layer, x.node_index - shift.get(x.layer, 0), x.tensor_index)
    if isinstance(x, list):
        return [_shift(v, shift) for v in x]
    if isinstance(x, tuple):
        return tuple(_shift(v, shift) for v in x)
    if isinstance(x, dict):
        return {k: _shift(v, shift) for k, v in x.items()}
    return x


def _parse_sequential(entry: dict) -> KerasModelSpec:
    config = entry["config"]
    raw = config if isinstance(config, list) else config.get("layers", [])
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    name = name or "sequential"
    if not raw:
        raise ModelFileError(f"Sequential model {name!r} has no layers")
    layers = [_parse_layer(e) for e in raw]
    if layers[0].class_name != "InputLayer":
        layers.insert(0, _input_for(name, raw[0], layers[0], config))
    prev = TensorRef(layers[0].name)
    for layer in layers[1:]:
        layer.calls = [LayerCall(prev)]
        prev = TensorRef(layer.name)
    return KerasModelSpec(name=name, layers=layers, inputs=[TensorRef(layers[0].name)],
                          outputs=[prev])


def _input_for(model_name: str, first_raw: dict, first: KerasLayer, seq_config: Any) -> KerasLayer:
    """The InputLayer a Sequential without one implies (Keras 2 names it ``<first>_input``)."""
    raw_cfg = first_raw.get("config", {})
    shape = raw_cfg.get("batch_input_shape") or raw_cfg.get("batch_shape")
    if shape is None and isinstance(seq_config, dict):
        shape = seq_config.get("build_input_shape")
    if shape is None and first.model is not None:
        shape = first.model.layers[0].config.get("batch_shape")
    if shape is None:
        raise ModelFileError(
            f"Sequential model {model_name!r} has no input shape (it was never built); "
            "give it a keras.Input or call model.build(input_shape) before saving")
    dtype = _dtype(raw_cfg.get("dtype"))  # Keras 2 gave the input its first layer's dtype
    name = f"{first.name}_input"
    return KerasLayer(name=name, class_name="InputLayer",
                      config={"batch_shape": list(shape), "dtype": dtype or "float32",
                              "sparse": False, "name": name})


def _parse_layer(entry: dict) -> KerasLayer:
    class_name = entry["class_name"]
    raw = entry.get("config")
    model = parse_model(entry) if is_model_entry(entry) else None
    if model is not None:
        config = {k: v for k, v in raw.items() if k not in ("layers", "input_layers", "output_layers")} \
            if isinstance(raw, dict) else {"name": model.name}
        config = normalize_config(class_name, config)
    else:
        config = normalize_config(class_name, raw or {})
    name = entry.get("name") or config.get("name") or (model.name if model else None)
    if not name:
        raise ModelFileError(f"a {class_name} layer in the model config has no name")
    if model is not None:
        model.name = name
    calls = [_parse_call(node, class_name) for node in entry.get("inbound_nodes", [])]
    return KerasLayer(name=name, class_name=class_name, config=config, calls=calls, model=model,
                      module=entry.get("module"), registered_name=entry.get("registered_name"),
                      trainable=bool(config.get("trainable", True)))


def normalize_config(class_name: str, config: dict) -> dict:
    """One layer config in Keras 3 form (a new dict; nested layers normalized too)."""
    c = _copy_stripped(config)
    for old, new in RENAMED_KEYS.get(class_name, {}).items():
        if old in c and new not in c:
            c[new] = c.pop(old)
    for key, value in KERAS2_DEFAULTS.get(class_name, {}).items():
        c.setdefault(key, value)
    if class_name == "InputLayer":
        if "batch_input_shape" in c:
            c["batch_shape"] = c.pop("batch_input_shape")
    else:
        # The shape of a Sequential's first layer lives on in its InputLayer.
        c.pop("batch_input_shape", None)
        c.pop("batch_shape", None)
    c["dtype"] = _dtype(c.get("dtype")) or "float32"
    for key in ACTIVATION_KEYS:
        if key in c:
            c[key] = _activation(c[key])
    for key in NESTED_LAYER_KEYS:
        inner = c.get(key)
        if isinstance(inner, dict) and "class_name" in inner and isinstance(inner.get("config"), dict):
            inner["config"] = normalize_config(inner["class_name"], inner["config"])
    return c


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_stripped(x: Any) -> Any:
    """``_strip_bookkeeping(copy.deepcopy(x))`` in one walk: dicts and lists are
    copied as they are stripped, JSON scalars shared, anything else deep-copied."""
    if isinstance(x, dict):
        return {k: _copy_stripped(v) for k, v in x.items() if k != "shared_object_id"}
    if isinstance(x, list):
        return [_copy_stripped(v) for v in x]
    if isinstance(x, _IMMUTABLE):
        return x
    return copy.deepcopy(x)


def _strip_bookkeeping(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip_bookkeeping(v) for k, v in x.items() if k != "shared_object_id"}
    if isinstance(x, list):
        return [_strip_bookkeeping(v) for v in x]
    return x


def _dtype(value: Any) -> str | None:
    """``"float32"``, a Keras 3 DTypePolicy dict or a tf.keras Policy dict -> a string."""
    if isinstance(value, dict):
        inner = value.get("config", {})
        return inner.get("name") if isinstance(inner, dict) else None
    return value


def _activation(value: Any) -> Any:
    """A serialized built-in activation function -> its name; anything else unchanged."""
    if isinstance(value, dict) and value.get("class_name") == "function" \
            and str(value.get("module", "keras")).startswith("keras") \
            and isinstance(value.get("config"), str):
        return value["config"]
    return value


def _refs(value: Any) -> list[TensorRef]:
    """Model ``input_layers``/``output_layers``: a triple, a list of triples, or a dict.

    A dict is taken in sorted key order, the order in which Keras flattens it
    (``model.inputs``; a call's dict argument; ``tensor_index`` into dict outputs).
    """
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if _is_triple(value):
        value = [value]
    return [TensorRef(v[0], int(v[1]), int(v[2])) for v in value]


def _is_triple(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) >= 3 and isinstance(v[0], str) \
        and isinstance(v[1], int)


def _parse_call(node: Any, class_name: str) -> LayerCall:
    if isinstance(node, dict):  # Keras 3
        args = [_tensors(a) for a in node.get("args", [])]
        kwargs = {k: _tensors(v) for k, v in node.get("kwargs", {}).items()}
        extra_names = POSITIONAL_NAMES.get(class_name, ())
        for i, arg in enumerate(args[1:], start=1):
            key = extra_names[i] if i < len(extra_names) else f"arg{i}"
            kwargs[key] = arg
        if not args and extra_names and extra_names[0] in kwargs:  # layer(query=q, value=v)
            args = [kwargs.pop(extra_names[0])]
        return LayerCall(args[0] if args else [], kwargs)
    # Keras 2: one entry [name, node_index, tensor_index, kwargs] per input tensor.
    refs = [TensorRef(e[0], int(e[1]), int(e[2])) for e in node]
    kwargs = dict(node[0][3]) if node and len(node[0]) > 3 and node[0][3] else {}
    return LayerCall(refs[0] if len(refs) == 1 else refs, kwargs)


def _tensors(x: Any) -> Any:
    """Replace Keras 3 ``__keras_tensor__`` dicts by TensorRefs, recursively.

    A constant call argument serialized as a tensor or array (``x * ops.sqrt(4.0)``
    stores ``{"class_name": "__tensor__", "config": {"value": 2.0, ...}}``) becomes
    its value, a number or nested list, as a Python constant would be stored.
    """
    if isinstance(x, dict):
        if x.get("class_name") == "__keras_tensor__":
            history = x["config"]["keras_history"]
            return TensorRef(history[0], int(history[1]), int(history[2]))
        value = (x.get("config") or {}).get("value") if isinstance(x.get("config"), dict) else None
        if x.get("class_name") in ("__tensor__", "__numpy__") and _numeric(value):
            return value
        return {k: _tensors(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_tensors(v) for v in x]
    return x


def _numeric(x: Any) -> bool:
    """A number or a nested list of numbers (not bool)."""
    if isinstance(x, list):
        return all(_numeric(v) for v in x)
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def normalize_training_config(raw: dict | None) -> dict | None:
    """A Keras 3 ``compile_config`` or an h5 ``training_config`` -> one form.

    ``{"loss": str | dict | list, "optimizer": {"class_name", "config"}, "metrics": ...}``.
    Optimizer class names lose tf.keras' ``Custom>`` prefix and Keras 2's ``lr`` is
    ``learning_rate``; a serialized loss object becomes its class name
    (``"MeanSquaredError"``), a serialized loss function its name.
    """
    if not raw:
        return None
    optimizer = raw.get("optimizer_config", raw.get("optimizer"))
    return {"loss": _loss(raw.get("loss")), "optimizer": _optimizer(optimizer),
            "metrics": _strip_bookkeeping(raw.get("metrics"))}


def _optimizer(value: Any) -> dict | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"class_name": value, "config": {}}
    config = _strip_bookkeeping(dict(value.get("config") or {}))
    if "lr" in config and "learning_rate" not in config:
        config["learning_rate"] = config.pop("lr")
    return {"class_name": str(value.get("class_name", "")).split(">")[-1], "config": config}


def _loss(value: Any) -> Any:
    if isinstance(value, list):
        return [_loss(v) for v in value]
    if isinstance(value, dict):
        if "class_name" not in value:  # one loss per output name
            return {k: _loss(v) for k, v in value.items()}
        if value["class_name"] == "function" and isinstance(value.get("config"), str):
            return value["config"]
        return str(value["class_name"]).split(">")[-1]
    return value
