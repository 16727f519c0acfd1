"""Keras activations -> IR: the one table behind the Activation layer and every ``activation=``.

``KERAS_ACTIVATIONS`` maps each Keras 3 built-in activation name to a lowering
``(op, x) -> value`` in the builder language; ``KERAS2_ACTIVATIONS`` holds the
ones Keras 2 / tf.keras defined differently, used for files those versions
wrote. ``apply_keras_activation`` is the one entry point.

Most names are one IR op whose constants come from the op declarations
(kcc.ops.activation). The rest have no IR op of their own and are composed from
IR primitives, following keras.src.activations (Keras 3) formula by formula; a
step function is spelled ``sign(relu(t))`` (1 where t > 0, else 0) so no
comparison op is needed. ``threshold`` is absent: it has required arguments, so
no Keras model can name it as a string activation.

Also here: :func:`keras_relu`, the general Keras ``relu(x, negative_slope,
max_value, threshold)`` used by the ReLU layer, and
:func:`keras_hard_sigmoid_alpha`, the slope a file's Keras version means.
"""
from __future__ import annotations

from typing import Any, Callable

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.ir import Value
from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_ALPHA_KERAS2, HARD_SIGMOID_BETA, LEAKY_RELU_ALPHA

Lowering = Callable[[GraphBuilder, Value], Value]


def keras_hard_sigmoid_alpha(keras2: bool) -> float:
    """The slope of Keras's hard_sigmoid: 0.2 in Keras 2 (tf.keras) files, 1/6 in Keras 3."""
    return HARD_SIGMOID_ALPHA_KERAS2 if keras2 else HARD_SIGMOID_ALPHA


# ------------------------------------------------------------ composed activations
def _last_axis(x: Value) -> int:
    """Keras's default axis -1 in the IR layout (the channel axis)."""
    return 1 if x.rank > 1 else 0


def _step(op: GraphBuilder, t: Value) -> Value:
    """1 where t > 0, else 0."""
    return op.sign(op.relu(t))


def _glu(op: GraphBuilder, x: Value) -> Value:
    ax = _last_axis(x)
    c = x.shape[ax]
    if not isinstance(c, int) or c % 2:
        raise ConversionError(f"glu needs an even, known size on the last axis, got {x.shape}")
    a, b = op.split(x, axis=ax, sizes=(c // 2, c // 2))
    return op.mul(a, op.sigmoid(b))


def _hard_shrink(op: GraphBuilder, x: Value, t: float = 0.5) -> Value:
    return op.mul(x, _step(op, op.sub(op.abs(x), op.scalar(t, x))))


def _soft_shrink(op: GraphBuilder, x: Value, t: float = 0.5) -> Value:
    return op.sub(x, op.clip(x, min=-t, max=t))


def _sparse_plus(op: GraphBuilder, x: Value) -> Value:
    # (clip(x, -1, 1) + 1)^2 / 4 + relu(x - 1): 0 below -1, x above 1.
    c = op.add(op.clip(x, min=-1.0, max=1.0), op.scalar(1.0, x))
    quad = op.mul(op.mul(c, c), op.scalar(0.25, x))
    return op.add(quad, op.relu(op.sub(x, op.scalar(1.0, x))))


def _sparse_sigmoid(op: GraphBuilder, x: Value) -> Value:
    return op.mul(op.add(op.clip(x, min=-1.0, max=1.0), op.scalar(1.0, x)), op.scalar(0.5, x))


def _squareplus(op: GraphBuilder, x: Value, b: float = 4.0) -> Value:
    return op.mul(op.add(x, op.sqrt(op.add(op.mul(x, x), op.scalar(b, x)))), op.scalar(0.5, x))


def _log_sigmoid(op: GraphBuilder, x: Value) -> Value:
    return op.neg(op.softplus(op.neg(x)))


def _celu(op: GraphBuilder, x: Value) -> Value:
    # celu(x, alpha=1) == elu(x, 1).
    return op.elu(x, alpha=1.0)


def sparsemax(op: GraphBuilder, x: Value, axis: int | None = None) -> Value:
    """Sparsemax without sorting: element i is in the support iff 1 + r_i z_i > s_i, where
    r_i counts and s_i sums the elements >= z_i (pairwise, O(n^2) along the axis).

    tau follows Keras (every backend): (sum over the support of the sorted cumulative
    sums - 1) / k, where s_i is element i's cumulative sum; this is Keras's formula,
    not the textbook one (which uses only the k-th cumulative sum)."""
    ax = _last_axis(x) if axis is None else axis
    zi = op.unsqueeze(x, axes=(ax + 1,))
    zj = op.unsqueeze(x, axes=(ax,))
    one = op.scalar(1.0, x)
    ge = op.sub(one, _step(op, op.sub(zi, zj)))          # [i, j] = z_j >= z_i
    r = op.reduce_sum(ge, axes=(ax + 1,))
    s = op.reduce_sum(op.mul(ge, zj), axes=(ax + 1,))
    support = _step(op, op.sub(op.add(one, op.mul(r, x)), s))
    k = op.reduce_sum(support, axes=(ax,), keepdims=True)
    total = op.reduce_sum(op.mul(support, s), axes=(ax,), keepdims=True)
    tau = op.div(op.sub(total, one), k)
    return op.relu(op.sub(x, tau))


def keras_relu(op: GraphBuilder, x: Value, negative_slope: float = 0.0, max_value: float | None = None,
               threshold: float = 0.0) -> Value:
    """Keras relu: x above ``threshold`` (capped at ``max_value``), else negative_slope * (x - threshold)."""
    if threshold == 0.0:
        y = op.relu(x) if negative_slope == 0.0 else op.leaky_relu(x, alpha=float(negative_slope))
    else:
        y = op.thresholded_relu(x, alpha=float(threshold))
        if negative_slope != 0.0:
            below = op.relu(op.sub(op.scalar(threshold, x), x))
            y = op.sub(y, op.mul(below, op.scalar(negative_slope, x)))
    if max_value is not None:
        y = op.min(y, op.scalar(float(max_value), x))
    return y


COMPOSED_ACTIVATIONS: dict[str, Lowering] = {
    "celu": _celu,
    "glu": _glu,
    "hard_shrink": _hard_shrink,
    "hard_tanh": lambda op, x: op.clip(x, min=-1.0, max=1.0),
    "log_sigmoid": _log_sigmoid,
    "soft_shrink": _soft_shrink,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": _sparse_sigmoid,
    "sparsemax": sparsemax,
    "squareplus": _squareplus,
    "tanh_shrink": lambda op, x: op.sub(x, op.tanh(x)),
}


# ------------------------------------------------------------ the table
KERAS_ACTIVATIONS: dict[str, Lowering] = {
    "linear": lambda op, x: x,
    "relu": lambda op, x: op.relu(x),
    "relu6": lambda op, x: op.clip(x, min=0.0, max=6.0),
    "sigmoid": lambda op, x: op.sigmoid(x),
    # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid": lambda op, x: op.hard_sigmoid(x, alpha=HARD_SIGMOID_ALPHA, beta=HARD_SIGMOID_BETA),
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
    "leaky_relu": lambda op, x: op.leaky_relu(x, alpha=LEAKY_RELU_ALPHA),
    # Keras applies softmax/log_softmax on the last axis = IR axis 1.
    "softmax": lambda op, x: op.softmax(x, axis=1 if x.rank > 1 else 0),
    "log_softmax": lambda op, x: op.log_softmax(x, axis=1 if x.rank > 1 else 0),
    # Composed from IR primitives (above): no IR op of their own.
    **COMPOSED_ACTIVATIONS,
}

# Keras 2 / tf.keras defined some activations differently; files they wrote keep that meaning.
KERAS2_ACTIVATIONS: dict[str, Lowering] = {
    "hard_sigmoid": lambda op, x: op.hard_sigmoid(x, alpha=HARD_SIGMOID_ALPHA_KERAS2, beta=HARD_SIGMOID_BETA),
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
