"""MIL neural-network ops -> IR: conv, conv_transpose, pooling, linear, matmul,
einsum, batch/instance/layer norm, upsample and resize.

MIL's conv layout is the IR's: x (N, C, *S), conv weight (O, C/groups, *K),
conv_transpose weight (C, O/groups, *K). MIL writes ``pad`` per axis as
(begin, end) pairs; the IR wants all begins then all ends. ``pad_type`` "same"
is TensorFlow's 'same' (extra pixel at the end), the IR's ``auto_pad="same"``;
"same_lower" puts it at the start and needs static spatial dims.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.ir import Value


def _window(ctx: MilOpContext, x: Value, kernel: list[int], dilations: list[int] | None = None) -> dict:
    n = len(kernel)
    strides = ctx.ints("strides", [1] * n)
    dil = dilations or [1] * n
    pad_type = str(ctx.scalar("pad_type", "valid")).lower()
    if pad_type == "valid":
        return {"strides": strides, "pads": ()}
    if pad_type == "same":
        return {"strides": strides, "auto_pad": "same"}
    if pad_type == "custom":
        p = ctx.ints("pad", [0] * 2 * n)
        return {"strides": strides, "pads": p[0::2] + p[1::2]}
    if pad_type == "same_lower":
        begins, ends = [], []
        for i in range(n):
            size = x.shape[2 + i]
            if not isinstance(size, int):
                raise ctx.fail("pad_type 'same_lower' needs static spatial dims; give the input a fixed shape")
            eff = (kernel[i] - 1) * dil[i] + 1
            total = max((math.ceil(size / strides[i]) - 1) * strides[i] + eff - size, 0)
            begins.append(total - total // 2)
            ends.append(total // 2)
        return {"strides": strides, "pads": begins + ends}
    raise ctx.fail(f"unknown pad_type {pad_type!r}")


@mil_op("conv")
def conv(ctx: MilOpContext) -> Value:
    x, w = ctx.value("x"), ctx.value("weight")
    kernel = [int(k) for k in w.shape[2:]]
    dil = ctx.ints("dilations", [1] * len(kernel))
    attrs = _window(ctx, x, kernel, dil)
    b = ctx.value("bias") if ctx.has("bias") else None
    return ctx.op.conv(x, w, b, dilations=dil, group=int(ctx.scalar("groups", 1)), **attrs)


@mil_op("conv_transpose")
def conv_transpose(ctx: MilOpContext) -> Value:
    x, w = ctx.value("x"), ctx.value("weight")
    n = w.rank - 2
    kernel = [int(k) for k in w.shape[2:]]
    strides = ctx.ints("strides", [1] * n)
    dil = ctx.ints("dilations", [1] * n)
    groups = int(ctx.scalar("groups", 1))
    pad_type = str(ctx.scalar("pad_type", "valid")).lower()
    spatial = x.shape[2:]
    if not all(isinstance(d, int) for d in spatial):
        raise ctx.fail("conv_transpose needs static spatial dims; give the input a fixed shape")
    full = [(spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 for i in range(n)]
    if pad_type == "custom":
        p = ctx.ints("pad", [0] * 2 * n)
        begins, ends = p[0::2], p[1::2]
    elif pad_type == "valid":
        begins, ends = [0] * n, [0] * n
    elif pad_type in ("same", "same_lower"):
        totals = [max(full[i] - spatial[i] * strides[i], 0) for i in range(n)]
        small = [t // 2 for t in totals]
        big = [t - t // 2 for t in totals]
        begins, ends = (small, big) if pad_type == "same" else (big, small)
    else:
        raise ctx.fail(f"unknown pad_type {pad_type!r}")
    out = [full[i] - begins[i] - ends[i] for i in range(n)]
    extra = [0] * n
    want = ctx.out_type(0)
    if ctx.has("output_shape"):
        target = ctx.ints("output_shape")[-n:]
    elif want is not None and all(isinstance(d, int) for d in want.shape[2:]):
        target = list(want.shape[2:])
    else:
        target = out
    for i in range(n):
        extra[i] = target[i] - out[i]
        if extra[i] < 0:
            # A smaller output than the full result: crop more at the end.
            ends[i] -= extra[i]
            extra[i] = 0
    b = ctx.value("bias") if ctx.has("bias") else None
    return ctx.op.conv_transpose(x, w, b, strides=strides, dilations=dil, group=groups, pads=begins + ends,
                                 output_padding=extra if any(extra) else ())


def _pool(ctx: MilOpContext, ir_op: str, **extra) -> Value:
    x = ctx.value("x")
    kernel = ctx.ints("kernel_sizes")
    attrs = _window(ctx, x, kernel)
    if bool(ctx.scalar("ceil_mode", False)):
        raise ctx.fail("ceil_mode=True pooling is not supported by kcc")
    return getattr(ctx.op, ir_op)(x, kernel=kernel, **attrs, **extra)


@mil_op("max_pool")
def max_pool(ctx: MilOpContext) -> Value:
    return _pool(ctx, "max_pool")


@mil_op("avg_pool")
def avg_pool(ctx: MilOpContext) -> Value:
    return _pool(ctx, "avg_pool", count_include_pad=not bool(ctx.scalar("exclude_padding_from_average", False)))


@mil_op("l2_pool")
def l2_pool(ctx: MilOpContext) -> Value:
    """sqrt(sum of squares over the window) = sqrt(avg_pool(x^2, padding counted) * window size)."""
    x = ctx.value("x")
    kernel = ctx.ints("kernel_sizes")
    attrs = _window(ctx, x, kernel)
    mean = ctx.op.avg_pool(ctx.op.square(x), kernel=kernel, count_include_pad=True, **attrs)
    return ctx.op.sqrt(ctx.op.mul(mean, ctx.like(float(np.prod(kernel)), x)))


# ------------------------------------------------------------------ linear algebra

def _transposed_last2(ctx: MilOpContext, v: Value) -> Value:
    perm = list(range(v.rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return ctx.op.transpose(v, perm=perm)


@mil_op("linear")
def linear(ctx: MilOpContext) -> Value:
    """y = x @ weight.T + bias, contracting x's last axis; weight is (out, in)."""
    x = ctx.value("x")
    if ctx.is_const("weight"):
        wt = ctx.op.const(np.ascontiguousarray(np.asarray(ctx.const("weight")).T))
    else:
        wt = _transposed_last2(ctx, ctx.value("weight"))
    b = ctx.value("bias") if ctx.has("bias") else None
    if b is not None and b.is_const and not np.any(b.const):
        b = None
    if x.rank == 2:
        return ctx.op.dense(x, wt, b)
    y = ctx.op.matmul(x, wt)
    return ctx.op.add(y, b) if b is not None else y


@mil_op("matmul")
def matmul(ctx: MilOpContext) -> Value:
    x, y = ctx.value("x"), ctx.value("y")
    if bool(ctx.scalar("transpose_x", False)):
        x = _transposed_last2(ctx, x)
    if bool(ctx.scalar("transpose_y", False)):
        y = _transposed_last2(ctx, y)
    return ctx.op.matmul(x, y)


@mil_op("einsum")
def einsum(ctx: MilOpContext) -> Value:
    """A two-operand einsum as transposes, reshapes and one batched matmul.

    Letters of both operands and the output are batch axes, of both operands
    only are contracted, of one operand only are kept (each must be in the
    output: einsum of a single operand's own sum is refused).
    """
    a, b = ctx.values("values")
    eq = str(ctx.scalar("equation")).replace(" ", "")
    lhs, out = eq.split("->")
    la, lb = lhs.split(",")
    if "." in eq or len(set(la)) != len(la) or len(set(lb)) != len(lb) or any(c not in la + lb for c in out):
        raise ctx.fail(f"equation {eq!r}: kcc lowers einsum without ellipses or repeated letters")
    batch = [c for c in la if c in lb and c in out]
    contract = [c for c in la if c in lb and c not in out]
    free_a = [c for c in la if c not in lb]
    free_b = [c for c in lb if c not in la]
    if any(c not in out for c in free_a + free_b):
        raise ctx.fail(f"equation {eq!r} sums an axis of one operand only; kcc does not lower that")
    dims = {}
    for letters, v in ((la, a), (lb, b)):
        for c, d in zip(letters, v.shape):
            dims.setdefault(c, d)

    def group(letters):
        size = 1
        for c in letters:
            d = dims[c]
            if not isinstance(d, int):
                return -1
            size *= d
        return size

    def prepared(v, letters, order, lead, tail):
        perm = [letters.index(c) for c in order]
        if perm != list(range(len(perm))):
            v = ctx.op.transpose(v, perm=perm)
        shape = [0] * len(batch) + [group(lead), group(tail)]
        if shape.count(-1) > 1:
            raise ctx.fail(f"equation {eq!r}: too many unknown dims to lower")
        return ctx.op.reshape(v, shape=shape)

    a2 = prepared(a, la, batch + free_a + contract, free_a, contract)
    b2 = prepared(b, lb, batch + contract + free_b, contract, free_b)
    y = ctx.op.matmul(a2, b2)
    y_letters = batch + free_a + free_b
    shape = [0] * len(batch) + [dims[c] if isinstance(dims[c], int) else -1 for c in free_a + free_b]
    if shape.count(-1) > 1:
        raise ctx.fail(f"equation {eq!r}: too many unknown dims to lower")
    y = ctx.op.reshape(y, shape=shape)
    perm = [y_letters.index(c) for c in out]
    return y if perm == list(range(len(perm))) else ctx.op.transpose(y, perm=perm)


# ------------------------------------------------------------------ normalization

def _channel_param(ctx: MilOpContext, param: str, channels: int, fill: float, like: Value) -> Value:
    if ctx.has(param):
        return ctx.value(param)
    return ctx.like(np.full(channels, fill), like)


@mil_op("batch_norm")
def batch_norm(ctx: MilOpContext) -> Value:
    x, mean, var = ctx.value("x"), ctx.value("mean"), ctx.value("variance")
    c = int(mean.shape[0])
    return ctx.op.batch_norm(x, _channel_param(ctx, "gamma", c, 1.0, x), _channel_param(ctx, "beta", c, 0.0, x),
                             mean, var, epsilon=float(ctx.scalar("epsilon", 1e-5)))


@mil_op("instance_norm")
def instance_norm(ctx: MilOpContext) -> Value:
    """layer_norm over the spatial axes, then the per-channel gamma and beta."""
    x = ctx.value("x")
    y = ctx.op.layer_norm(x, axes=list(range(2, x.rank)), epsilon=float(ctx.scalar("epsilon", 1e-5)))
    tail = (1,) * (x.rank - 2)
    if ctx.has("gamma"):
        y = ctx.op.mul(y, ctx.like(np.asarray(ctx.const("gamma")).reshape((-1,) + tail), x))
    if ctx.has("beta"):
        y = ctx.op.add(y, ctx.like(np.asarray(ctx.const("beta")).reshape((-1,) + tail), x))
    return y


@mil_op("layer_norm")
def layer_norm(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    axes = sorted(a % x.rank for a in ctx.ints("axes", list(range(x.rank))))
    scale = ctx.value("gamma") if ctx.has("gamma") else None
    bias = ctx.value("beta") if ctx.has("beta") else None
    return ctx.op.layer_norm(x, scale, bias, axes=axes, epsilon=float(ctx.scalar("epsilon", 1e-5)))


@mil_op("l2_norm")
def l2_norm(ctx: MilOpContext) -> Value:
    """x / sqrt(max(sum(x^2) over all but the batch axis, epsilon))."""
    x = ctx.value("x")
    axes = list(range(1, x.rank)) if x.rank > 1 else [0]
    s = ctx.op.reduce_sum(ctx.op.square(x), axes=axes, keepdims=True)
    s = ctx.op.max(s, ctx.like(float(ctx.scalar("epsilon", 1e-6)), x))
    return ctx.op.mul(x, ctx.op.rsqrt(s))


# ------------------------------------------------------------------ resampling

def _integer_nearest(ctx: MilOpContext, x: Value, sizes: list) -> None:
    """MIL's nearest neighbour samples floor(out * in / size); the IR's equals it for integer upsampling."""
    for d, s in zip(x.shape[2:], sizes):
        if not (isinstance(d, int) and isinstance(s, int) and d > 0 and s % d == 0):
            raise ctx.fail(f"nearest-neighbour resize of {d} to {s}: kcc supports integer upsampling factors only")


@mil_op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    sh, sw = float(ctx.scalar("scale_factor_height", 1)), float(ctx.scalar("scale_factor_width", 1))
    if sh != int(sh) or sw != int(sw):
        raise ctx.fail(f"scale factors {sh}, {sw}: kcc supports integer upsampling factors only")
    return ctx.op.resize(x, mode="nearest", scales=[sh, sw])


@mil_op("upsample_bilinear")
def upsample_bilinear(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    sh, sw = float(ctx.scalar("scale_factor_height", 1)), float(ctx.scalar("scale_factor_width", 1))
    align = bool(ctx.scalar("align_corners", True))
    half_pixel = bool(ctx.scalar("half_pixel_centers", not align))
    if align or not half_pixel:
        raise ctx.fail("upsample_bilinear with align_corners=True or without half-pixel centers is not supported "
                       "by kcc (the IR resize samples at half-pixel centers, like TensorFlow 2 and ONNX)")
    return ctx.op.resize(x, mode="bilinear", scales=[sh, sw])


def _bilinear_sizes(ctx: MilOpContext, x: Value, sizes: list[int]) -> Value:
    mode = str(ctx.scalar("sampling_mode", "DEFAULT"))
    if mode != "UNALIGN_CORNERS":
        raise ctx.fail(f"sampling_mode {mode!r} is not supported by kcc (only UNALIGN_CORNERS, half-pixel centers)")
    return ctx.op.resize(x, mode="bilinear", sizes=sizes)


@mil_op("resize_bilinear")
def resize_bilinear(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return _bilinear_sizes(ctx, x, [int(ctx.scalar("target_size_height", 1)), int(ctx.scalar("target_size_width", 1))])


@mil_op("resize_nearest_neighbor")
def resize_nearest_neighbor(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    sizes = [int(ctx.scalar("target_size_height", 1)), int(ctx.scalar("target_size_width", 1))]
    _integer_nearest(ctx, x, sizes)
    return ctx.op.resize(x, mode="nearest", sizes=sizes)


@mil_op("resize")
def resize(ctx: MilOpContext) -> Value:
    """iOS17 ``resize``: the last ``resized_dims`` dims to the last entries of ``shape`` (0 keeps a dim)."""
    x = ctx.value("x")
    n = int(ctx.scalar("resized_dims"))
    target = ctx.ints("shape")[-n:] if n else []
    if n != 2 or x.rank != 4:
        raise ctx.fail("kcc lowers resize of the two spatial axes of a rank-4 tensor only")
    sizes = [x.shape[2 + i] if t == 0 else t for i, t in enumerate(target)]
    if not all(isinstance(s, int) for s in sizes):
        raise ctx.fail("resize keeping an unknown dim needs a static input shape")
    mode = str(ctx.scalar("interpolation_mode", "LINEAR"))
    if mode == "NEAREST_NEIGHBOR":
        _integer_nearest(ctx, x, sizes)
        return ctx.op.resize(x, mode="nearest", sizes=sizes)
    return _bilinear_sizes(ctx, x, sizes)


@mil_op("scaled_dot_product_attention")
def scaled_dot_product_attention(ctx: MilOpContext) -> Value:
    """iOS18: softmax(Q K^T / sqrt(d) + mask) V; a bool mask keeps the True entries (others get -inf)."""
    q, k, v = ctx.value("query"), ctx.value("key"), ctx.value("value")
    d = q.shape[-1]
    if not isinstance(d, int):
        raise ctx.fail("the query's last dim must be static")
    kt = _transposed_last2(ctx, k)
    scores = ctx.op.matmul(ctx.op.mul(q, ctx.like(1.0 / math.sqrt(d), q)), kt)
    if ctx.has("attn_mask"):
        mask = ctx.value("attn_mask")
        if mask.dtype == "bool":
            scores = ctx.op.where(mask, scores, ctx.like(-np.inf, scores))
        else:
            scores = ctx.op.add(scores, mask)
    return ctx.op.matmul(ctx.op.softmax(scores, axis=scores.rank - 1), v)
