"""ONNX convolution, pooling, Gemm/MatMul and batch norm -> IR (both already NCHW)."""
from __future__ import annotations

from kcc.formats.onnx_ops import BY_ONNX, ir_attrs
from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Value

_AUTO_PAD = {"NOTSET": "none", "VALID": "none", "SAME_UPPER": "same"}


def _window(ctx: OnnxNodeContext, n: int) -> dict:
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto not in _AUTO_PAD:
        raise ctx.fail(f"auto_pad={auto} is not supported (use explicit pads or SAME_UPPER)")
    out = {"strides": tuple(ctx.attr("strides", (1,) * n))}
    if _AUTO_PAD[auto] == "same":
        out["auto_pad"] = "same"
    else:
        out["pads"] = tuple(ctx.attr("pads", (0,) * (2 * n)))
    return out


@onnx_op("Conv")
def conv(ctx: OnnxNodeContext) -> Value:
    x, w = ctx.value(0), ctx.value(1)
    b = ctx.value(2) if ctx.has(2) else None
    n = w.rank - 2
    return ctx.op.conv(x, w, b, dilations=tuple(ctx.attr("dilations", (1,) * n)), group=ctx.attr("group", 1),
                       **_window(ctx, n))


@onnx_op("MaxPool", "AveragePool")
def pool(ctx: OnnxNodeContext) -> Value:
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.fail("MaxPool's Indices output is not supported")
    if ctx.attr("ceil_mode", 0) or any(d != 1 for d in ctx.attr("dilations", ())):
        raise ctx.fail("ceil_mode and dilations are not supported")
    kernel = tuple(ctx.attr("kernel_shape"))
    attrs = _window(ctx, len(kernel))
    if ctx.node.op_type == "MaxPool":
        return ctx.op.max_pool(ctx.value(0), kernel=kernel, **attrs)
    return ctx.op.avg_pool(ctx.value(0), kernel=kernel, count_include_pad=bool(ctx.attr("count_include_pad", 0)),
                           **attrs)


@onnx_op("MatMul")
def matmul(ctx: OnnxNodeContext) -> Value:
    a, b = ctx.value(0), ctx.value(1)
    if a.rank == 2 and b.rank == 2 and b.is_const:
        return ctx.op.dense(a, b)
    if a.rank < 2 or b.rank < 2:
        raise ctx.fail(f"MatMul of rank {a.rank} and {b.rank} operands (1-D operands) is not supported")
    return ctx.op.matmul(a, b)


@onnx_op("Gemm")
def gemm(ctx: OnnxNodeContext) -> Value:
    """alpha * A' B' + beta * C: a dense when B (and C) are constants, else matmul + add."""
    a, b = ctx.value(0), ctx.value(1)
    if ctx.attr("transA", 0):
        a = ctx.op.transpose(a, perm=(1, 0))
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    c = ctx.value(2) if ctx.has(2) else None
    if b.is_const and (c is None or (c.is_const and c.rank <= 1)):
        w = b.const.T if ctx.attr("transB", 0) else b.const
        bias = None
        if c is not None:
            import numpy as np
            bias = ctx.op.const(np.broadcast_to(c.const * beta, (w.shape[1],)).astype(w.dtype))
        return ctx.op.dense(a, ctx.op.const(w * alpha if alpha != 1.0 else w), bias)
    if ctx.attr("transB", 0):
        b = ctx.op.transpose(b, perm=(1, 0))
    y = ctx.op.matmul(a, b)
    if alpha != 1.0:
        y = ctx.op.mul(y, ctx.op.scalar(alpha, y))
    if c is not None:
        y = ctx.op.add(y, c if beta == 1.0 else ctx.op.mul(c, ctx.op.scalar(beta, c)))
    return y


@onnx_op("BatchNormalization")
def batch_norm(ctx: OnnxNodeContext) -> Value:
    if len([o for o in ctx.node.output if o]) > 1:
        raise ctx.fail("training-mode BatchNormalization (running statistics outputs) is not supported")
    return ctx.op.batch_norm(*[ctx.value(i) for i in range(5)], **ir_attrs(BY_ONNX["BatchNormalization"], ctx.attrs))


def _norm_param(ctx: OnnxNodeContext, i: int, want: tuple, what: str) -> Value | None:
    """Scale or bias input ``i`` with the normalized dims' shape: a constant that broadcasts to
    them (ONNX allows ``(1,)`` or fewer leading dims) is expanded; a computed one must match."""
    if not ctx.has(i):
        return None
    p = ctx.value(i)
    if tuple(p.shape) == want:
        return p
    if p.is_const and all(isinstance(d, int) for d in want):
        import numpy as np
        try:
            return ctx.op.const(np.ascontiguousarray(np.broadcast_to(p.const, want)))
        except ValueError:
            pass
    raise ctx.fail(f"its {what} has shape {list(p.shape)}, which is not the normalized dims {list(want)} "
                   "(kcc reads a computed scale or bias only with exactly those dims)")


def _normalized(ctx: OnnxNodeContext) -> tuple[Value, tuple[int, ...], tuple]:
    x = ctx.value(0)
    axis = ctx.attr("axis", -1)
    if not -x.rank <= axis < x.rank:
        raise ctx.fail(f"axis={axis} is out of range for a rank-{x.rank} input")
    axes = tuple(range(axis % x.rank, x.rank))
    return x, axes, tuple(x.shape[a] for a in axes)


@onnx_op("LayerNormalization")
def layer_norm(ctx: OnnxNodeContext) -> list[Value]:
    """Normalization over the axes from ``axis`` to the last: one layer_norm. The optional Mean and
    InvStdDev outputs are computed beside it (the importer drops them when nothing reads them)."""
    x, axes, want = _normalized(ctx)
    eps = float(ctx.attr("epsilon", 1e-5))
    y = ctx.op.layer_norm(x, _norm_param(ctx, 1, want, "Scale"), _norm_param(ctx, 2, want, "B"),
                          axes=axes, epsilon=eps)
    if len([o for o in ctx.node.output if o]) == 1:
        return [y]
    mean = ctx.op.reduce_mean(x, axes=axes, keepdims=True)
    centered = ctx.op.sub(x, mean)
    var = ctx.op.reduce_mean(ctx.op.mul(centered, centered), axes=axes, keepdims=True)
    return [y, mean, ctx.op.rsqrt(ctx.op.add(var, ctx.op.scalar(eps, var)))]


@onnx_op("RMSNormalization")
def rms_norm(ctx: OnnxNodeContext) -> Value:
    """RMSNormalization (opset 23) over the axes from ``axis`` to the last."""
    x, axes, want = _normalized(ctx)
    return ctx.op.rms_norm(x, _norm_param(ctx, 1, want, "scale"), axes=axes,
                           epsilon=float(ctx.attr("epsilon", 1e-5)))
