"""Keras masks: an IR boolean value carried alongside a tensor, as Keras carries ``_keras_mask``.

Keras 3 attaches a mask to a tensor (``Embedding(mask_zero=True)``, ``Masking``,
a layer's ``compute_mask``) and, at each layer call (``Layer.__call__``):

1. hands it to the layer if its ``call`` reads masks: ``mask=`` when the call
   has one tensor argument (a list of masks for merge layers), else
   ``<argument>_mask=`` per tensor argument (``query_mask``, ``value_mask``...);
   a mask given explicitly in the call wins;
2. sets the output mask: a layer that ``supports_masking`` passes the mask of
   its first argument on (``compute_mask``'s default), some compute their own
   (:data:`MASK_RULES`), every other layer drops it, and so does every
   keras.ops call (an ``Operation`` has no mask logic).

kcc does the same while lowering (lower.py calls :func:`handler_masks` and
:func:`output_masks`). A mask is an IR ``bool`` value in the IR layout, like any
tensor (rank-2 masks, the usual ``(batch, steps)``, look the same in both
orders). Handlers that read masks take them as keyword arguments; handlers that
create one call ``ctx.set_mask``. A mask that reaches a layer kcc cannot honor
(:data:`REFUSE`: recurrent layers, TimeDistributed, Lambda...) is an error
naming the layer; a mask that passed through a layer whose mask behavior kcc
does not know (a traced custom layer) becomes :class:`UnknownMask`, an error
only if a layer then reads it. Nothing is dropped silently.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from kcc.errors import ConversionError
from kcc.frontends.keras.registry import KerasLayerContext
from kcc.ir import Value
from kcc.table import Table


@dataclass(frozen=True)
class UnknownMask:
    """A mask kcc cannot compute: it went through ``through``, whose mask rule kcc does not know."""

    through: str


Mask = Union[Value, UnknownMask, None]

# supports_masking with Layer's default compute_mask: the output keeps the first input's mask.
# (BatchNormalization reads the mask only for training statistics; Softmax reads it, below.)
PROPAGATE = frozenset({
    "Activation", "ELU", "LeakyReLU", "PReLU", "ReLU", "ThresholdedReLU", "Softmax", "Dense", "Identity",
    "BatchNormalization", "GroupNormalization", "LayerNormalization", "UnitNormalization", "Normalization",
    "Rescaling", "ActivityRegularization", "AlphaDropout", "Dropout", "GaussianDropout", "GaussianNoise",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention",
})
# Layers whose handler honors masks: the keyword arguments it takes (Keras's names).
READS: dict[str, tuple[str, ...]] = {
    "Softmax": ("mask",), "GlobalAveragePooling1D": ("mask",), "GlobalAvgPool1D": ("mask",),
    "Attention": ("mask",), "AdditiveAttention": ("mask",),
    **dict.fromkeys(("MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention"),
                    ("query_mask", "value_mask", "key_mask")),
}
# Layers that read masks in Keras but whose kcc lowering does not apply them.
REFUSE = frozenset({
    "SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "TimeDistributed", "Lambda",
})

Rule = Callable[[KerasLayerContext, Any, Any, list[Value]], list[Mask]]
MASK_RULES: Table[Rule] = Table("Keras mask rule")
mask_rule = MASK_RULES.register


def _where(ctx: KerasLayerContext) -> str:
    return f"layer {ctx.origin!r} ({ctx.layer.class_name})"


def _flat(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [m for y in x for m in _flat(y)]
    if isinstance(x, dict):
        return [m for k in sorted(x) for m in _flat(x[k])]
    return [x]


def _unknown_error(ctx: KerasLayerContext, mask: UnknownMask) -> ConversionError:
    return ConversionError(
        f"{_where(ctx)} reads the Keras mask of its input, but that mask went through layer {mask.through!r}, "
        f"whose mask behavior kcc does not know. Give that layer a handler (custom_conversion_functions), or "
        f"remove the mask (mask_zero=False, drop Masking).")


def _is_operation(ctx: KerasLayerContext) -> bool:
    """A keras.ops call recorded in a functional graph (``Add`` the op, not the merge layer)."""
    return str(ctx.layer.module or "").startswith("keras.src.ops")


def _reads_masks(ctx: KerasLayerContext) -> bool:
    """A Lambda reads masks only when its function takes ``mask`` (unknown without the live layer)."""
    if ctx.layer.class_name == "Lambda":
        return bool(getattr(ctx.layer.live, "_fn_expects_mask_arg", True))
    return True


def handler_masks(ctx: KerasLayerContext, arg_masks: Any, kwarg_masks: dict[str, Any],
                  explicit: dict[str, Value]) -> dict[str, Any]:
    """The mask keyword arguments for this call's handler (Keras's ``__call__`` step 6).

    ``arg_masks`` mirrors the first call argument; ``kwarg_masks`` holds the masks
    of the tensor keyword arguments (``value``, ``key``, ...); ``explicit`` are the
    mask tensors the call passes itself (``mask=``, ``value_mask=``, ``attention_mask=``...);
    those the layer does not read as Keras masks are passed through unchanged.
    """
    if _is_operation(ctx):
        return dict(explicit)
    cls = ctx.layer.class_name
    present = [m for m in _flat(arg_masks) + _flat(list(kwarg_masks.values())) if m is not None]
    present += [m for k, m in explicit.items() if k == "mask"]
    if present and cls in REFUSE and _reads_masks(ctx):
        raise ctx.fail("its input carries a Keras mask (from Embedding(mask_zero=True), Masking or a layer "
                       "that computes one), which this layer reads; kcc cannot apply it here, and ignoring it "
                       "would change the results. Remove the mask (mask_zero=False, drop Masking) or pad "
                       "inputs so no step is masked.")
    reads = READS.get(cls, ())
    passed = {k: v for k, v in explicit.items() if k not in reads}  # attention_mask=, or refused below
    if not reads:
        return passed
    implicit: dict[str, Any] = {}
    if reads == ("mask",):
        if not kwarg_masks:  # only when the call has a single tensor argument
            implicit["mask"] = arg_masks
    else:
        first = reads[0].removesuffix("_mask")
        implicit[f"{first}_mask"] = arg_masks
        for name, m in kwarg_masks.items():
            implicit[f"{name}_mask"] = m
    out: dict[str, Any] = passed
    for name in reads:
        # MultiHeadAttention takes the query's mask from the tensor, whatever the call says.
        take_implicit = name not in explicit or (cls == "MultiHeadAttention" and name == "query_mask")
        m = implicit.get(name) if take_implicit else explicit[name]
        for one in _flat(m):
            if isinstance(one, UnknownMask):
                raise _unknown_error(ctx, one)
        if m is not None and not (isinstance(m, list) and all(x is None for x in m)):
            out[name] = m
    return out


def output_masks(ctx: KerasLayerContext, arg_masks: Any, explicit: dict[str, Value], args: Any,
                 outputs: list[Value], known: bool) -> list[Mask]:
    """The masks of a call's outputs: set by the handler, a rule, passed on, or dropped.

    ``known`` is False for a layer no handler knows (a traced or custom layer).
    """
    n = len(outputs)
    if ctx.output_masks:
        return [ctx.output_masks.get(i) for i in range(n)]
    if _is_operation(ctx):
        return [None] * n  # keras.ops calls pass no mask on (Operation has no mask logic)
    previous = explicit.get("mask", arg_masks)
    if all(m is None for m in _flat(previous)):
        return [None] * n
    cls = ctx.layer.class_name
    rule = MASK_RULES.get(cls)
    if rule is not None:
        return rule(ctx, previous, args, outputs) + [None] * (n - 1)
    if cls in PROPAGATE:
        if isinstance(previous, list):
            raise ctx.fail("it received a list of masked tensors; kcc passes one mask on per layer")
        return [previous] + [None] * (n - 1)
    if not known:
        return _live_layer_masks(ctx, previous, n)
    return [None] * n  # Keras: a layer that does not support masking drops it


def _live_layer_masks(ctx: KerasLayerContext, previous: Any, n: int) -> list[Mask]:
    """A layer without a handler (traced or custom): its live object says what Keras does with the mask."""
    live = ctx.layer.live
    try:
        takes_mask = live is not None and "mask" in inspect.signature(live.call).parameters
    except (AttributeError, TypeError, ValueError):  # a call() without a signature: assume it may read it
        takes_mask = True
    if takes_mask:
        raise ctx.fail("its input carries a Keras mask and its call() takes a mask argument; kcc cannot "
                       "know what it does with it. Convert it with custom_conversion_functions or remove "
                       "the mask.")
    if live is not None and not getattr(live, "supports_masking", True):
        return [None] * n  # Keras drops the mask here
    if live is not None and _default_compute_mask(live) and not isinstance(previous, list):
        return [previous] + [None] * (n - 1)
    return [UnknownMask(ctx.origin)] * n


def _default_compute_mask(live: Any) -> bool:
    """True when the layer keeps Keras's ``Layer.compute_mask`` (which passes the mask on)."""
    method = getattr(type(live), "compute_mask", None)
    return getattr(method, "_is_default", False)


# -------------------------------------------------------------------- rules
def _bool_or(ctx: KerasLayerContext, masks: list[Value]) -> Value:
    out = masks[0]
    for m in masks[1:]:
        out = ctx.op.logical_or(out, m)
    return out


@mask_rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def merge_mask(ctx: KerasLayerContext, masks: Any, args: Any, outputs: list[Value]) -> list[Mask]:
    """Merge.compute_mask: None if any input is unmasked, else the OR of the masks."""
    masks = list(masks) if isinstance(masks, list) else [masks]
    if any(m is None for m in masks):
        return [None]
    unknown = [m for m in masks if isinstance(m, UnknownMask)]
    return [unknown[0] if unknown else _bool_or(ctx, masks)]


@mask_rule("Concatenate")
def concatenate_mask(ctx: KerasLayerContext, masks: Any, args: Any, outputs: list[Value]) -> list[Mask]:
    """Concatenate.compute_mask: each mask broadcast to its input (ones if unmasked), concatenated, any(-1)."""
    masks = list(masks) if isinstance(masks, list) else [masks]
    unknown = [m for m in masks if isinstance(m, UnknownMask)]
    if unknown:
        return [unknown[0]]
    inputs = [ctx.to_keras_layout(x) for x in _flat(args)]
    full = []
    for x, m in zip(inputs, masks):
        if m is None:
            full.append(ctx.op.cast(ctx.op.fill_like(x, value=1.0), to="bool"))
            continue
        m = ctx.to_keras_layout(m)
        if m.rank < x.rank:
            zeros = ctx.op.cast(ctx.op.fill_like(x, value=0.0), to="bool")
            m = ctx.op.logical_or(ctx.op.unsqueeze(m, axes=(m.rank,)), zeros)
        full.append(m)
    rank = inputs[0].rank
    axis = int(ctx.get("axis", -1)) % rank
    joined = ctx.op.concat(*full, axis=axis)
    anyof = ctx.op.greater(ctx.op.reduce_max(ctx.op.cast(joined, to="f32"), axes=(rank - 1,)),
                           ctx.op.const(np.asarray(0.0, dtype=np.float32)))
    return [ctx.from_keras_layout(anyof)]


@mask_rule("Attention", "AdditiveAttention")
def query_mask(ctx: KerasLayerContext, masks: Any, args: Any, outputs: list[Value]) -> list[Mask]:
    """Attention.compute_mask: the query's mask (the first of [query_mask, value_mask])."""
    return [masks[0] if isinstance(masks, list) else None]


@mask_rule("Dot", "GlobalAveragePooling1D", "GlobalAvgPool1D")
def no_mask(ctx: KerasLayerContext, masks: Any, args: Any, outputs: list[Value]) -> list[Mask]:
    """compute_mask returns None: the layer consumed (or ignores) the mask."""
    return [None]


# ------------------------------------------------------- helpers for handlers
def keras_mask(ctx: KerasLayerContext, mask: Value) -> Value:
    """A mask in Keras order as a bool value (Keras casts float masks: nonzero is True)."""
    mask = ctx.to_keras_layout(mask)
    return mask if mask.dtype == "bool" else ctx.op.cast(mask, to="bool")
