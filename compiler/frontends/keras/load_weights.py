"""Which variables a built-in Keras layer owns, in the order Keras writes them.

Every writer stores a layer's variables positionally: Keras 3 archives as
``vars/0, vars/1, ...`` (own variables, then each sub-layer under its attribute
name, e.g. ``cell/vars/0``), legacy ``.h5`` files in the ``weight_names`` order.
Names in those files differ between writers (``depthwise_kernel:0`` in Keras 2 is
``kernel`` in Keras 3's DepthwiseConv2D), so this table, not the stored name,
decides the canonical name: the ``Variable.name`` Keras 3 gives it, with wrapper
prefixes (``forward/``, ``backward/``, ``layer/``, ``query/`` ...).

A table entry is a function of the layer config (flags such as ``use_bias``,
``center``, ``scale`` decide which variables exist) returning a list of slots:
a string is one own variable, a :class:`Child` is a sub-layer with its own entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Child:
    """A sub-layer holding variables: its attribute in archives and its name prefix."""

    attr: str
    prefix: str
    class_name: str
    config: dict[str, Any]


Slot = Union[str, Child]


def _kernel_bias(c: dict) -> list[Slot]:
    return ["kernel"] + (["bias"] if c.get("use_bias", True) else [])


def _einsum_dense(c: dict) -> list[Slot]:
    # EinsumDense has a bias when ``bias_axes`` names axes; MultiHeadAttention's child
    # entries (below) say ``use_bias`` instead.
    has_bias = bool(c["bias_axes"]) if "bias_axes" in c else c.get("use_bias", True)
    return ["kernel"] + (["bias"] if has_bias else [])


def _separable(c: dict) -> list[Slot]:
    return ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if c.get("use_bias", True) else [])


def _recurrent(c: dict) -> list[Slot]:
    return ["kernel", "recurrent_kernel"] + (["bias"] if c.get("use_bias", True) else [])


def _gamma_beta(c: dict) -> list[Slot]:
    return (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else [])


def _batch_norm(c: dict) -> list[Slot]:
    renorm = ["moving_stddev", "renorm_mean", "renorm_stddev"] if c.get("renorm") else []
    return _gamma_beta(c) + ["moving_mean", "moving_variance"] + renorm


def _normalization(c: dict) -> list[Slot]:
    # Mean and variance given in the config are constants, not variables.
    return ["mean", "variance", "count"] if c.get("mean") is None else []


def _rnn(cell_class: str) -> Callable[[dict], list[Slot]]:
    return lambda c: [Child("cell", "", cell_class, c)]


def _inner(c: dict, key: str) -> tuple[str, dict]:
    layer = c[key]
    return layer["class_name"], layer["config"]


def _bidirectional(c: dict) -> list[Slot]:
    backward = "backward_layer" if isinstance(c.get("backward_layer"), dict) else "layer"
    return [Child("forward_layer", "forward/", *_inner(c, "layer")),
            Child("backward_layer", "backward/", *_inner(c, backward))]


def _rnn_of_cell(c: dict) -> list[Slot] | None:
    # RNN(cell): the cell's class is in the config (None for a list of cells: not named here).
    cell = c.get("cell")
    return [Child("cell", "", *_inner(c, "cell"))] if isinstance(cell, dict) and "class_name" in cell else None


def _time_distributed(c: dict) -> list[Slot]:
    return [Child("layer", "layer/", *_inner(c, "layer"))]


def _attention_projections(c: dict) -> list[Slot]:
    # MultiHeadAttention's sub-layers are EinsumDense layers with these Keras names, in
    # ``layer.weights`` order; the gate (``use_gate``) has no public attribute.
    dense = {"use_bias": c.get("use_bias", True)}
    gate = [("_gate_dense", "gate")] if c.get("use_gate") else []
    return [Child(attr, f"{name}/", "EinsumDense", dense)
            for attr, name in [("query_dense", "query"), ("key_dense", "key"), *gate,
                               ("value_dense", "value"), ("output_dense", "attention_output")]]


def _grouped_attention_projections(c: dict) -> list[Slot]:
    # GroupQueryAttention keeps the same sub-layers under private attributes.
    dense = {"use_bias": c.get("use_bias", True)}
    gate = [("_gate_dense", "gate")] if c.get("use_gate") else []
    return [Child(attr, f"{name}/", "EinsumDense", dense)
            for attr, name in [("_query_dense", "query"), ("_key_dense", "key"), *gate,
                               ("_value_dense", "value"), ("_output_dense", "attention_output")]]


WEIGHT_TABLE: dict[str, Callable[[dict], list[Slot]]] = {
    **dict.fromkeys(
        ["Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
         "Conv2DTranspose", "Conv3DTranspose", "Convolution1D", "Convolution2D",
         "Convolution3D", "Convolution2DTranspose", "DepthwiseConv1D", "DepthwiseConv2D"],
        _kernel_bias),
    "EinsumDense": _einsum_dense,
    "Embedding": lambda c: ["embeddings"],
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
    "SeparableConvolution1D": _separable, "SeparableConvolution2D": _separable,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _gamma_beta,
    "GroupNormalization": _gamma_beta,
    "RMSNormalization": lambda c: ["scale"],
    "PReLU": lambda c: ["alpha"],
    "Normalization": _normalization,
    **dict.fromkeys(["SimpleRNNCell", "LSTMCell", "GRUCell", "ConvLSTMCell"], _recurrent),
    "SimpleRNN": _rnn("SimpleRNNCell"), "LSTM": _rnn("LSTMCell"), "GRU": _rnn("GRUCell"),
    "ConvLSTM1D": _rnn("ConvLSTMCell"), "ConvLSTM2D": _rnn("ConvLSTMCell"),
    "ConvLSTM3D": _rnn("ConvLSTMCell"),
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "RNN": _rnn_of_cell,
    "MultiHeadAttention": _attention_projections,
    "Attention": lambda c: (["scale"] if c.get("use_scale") else [])
    + (["concat_score_weight"] if c.get("score_mode") == "concat" else []),
    "AdditiveAttention": lambda c: ["scale"] if c.get("use_scale", True) else [],
    "GroupQueryAttention": _grouped_attention_projections,
    "GroupedQueryAttention": _grouped_attention_projections,
}


def weight_slots(class_name: str, config: dict) -> list[Slot] | None:
    """The slots of a layer, or None when the class is not in the table."""
    entry = WEIGHT_TABLE.get(class_name)
    return None if entry is None else entry(config)


def flat_weight_names(class_name: str, config: dict) -> list[str] | None:
    """Canonical names in ``layer.weights`` order (own variables, then sub-layers).

    This is the order of legacy ``.h5`` ``weight_names`` for one layer.
    """
    slots = weight_slots(class_name, config)
    if slots is None:
        return None
    names: list[str] = []
    for slot in slots:
        if isinstance(slot, Child):
            inner = flat_weight_names(slot.class_name, slot.config)
            if inner is None:
                return None
            names += [slot.prefix + n for n in inner]
        else:
            names.append(slot)
    return names
