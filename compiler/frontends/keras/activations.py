"""Keras activation names -> IR ops (used by the Activation layer and every ``activation=``)."""
from __future__ import annotations

from typing import Any, Callable

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.frontends.keras.activations_more import COMPOSED_ACTIVATIONS
from kcc.ir import Value

Lowering = Callable[[GraphBuilder, Value], Value]

KERAS_ACTIVATIONS: dict[str, Lowering] = {
    "linear": lambda op, x: x,
    "relu": lambda op, x: op.relu(x),
    "relu6": lambda op, x: op.clip(x, min=0.0, max=6.0),
    "sigmoid": lambda op, x: op.sigmoid(x),
    # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid": lambda op, x: op.hard_sigmoid(x, alpha=1.0 / 6.0, beta=0.5),
    "tanh": lambda op, x: op.tanh(x),
    "softplus": lambda op, x: op.softplus(x),
    "softsign": lambda op, x: op.softsign(x),
    "selu": lambda op, x: op.selu(x),
    "elu": lambda op, x: op.elu(x, alpha=1.0),
    "exponential": lambda op, x: op.exp(x),
    "silu": lambda op, x: op.silu(x),
    "swish": lambda op, x: op.silu(x),
    "gelu": lambda op, x: op.gelu(x, approximate=False),
    "hard_silu": lambda op, x: op.hard_silu(x),
    "hard_swish": lambda op, x: op.hard_silu(x),
    "mish": lambda op, x: op.mish(x),
    "leaky_relu": lambda op, x: op.leaky_relu(x, alpha=0.2),
    # Keras applies softmax/log_softmax on the last axis = IR axis 1.
    "softmax": lambda op, x: op.softmax(x, axis=1 if x.rank > 1 else 0),
    "log_softmax": lambda op, x: op.log_softmax(x, axis=1 if x.rank > 1 else 0),
    # Composed from IR primitives (activations_more.py): no IR op of their own.
    **COMPOSED_ACTIVATIONS,
}

# Keras 2 / tf.keras defined some activations differently; files they wrote keep that meaning.
KERAS2_ACTIVATIONS: dict[str, Lowering] = {
    "hard_sigmoid": lambda op, x: op.hard_sigmoid(x, alpha=0.2, beta=0.5),
}


def activation_name(act: Any) -> str:
    """Normalize a config ``activation`` entry (string, None, or serialized dict) to a name."""
    if act is None:
        return "linear"
    if isinstance(act, dict):
        cfg = act.get("config", act)
        act = cfg if isinstance(cfg, str) else act.get("class_name") or cfg.get("name")
    return str(act)


def apply_keras_activation(op: GraphBuilder, x: Value, act: Any, layer: str, keras2: bool = False) -> Value:
    name = activation_name(act)
    try:
        lowering = (keras2 and KERAS2_ACTIVATIONS.get(name)) or KERAS_ACTIVATIONS[name]
    except KeyError:
        raise ConversionError(
            f"layer {layer!r}: activation {name!r} is not a Keras built-in kcc knows "
            f"(known: {', '.join(sorted(KERAS_ACTIVATIONS))}). Use an Activation/Lambda layer kcc can "
            f"trace, or a custom_conversion_functions entry.") from None
    return lowering(op, x)
