"""fuse_leaky_relu: ``max(x, a * x)`` with 0 < a < 1 -> ``leaky_relu(x, alpha=a)``.

For a > 1 the same function is ``min(x, a * x)``, also matched. ``a`` must be
one scalar constant (a per-channel slope is a ``prelu``, not this).

Before::

    %mul: f32[N,10] = mul(%x, %alpha)      # %alpha = 0.2
    %max: f32[N,10] = max(%x, %mul)

After::

    %leaky_relu: f32[N,10] = leaky_relu(%x) {alpha=0.2}

Targets: ONNX LeakyRelu; Core ML activation leakyReLU(alpha).

Not fused: ``max(x, a*x)`` with a >= 1 (that is ``a*x`` for x > 0, not a
leaky relu) or a <= 0, ``max(x, a*y)`` with y != x, a non-scalar a.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._match import same_type, scalar
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _checker(low: float, high: float):
    def check(graph, x, a, root):
        av = scalar(a)
        if av is None:
            return f"{a.name} is not a scalar constant"
        if not low < av < high:
            return f"slope {av:g} is outside ({low:g}, {high:g}) for {root.op}(x, a*x)"
        return same_type(root, x)
    return check


def _rewrite(op, x, a, root):
    return op.leaky_relu(x, alpha=scalar(a))


RULES = [
    RewriteRule("max_x_ax", lambda op, x, a: op.max(x, op.mul(x, a), _capture="root"), _rewrite, _checker(0.0, 1.0)),
    RewriteRule("min_x_ax", lambda op, x, a: op.min(x, op.mul(x, a), _capture="root"), _rewrite,
                _checker(1.0, float("inf"))),
]


@register_pass
@dataclass
class FuseLeakyRelu(RewritePass):
    name = "fuse_leaky_relu"
    after = ("fold_identity",)
    rules = RULES
