"""lower_onnx_rms_norm: rms_norm that ONNX RMSNormalization cannot express at the opset -> its formula.

ONNX RMSNormalization (opset 23) normalizes the axes from ``axis`` to the last
one with a Scale of static shape. Below opset 23, over other axes (the channel
axis 1 of a channels-first tensor), or with a symbolic normalized dim, rms_norm
becomes the formula (passes/_rms_norm_rules.py).

Before::

    %y: f32[N,T,6] = rms_norm(%x, %scale) {axes=(2,), epsilon=1e-06}

After (opset 17)::

    %sq = mul(%x, %x)
    %ms = reduce_mean(%sq) {axes=(2,), keepdims=True}
    %mse = add(%ms, %eps)
    %rms = sqrt(%mse)
    %n = div(%x, %rms)
    %y = mul(%n, %scale_b)        // scale reshaped to (1, 1, 6)

Not rewritten: at opset 23 and up, trailing axes of static sizes with a
constant (or absent) scale: one RMSNormalization node.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kcc.formats.onnx_ops import RMS_NORMALIZATION_SINCE
from kcc.passes._onnx_lowering import OnnxLoweringPass
from kcc.passes._rms_norm_rules import rms_norm_rules
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def native_rms_norm(opset: int, x, scale, root) -> str | None:
    """Why ONNX RMSNormalization at ``opset`` expresses this rms_norm as it is; None when it cannot."""
    if opset < RMS_NORMALIZATION_SINCE:
        return None
    axes = tuple(sorted(a % x.rank for a in root.attrs["axes"]))
    if not axes or axes != tuple(range(x.rank - len(axes), x.rank)):
        return None
    if (scale is not None and not scale.is_const) or not all(isinstance(x.shape[a], int) for a in axes):
        return None
    return f"ONNX opset {opset} has RMSNormalization over the trailing axes {axes}"


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    def check(graph, x, root, scale=None):
        return native_rms_norm(opset, x, scale, root)
    return rms_norm_rules(check)


@register_pass
@dataclass
class LowerOnnxRmsNorm(OnnxLoweringPass):
    name = "lower_onnx_rms_norm"
    after = ("fuse_square",)
    rules_for = staticmethod(_rules)
