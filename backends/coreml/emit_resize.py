"""Core ML emitter for resize: the ``upsample`` layer.

Integer nearest upsampling is ``upsample`` (spec 1), integer bilinear
``upsample`` with ``ALIGN_CORNERS_FALSE`` (TensorFlow's half-pixel rule;
spec 4). Any other size was rewritten by passes/lower_coreml_axes.py into
exact resampling matrices (``matmul``) along each spatial axis.
"""
from __future__ import annotations

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.backends.coreml.emit_nn import around4d
from kcc.ir import Node


def _factors(node: Node, ctx: CoremlContext) -> list[float]:
    x, out = node.inputs[0], node.outputs[0]
    return [o / i for o, i in zip(ctx.dims(out)[2:], ctx.dims(x)[2:])]


def _upsample_form(ctx: CoremlContext, node: Node) -> bool:
    """Integer factors on a 1-D or 2-D resize: the ``upsample`` layer (both layouts)."""
    factors = _factors(node, ctx)
    return all(f >= 1 and float(f).is_integer() for f in factors) and node.inputs[0].rank in (3, 4)


@coreml_emitter("resize")
def _resize(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    mode = node.attrs["mode"]
    factors = _factors(node, ctx)
    if _upsample_form(ctx, node):
        hw = [1.0] + factors if x.rank == 3 else factors

        def build(inp: str, out: str) -> None:
            _, p = ctx.layer("upsample", [inp], out)
            p.scalingFactor.extend(int(f) for f in hw)
            if mode == "nearest":
                p.mode = type(p).InterpolationMode.Value("NN")
            else:
                p.mode = type(p).InterpolationMode.Value("BILINEAR")
                p.linearUpsampleMode = type(p).LinearUpsampleMode.Value("ALIGN_CORNERS_FALSE")
                ctx.require(4, node, "upsample with linearUpsampleMode")

        around4d(ctx, node, x, build)
        return
    raise ctx.fail(node, f"resize by factors {factors} reaches the emitter: run the Core ML lowering "
                         f"(lower_coreml_axes) first")
