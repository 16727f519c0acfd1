"""ONNX Resize, DepthToSpace, SpaceToDepth -> IR (NCHW, like the IR)."""
from __future__ import annotations

import math

from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Value

# (mode, coordinate_transformation_mode, nearest_mode) -> IR resize mode. These are the
# conventions the IR's resize computes (TensorFlow 2's half-pixel ones); others are refused.
_RESIZE_MODES = {
    ("linear", "half_pixel", None): "bilinear",
    ("linear", "pytorch_half_pixel", None): "bilinear",
    ("nearest", "tf_half_pixel_for_nn", "floor"): "nearest",
    ("nearest", "half_pixel", "round_prefer_ceil"): "nearest",
}


@onnx_op("Resize")
def resize(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    mode = ctx.attr("mode", "nearest")
    key = (mode, ctx.attr("coordinate_transformation_mode", "half_pixel"),
           ctx.attr("nearest_mode", "round_prefer_floor") if mode == "nearest" else None)
    ir_mode = _RESIZE_MODES.get(key)
    if ir_mode is None or ctx.attr("antialias", 0):
        raise ctx.fail(f"Resize with mode/coordinate_transformation_mode/nearest_mode {key} is not supported "
                       f"(kcc supports {sorted(_RESIZE_MODES)})")
    if ctx.has(3):
        sizes = ctx.dims(3)
        if any(d != s for d, s in zip(x.shape[:2], sizes[:2])):
            raise ctx.fail(f"sizes {sizes} must keep the batch and channel axes of {x.type}")
        return ctx.op.resize(x, mode=ir_mode, sizes=tuple(sizes[2:]))
    scales = [float(s) for s in ctx.const(2).ravel()]
    if len(scales) != x.rank or scales[:2] != [1.0, 1.0]:
        raise ctx.fail(f"scales {scales} must keep the batch and channel axes")
    spatial = x.shape[2:]
    if all(isinstance(d, int) for d in spatial):
        return ctx.op.resize(x, mode=ir_mode, sizes=tuple(_scaled(ctx, d, s) for d, s in zip(spatial, scales[2:])))
    return ctx.op.resize(x, mode=ir_mode, scales=tuple(scales[2:]))


def _scaled(ctx: OnnxNodeContext, size: int, scale: float) -> int:
    """ONNX's floor(size * scale), or the intended integer size for tf2onnx's float32 scales."""
    exact = size * scale
    if ctx.options.get("exact_resize_sizes") and abs(exact - round(exact)) < 1e-4:
        return int(round(exact))
    return int(math.floor(exact))


def _static_chw(ctx: OnnxNodeContext, x: Value) -> tuple[int, int, int]:
    if x.rank != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ctx.fail(f"needs a rank-4 input with static channels and spatial size, got {x.type}")
    return x.shape[1], x.shape[2], x.shape[3]


@onnx_op("DepthToSpace")
def depth_to_space(ctx: OnnxNodeContext) -> Value:
    """DCR: (N, b, b, C', H, W) -> (N, C', H, b, W, b); CRD: (N, C', b, b, H, W) -> same."""
    x = ctx.value(0)
    b = ctx.attr("blocksize")
    c, h, w = _static_chw(ctx, x)
    co = c // (b * b)
    if ctx.attr("mode", "DCR") == "DCR":
        t = ctx.op.reshape(x, shape=(0, b, b, co, h, w))
        t = ctx.op.transpose(t, perm=(0, 3, 4, 1, 5, 2))
    else:
        t = ctx.op.reshape(x, shape=(0, co, b, b, h, w))
        t = ctx.op.transpose(t, perm=(0, 1, 4, 2, 5, 3))
    return ctx.op.reshape(t, shape=(0, co, h * b, w * b))


@onnx_op("SpaceToDepth")
def space_to_depth(ctx: OnnxNodeContext) -> Value:
    """(N, C, H/b, b, W/b, b) -> (N, b, b, C, H/b, W/b) -> (N, C*b*b, H/b, W/b)."""
    x = ctx.value(0)
    b = ctx.attr("blocksize")
    c, h, w = _static_chw(ctx, x)
    t = ctx.op.reshape(x, shape=(0, c, h // b, b, w // b, b))
    t = ctx.op.transpose(t, perm=(0, 3, 5, 1, 2, 4))
    return ctx.op.reshape(t, shape=(0, c * b * b, h // b, w // b))
