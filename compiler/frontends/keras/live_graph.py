"""A live functional model's layer graph, serialized as ``Functional.get_config`` writes it.

``serialize_keras_object(model)`` gives a Functional's layers only when its
constructor is functional-like. A subclass with its own constructor (every
KerasHub Backbone and Task: ``BertBackbone(vocabulary_size=..., ...)``) saves its
constructor arguments instead, so kcc's config parser (load_config.py) would
find no ``layers`` list. ``model_entry`` serializes such a model's live graph in
the same form Keras writes for a plain Functional, keeping the subclass's
``class_name``/``module``/``registered_name``; nested subclasses (a Task's
backbone) are serialized the same way, recursively.

The walk mirrors ``Functional.get_config`` (Keras 3.x: the ``operations`` in
order, the inbound nodes that belong to the model, node indices renumbered to
those, a nested Functional counting its own construction node first), using
Keras's own ``make_node_key`` and ``serialize_node``. One difference: a layer
whose ``get_config`` raises (keras-hub 0.32's ``LlamaTransformerDecoder`` reads
an attribute it never sets) gets a minimal entry (name, dtype, trainable). kcc
reads a config only for layers it has a handler for; a layer without one is
traced from its live object, which needs no config.
"""
from __future__ import annotations

from typing import Any


def is_functional(model: Any) -> bool:
    """True for a Functional model, including subclasses (KerasHub Backbones and Tasks)."""
    from keras.src.models.functional import Functional  # the class of every functional model

    return isinstance(model, Functional)


def has_layer_list(entry: dict) -> bool:
    config = entry.get("config")
    return isinstance(config, dict) and isinstance(config.get("layers"), list)


def model_entry(keras: Any, model: Any) -> dict:
    """``serialize_keras_object(model)``, with the layer graph of Functional subclasses.

    A plain Functional keeps Keras's own config, except that the entries of the
    Functional subclasses it calls (a backbone under a user's head) get their graph.
    """
    entry = _serialize(keras, model)
    if not is_functional(model):
        return entry
    if not has_layer_list(entry):
        return {**entry, "config": graph_config(keras, model)}
    ops = {op.name: op for op in model.operations}
    for layer in entry["config"]["layers"]:
        op = ops.get(layer.get("name"))
        if op is not None and is_functional(op) and not has_layer_list(layer):
            layer["config"] = graph_config(keras, op)
    return entry


def graph_config(keras: Any, model: Any) -> dict:
    """The ``{"name", "trainable", "layers", "input_layers", "output_layers"}`` of a Functional."""
    from keras.src.models.functional import serialize_node
    from keras.src.ops.function import make_node_key

    own = model._nodes  # the node keys of the model's graph
    renumbered: dict[str, int] = {}
    for op in model.operations:
        kept = 1 if is_functional(op) else 0  # a Functional's construction node comes first
        for i in range(len(op._inbound_nodes)):
            key = make_node_key(op, i)
            if key in own:
                renumbered[key] = kept
                kept += 1
    layers = []
    for op in model.operations:
        nodes = [serialize_node(node, own_nodes=own) for i, node in enumerate(op._inbound_nodes)
                 if make_node_key(op, i) in own]
        entry = model_entry(keras, op) if is_functional(op) else _serialize(keras, op)
        entry["name"] = op.name
        entry["inbound_nodes"] = [n for n in nodes if n is not None]
        layers.append(entry)

    def ref(tensor: Any) -> list:
        op, node_index, tensor_index = tensor._keras_history
        return [op.name, renumbered[make_node_key(op, node_index)], tensor_index]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": keras.tree.map_structure(ref, model._inputs_struct),
            "output_layers": keras.tree.map_structure(ref, model._outputs_struct)}


def _serialize(keras: Any, op: Any) -> dict:
    """``serialize_keras_object(op)``; a minimal entry if the layer's ``get_config`` raises."""
    try:
        return keras.saving.serialize_keras_object(op)
    except Exception:  # a third-party get_config: any error means "no usable config"
        cls = type(op)
        dtype = getattr(op, "dtype_policy", None)
        return {"module": cls.__module__, "class_name": cls.__name__,
                "registered_name": keras.saving.get_registered_name(cls),
                "config": {"name": op.name, "trainable": bool(getattr(op, "trainable", True)),
                           "dtype": getattr(dtype, "name", None) or "float32"}}


__all__ = ["is_functional", "model_entry", "graph_config", "has_layer_list"]
