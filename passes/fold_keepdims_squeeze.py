"""fold_keepdims_squeeze: a reduction that keeps its axes, then a squeeze of exactly those axes.

A Core ML global pool is ``(N, C, 1, 1)`` followed by a flatten or squeeze, and
traced TensorFlow reductions often keep dims and squeeze later. One reduction
that drops the axes says the same with one op (and one Keras layer on the way
back: ``GlobalAveragePooling2D`` with no ``Reshape`` after it).

Before::

    %pool: f32[N,16,1,1] = reduce_mean(%x) {axes=(2, 3), keepdims=True}
    %sq: f32[N,16] = squeeze(%pool) {axes=(2, 3)}

After::

    %sq: f32[N,16] = reduce_mean(%x) {axes=(2, 3)}

Not folded: a squeeze of other axes than the reduced ones (or of only some of
them), a reduction whose kept-dims result is also read elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ops.shapes import norm_axes
from kcc.passes.base import RewritePass, register_pass
from kcc.pattern import RewriteRule

REDUCTIONS = ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod")


def _rule(op_name: str) -> RewriteRule:
    def pattern(op, x):
        return op.squeeze(getattr(op, op_name)(x, _capture="red"), _capture="sq")

    def rewrite(op, x, red, sq):
        return getattr(op, op_name)(x, axes=red.attrs["axes"], keepdims=False)

    def check(graph, x, red, sq):
        if not red.attrs["keepdims"]:
            return "the reduction already drops its axes"
        rank = x.rank
        if sorted(norm_axes(red.attrs["axes"], rank)) != sorted(norm_axes(sq.attrs["axes"], rank)):
            return "the squeeze removes other axes than the reduced ones"
        return None

    return RewriteRule(f"{op_name}_squeeze", pattern, rewrite, check)


@register_pass
@dataclass
class FoldKeepdimsSqueeze(RewritePass):
    name = "fold_keepdims_squeeze"
    after = ("fold_identity",)
    rules = [_rule(name) for name in REDUCTIONS]
