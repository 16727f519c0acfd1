"""ONNX emitter for resize (TensorFlow's half-pixel conventions)."""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.ir import Node


@onnx_emitter("resize")
def _resize(ctx: OnnxContext, node: Node) -> None:
    """Resize with TF half-pixel conventions: sizes from Shape(x)[:2] + static sizes, or scales.

    The sizes input is computed (Shape, Concat) so the batch stays symbolic.
    """
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
