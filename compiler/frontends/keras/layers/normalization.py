"""Normalization layers: BatchNormalization, LayerNormalization, RMSNormalization, GroupNormalization, UnitNormalization.

Keras axes map to IR axes with ``ctx.axis``; per-axis parameters are laid out to
broadcast in the IR layout. BatchNormalization on the channel axis becomes the
``batch_norm`` op (fold_batchnorm merges it into a conv/dense before it); on any
other axis it is ``x * s + t`` with the folded constants. A config without an
``epsilon`` gets Keras's default for all three norms, which is the IR
``batch_norm`` default (``BATCH_NORM_EPSILON``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value
from kcc.layout import to_ir_perm, to_keras_perm
from kcc.ops.normalization import BATCH_NORM_EPSILON, RMS_NORM_EPSILON


def ir_axes(ctx: KerasLayerContext, axes, rank: int) -> tuple[int, ...]:
    """Keras axis (int or list) -> the IR axes, in Keras's sorted order."""
    axes = [axes] if isinstance(axes, int) else list(axes)
    return tuple(ctx.axis(a, rank) for a in sorted(a % rank for a in axes))


def broadcast_param(p: np.ndarray, axes: Sequence[int], rank: int) -> np.ndarray:
    """A parameter over sorted ``axes`` (its dims in that order) reshaped to broadcast at rank ``rank``."""
    shape = [1] * rank
    for a, d in zip(sorted(axes), p.shape):
        shape[a] = d
    return p.reshape(shape)


def _param(ctx: KerasLayerContext, key: str, enabled: bool, shape: tuple, fill: float) -> np.ndarray:
    return ctx.weight(key).astype(np.float32) if enabled else np.full(shape, fill, np.float32)


@keras_layer("BatchNormalization")
def batch_norm(ctx: KerasLayerContext, x: Value) -> Value:
    axes = ir_axes(ctx, ctx.get("axis", -1), x.rank)
    if len(axes) != 1:
        raise ctx.fail(f"axis={ctx.get('axis')}: BatchNormalization over several axes is not supported")
    mean = ctx.weight("moving_mean").astype(np.float32)
    var = ctx.weight("moving_variance").astype(np.float32)
    gamma = _param(ctx, "gamma", ctx.get("scale", True), mean.shape, 1.0)
    beta = _param(ctx, "beta", ctx.get("center", True), mean.shape, 0.0)
    eps = float(ctx.get("epsilon", BATCH_NORM_EPSILON))
    if axes == (1,):
        return ctx.op.batch_norm(x, ctx.const(gamma, "gamma"), ctx.const(beta, "beta"), ctx.const(mean, "mean"),
                                 ctx.const(var, "var"), epsilon=eps)
    s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    t = beta - mean * s
    y = ctx.op.mul(x, ctx.const(broadcast_param(s.astype(np.float32), axes, x.rank), "scale"))
    return ctx.op.add(y, ctx.const(broadcast_param(t.astype(np.float32), axes, x.rank), "shift"))


@keras_layer("LayerNormalization")
def layer_norm(ctx: KerasLayerContext, x: Value) -> Value:
    """The ``layer_norm`` op over the mapped axes; gamma/beta re-laid out to IR axis order."""
    keras_axes = ctx.get("axis", -1)
    keras_axes = [keras_axes] if isinstance(keras_axes, int) else list(keras_axes)
    ks = sorted(a % x.rank for a in keras_axes)
    axes = [ctx.axis(a, x.rank) for a in ks]                 # IR axis of each Keras axis, Keras order
    order = np.argsort(axes)                                  # Keras-order index of each sorted IR axis
    eps = float(ctx.get("epsilon", BATCH_NORM_EPSILON))

    def param(key: str, enabled: bool) -> Value | None:
        if not enabled:
            return None
        stored = ctx.weight(key)
        want = [x.shape[a] for a in axes]
        if not all(isinstance(d, int) for d in want) or stored.size != int(np.prod(want)):
            raise ctx.fail(f"stored {key} has shape {stored.shape}, but axis={keras_axes} of its input "
                           f"{tuple(x.shape)} has dims {tuple(want)}: the file contradicts itself; re-save it")
        p = stored.astype(np.float32).reshape(want)
        return ctx.const(np.transpose(p, order), key)

    gamma = param("gamma", ctx.get("scale", True))
    if ctx.get("rms_scaling", False):
        # Keras's (deprecated) rms_scaling divides the uncentred x by the *variance*'s root.
        red = tuple(sorted(axes))
        d = ctx.op.sub(x, ctx.op.reduce_mean(x, axes=red, keepdims=True))
        var = ctx.op.reduce_mean(ctx.op.mul(d, d), axes=red, keepdims=True)
        y = ctx.op.mul(x, ctx.op.rsqrt(ctx.op.add(var, ctx.op.scalar(eps, x))))
        if gamma is not None:
            g = ctx.const(broadcast_param(gamma.const, sorted(axes), x.rank), "gamma_b")
            y = ctx.op.mul(y, g)
        return y
    beta = param("beta", ctx.get("center", True))
    return ctx.op.layer_norm(x, gamma, beta, axes=tuple(sorted(axes)), epsilon=eps)


@keras_layer("RMSNormalization")
def rms_norm(ctx: KerasLayerContext, x: Value) -> Value:
    """The ``rms_norm`` op over the mapped axes; the scale re-laid out to IR axis order (as LayerNormalization).

    Keras multiplies by its scale (the dims of the sorted axes) with numpy
    broadcasting, which aligns it with the *trailing* axes. When the axes are
    the trailing ones that is the scale of the normalized dims; otherwise
    (``axis=1`` of a rank-3 input of equal dims) the product Keras computes is
    kept: an unscaled ``rms_norm`` times the scale broadcast from the end.
    """
    keras_axes = ctx.get("axis", -1)
    keras_axes = sorted({a % x.rank for a in ([keras_axes] if isinstance(keras_axes, int) else keras_axes)})
    axes = [ctx.axis(a, x.rank) for a in keras_axes]
    eps = float(RMS_NORM_EPSILON if ctx.get("epsilon") is None else ctx.get("epsilon"))
    scale = ctx.weight("scale").astype(np.float32)
    if keras_axes == list(range(x.rank - len(keras_axes), x.rank)) and scale.ndim == len(axes):
        scale = ctx.const(np.transpose(scale, np.argsort(axes)), "scale")
        return ctx.op.rms_norm(x, scale, axes=tuple(sorted(axes)), epsilon=eps)
    keras_dims = [x.shape[p] for p in to_keras_perm(x.rank)]
    trailing = keras_dims[x.rank - scale.ndim:] if scale.ndim <= x.rank else None
    if trailing is None or any(isinstance(d, int) and s not in (1, d) for s, d in zip(scale.shape, trailing)):
        raise ctx.fail(f"its scale of shape {scale.shape} does not broadcast against the input "
                       f"{tuple(keras_dims)} (Keras aligns it with the trailing axes)")
    s = np.transpose(scale.reshape((1,) * (x.rank - scale.ndim) + scale.shape), to_ir_perm(x.rank))
    return ctx.op.mul(ctx.op.rms_norm(x, None, axes=tuple(sorted(axes)), epsilon=eps), ctx.const(s, "scale"))


def _per_channel(ctx: KerasLayerContext, stats: Value, groups: int, channels: int, rank: int) -> Value:
    """(N, G, 1) group statistics -> (N, C, 1, ...) per channel."""
    t = ctx.op.tile(stats, repeats=(1, 1, channels // groups))
    return ctx.op.reshape(t, shape=(0, channels) + (1,) * (rank - 2))


@keras_layer("GroupNormalization")
def group_norm(ctx: KerasLayerContext, x: Value) -> Value:
    """Statistics per (sample, group) over the group's channels and all spatial positions."""
    if ctx.axis(ctx.get("axis", -1), x.rank) != 1:
        raise ctx.fail(f"axis={ctx.get('axis')}: only the channel axis (-1) is supported")
    groups = int(ctx.get("groups", 32))
    c = x.shape[1]
    if not isinstance(c, int) or c % groups:
        raise ctx.fail(f"{c} channels do not split into {groups} groups")
    eps = float(ctx.get("epsilon", BATCH_NORM_EPSILON))
    op = ctx.op
    xg = op.reshape(x, shape=(0, groups, -1))
    mean = op.reduce_mean(xg, axes=(2,), keepdims=True)
    d = op.sub(xg, mean)
    var = op.reduce_mean(op.mul(d, d), axes=(2,), keepdims=True)
    inv = op.rsqrt(op.add(var, op.scalar(eps, x)))
    y = op.mul(op.sub(x, _per_channel(ctx, mean, groups, c, x.rank)), _per_channel(ctx, inv, groups, c, x.rank))
    bshape = (c,) + (1,) * (x.rank - 2)
    if ctx.get("scale", True):
        y = op.mul(y, ctx.const(ctx.weight("gamma").astype(np.float32).reshape(bshape), "gamma"))
    if ctx.get("center", True):
        y = op.add(y, ctx.const(ctx.weight("beta").astype(np.float32).reshape(bshape), "beta"))
    return y


@keras_layer("UnitNormalization")
def unit_norm(ctx: KerasLayerContext, x: Value) -> Value:
    """x * rsqrt(max(sum(x^2), 1e-24)) over the axes: Keras's L2 normalize with epsilon 1e-12."""
    axes = tuple(sorted(ir_axes(ctx, ctx.get("axis", -1), x.rank)))
    ss = ctx.op.reduce_sum(ctx.op.mul(x, x), axes=axes, keepdims=True)
    return ctx.op.mul(x, ctx.op.rsqrt(ctx.op.max(ss, ctx.op.scalar(1e-24, x))))
