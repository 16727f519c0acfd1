"""fuse_square: ``x * x`` and ``pow(x, 2)`` -> ``square(x)``.

Runs before the activation and normalization fusions, whose patterns then
need one spelling of a square (``gelu``'s x**3 is ``square(x) * x``, a
variance is ``reduce_mean(square(x - mean))``).

Before::

    %mul: f32[N,10] = mul(%x, %x)

After::

    %square: f32[N,10] = square(%x)

Not fused: ``x * y`` with y another value, integer tensors, or a ``pow`` whose
exponent is not the constant 2.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._match import same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _check(graph, x, root):
    return same_type(root, x)


RULES = [
    RewriteRule("mul_self", lambda op, x: op.mul(x, x, _capture="root"), lambda op, x, root: op.square(x), _check),
    RewriteRule("pow_2", lambda op, x: op.pow(x, 2.0, _capture="root"), lambda op, x, root: op.square(x), _check),
]


@register_pass
@dataclass
class FuseSquare(RewritePass):
    name = "fuse_square"
    after = ("fold_identity",)
    rules = RULES
