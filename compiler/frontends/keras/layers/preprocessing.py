"""Preprocessing layers that are plain arithmetic at inference: Rescaling, Normalization,
Resizing, CenterCrop (all appear inside keras.applications models)."""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.frontends.keras.layers.common import check_channels_last
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value, is_static

_EPSILON = 1e-7  # keras.backend.epsilon()


def _array(v: Any) -> np.ndarray:
    """A config number/list, or a serialized numpy array ({"class_name": "__numpy__", ...})."""
    if isinstance(v, dict):
        v = v.get("config", {}).get("value", v.get("value"))
    return np.asarray(v, dtype=np.float32)


def _channel_param(ctx: KerasLayerContext, p: np.ndarray, rank: int) -> np.ndarray:
    """A scalar or per-channel (last Keras axis) parameter, broadcastable in the IR layout."""
    p = np.asarray(p, np.float32)
    if p.size == 1:
        return p.reshape(())
    if rank < 2:
        raise ctx.fail(f"a per-channel parameter of shape {p.shape} needs an input with a channel axis")
    return p.reshape((-1,) + (1,) * (rank - 2))


@keras_layer("Rescaling")
def rescaling(ctx: KerasLayerContext, x: Value) -> Value:
    """x * scale + offset (scalars or per channel)."""
    scale = _channel_param(ctx, _array(ctx.get("scale", 1.0)), x.rank)
    offset = _channel_param(ctx, _array(ctx.get("offset", 0.0)), x.rank)
    y = ctx.op.mul(x, ctx.const(scale, "scale"))
    return ctx.op.add(y, ctx.const(offset, "offset")) if np.any(offset != 0) else y


def _kept_param(ctx: KerasLayerContext, p: np.ndarray, keep: list[int], x: Value) -> np.ndarray:
    """Normalization's mean/variance: dims of the kept Keras axes (Keras order) -> IR broadcast shape."""
    rank = x.rank
    ir = [ctx.axis(a, rank) for a in keep]
    dims = [x.shape[a] for a in ir]
    if not all(isinstance(d, int) for d in dims):
        raise ctx.fail(f"the kept axes {keep} need known sizes, got {x.shape}")
    p = np.asarray(p, np.float32)
    if p.size == 1:
        p = np.full(dims, float(p.reshape(())), np.float32)
    elif p.size == int(np.prod(dims)):
        p = p.reshape(dims)
    else:
        raise ctx.fail(f"mean/variance of shape {p.shape} do not match the kept axes {keep} of {x.shape}")
    order = np.argsort(ir)
    p = np.transpose(p, order)
    shape = [1] * rank
    for a, d in zip(sorted(ir), p.shape):
        shape[a] = d
    return np.ascontiguousarray(p.reshape(shape))


@keras_layer("Normalization")
def normalization(ctx: KerasLayerContext, x: Value) -> Value:
    """(x - mean) / max(sqrt(variance), 1e-7); ``invert`` undoes it. Adapted values come from the weights."""
    axis = ctx.get("axis", (-1,))
    axis = [] if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    keep = sorted(a % x.rank for a in axis)
    if ctx.get("mean") is not None:
        mean, var = _array(ctx.get("mean")), _array(ctx.get("variance"))
    else:
        mean, var = ctx.weight("mean"), ctx.weight("variance")
    mean = _kept_param(ctx, np.asarray(mean), keep, x)
    std = np.maximum(np.sqrt(_kept_param(ctx, np.asarray(var), keep, x).astype(np.float64)), _EPSILON)
    if ctx.get("invert", False):
        return ctx.op.add(ctx.op.mul(x, ctx.const(std.astype(np.float32), "std")), ctx.const(mean, "mean"))
    return ctx.op.div(ctx.op.sub(x, ctx.const(mean, "mean")), ctx.const(std.astype(np.float32), "std"))


def _crop(ctx: KerasLayerContext, x: Value, top: int, left: int, h: int, w: int) -> Value:
    return ctx.op.slice(x, starts=(top, left), ends=(top + h, left + w), axes=(2, 3))


def _resize(ctx: KerasLayerContext, x: Value, height: int, width: int, interpolation: str,
            crop_to_aspect_ratio: bool) -> Value:
    if interpolation not in ("nearest", "bilinear"):
        raise ctx.fail(f"interpolation={interpolation!r} is not supported (use 'nearest' or 'bilinear')")
    if x.rank != 4:
        raise ctx.fail(f"expects a batch of images (rank 4), got rank {x.rank}")
    if crop_to_aspect_ratio:
        h, w = x.shape[2], x.shape[3]
        if not is_static((h, w)):
            raise ctx.fail("crop_to_aspect_ratio=True needs a known input height and width")
        ch = max(min(h, int(np.float32(w * height) / np.float32(width))), 1)
        cw = max(min(w, int(np.float32(h * width) / np.float32(height))), 1)
        x = _crop(ctx, x, int(np.float32(h - ch) / 2), int(np.float32(w - cw) / 2), ch, cw)
    if tuple(x.shape[2:]) == (height, width):
        return ctx.op.identity(x)
    return ctx.op.resize(x, mode=interpolation, sizes=(height, width))


@keras_layer("Resizing")
def resizing(ctx: KerasLayerContext, x: Value) -> Value:
    """resize (nearest/bilinear, TF half-pixel), optionally after a centre crop to the aspect ratio."""
    check_channels_last(ctx)
    if ctx.get("pad_to_aspect_ratio", False):
        raise ctx.fail("pad_to_aspect_ratio=True is not supported; resize without it or pad beforehand")
    if ctx.get("antialias", False):
        raise ctx.fail("antialias=True is not supported (Keras's default is False)")
    return _resize(ctx, x, int(ctx.get("height")), int(ctx.get("width")), ctx.get("interpolation", "bilinear"),
                   bool(ctx.get("crop_to_aspect_ratio", False)))


@keras_layer("CenterCrop")
def center_crop(ctx: KerasLayerContext, x: Value) -> Value:
    """Crop the centre; an input smaller than the target is resized (cropped to aspect ratio), as Keras does."""
    check_channels_last(ctx)
    height, width = int(ctx.get("height")), int(ctx.get("width"))
    h, w = x.shape[2], x.shape[3]
    if not is_static((h, w)):
        raise ctx.fail("needs a known input height and width")
    if h >= height and w >= width:
        return _crop(ctx, x, (h - height) // 2, (w - width) // 2, height, width)
    return _resize(ctx, x, height, width, "bilinear", True)
