"""ONNX emitters for conv_transpose, layer_norm and resize (ops in kcc.ops.nn_more)."""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.backends.onnx.emit_math import emit_reduce
from kcc.ir import DTYPES, Node


@onnx_emitter("conv_transpose")
def _conv_transpose(ctx: OnnxContext, node: Node) -> None:
    w = node.inputs[1]
    n = w.rank - 2
    a = node.attrs
    attrs = {"kernel_shape": list(w.shape[2:]), "strides": list(a["strides"] or (1,) * n),
             "dilations": list(a["dilations"] or (1,) * n), "pads": list(a["pads"] or (0,) * (2 * n)),
             "group": a["group"]}
    if a["output_padding"]:
        attrs["output_padding"] = list(a["output_padding"])
    ins = [ctx.name(v) for v in node.inputs if v is not None]
    ctx.add("ConvTranspose", ins, [ctx.out(node)], hint=node.name, **attrs)


def _is_suffix(axes: tuple[int, ...], rank: int) -> bool:
    return bool(axes) and list(axes) == list(range(rank - len(axes), rank))


@onnx_emitter("layer_norm")
def _layer_norm(ctx: OnnxContext, node: Node) -> None:
    """Native LayerNormalization when the axes are a suffix; otherwise mean/variance nodes."""
    x, scale, bias = node.inputs
    r = x.rank
    axes = tuple(sorted(a % r for a in node.attrs["axes"]))
    eps = node.attrs["epsilon"]
    dt = DTYPES[x.dtype]
    if _is_suffix(axes, r) and (scale is None or scale.is_const) and all(isinstance(x.shape[a], int) for a in axes):
        s = ctx.name(scale) if scale is not None else ctx.const(np.ones([x.shape[a] for a in axes], dt), "ln_ones")
        ins = [ctx.name(x), s] + ([ctx.name(bias)] if bias is not None else [])
        ctx.add("LayerNormalization", ins, [ctx.out(node)], hint=node.name, axis=axes[0], epsilon=eps)
        return
    h = node.name
    xn = ctx.name(x)
    mean = ctx.fresh(f"{h}_mean")
    emit_reduce(ctx, "ReduceMean", xn, mean, axes, True)
    (d,) = ctx.add("Sub", [xn, mean], hint=f"{h}_centered")
    (sq,) = ctx.add("Mul", [d, d], hint=f"{h}_sq")
    var = ctx.fresh(f"{h}_var")
    emit_reduce(ctx, "ReduceMean", sq, var, axes, True)
    (ve,) = ctx.add("Add", [var, ctx.const(np.asarray(eps, dt), f"{h}_eps")], hint=f"{h}_var_eps")
    (sd,) = ctx.add("Sqrt", [ve], hint=f"{h}_std")
    rest = [p for p in (scale, bias) if p is not None]
    (y,) = ctx.add("Div", [d, sd], [ctx.out(node)] if not rest else None, hint=f"{h}_norm")
    for p, op in ((scale, "Mul"), (bias, "Add")):
        if p is None:
            continue
        shape = [1] * r
        for a, dim in zip(axes, p.shape):
            shape[a] = dim
        (pr,) = ctx.add("Reshape", [ctx.name(p), ctx.ints(shape, f"{h}_pshape")], hint=f"{h}_{op.lower()}_p")
        last = p is rest[-1]
        (y,) = ctx.add(op, [y, pr], [ctx.out(node)] if last else None, hint=f"{h}_{op.lower()}")


@onnx_emitter("resize")
def _resize(ctx: OnnxContext, node: Node) -> None:
    """Resize with TF half-pixel conventions: sizes from Shape(x)[:2] + static sizes, or scales."""
    x = node.inputs[0]
    a = node.attrs
    mode = {"nearest": "nearest", "bilinear": "linear"}[a["mode"]]
    extra = {"nearest_mode": "round_prefer_ceil"} if mode == "nearest" else {}
    xn = ctx.name(x)
    if a["sizes"]:
        (nc,) = ctx.add("Shape", [xn], hint=f"{node.name}_shape", start=0, end=2)
        (sizes,) = ctx.add("Concat", [nc, ctx.ints(list(a["sizes"]), f"{node.name}_hw")], hint=f"{node.name}_sizes",
                           axis=0)
        ins = [xn, "", "", sizes]
    else:
        scales = ctx.const(np.asarray([1.0, 1.0] + list(a["scales"]), np.float32), f"{node.name}_scales")
        ins = [xn, "", scales]
    ctx.add("Resize", ins, [ctx.out(node)], hint=node.name, mode=mode,
            coordinate_transformation_mode="half_pixel", **extra)
