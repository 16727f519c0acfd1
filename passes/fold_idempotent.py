"""fold_idempotent: cheap algebraic cleanups of unary chains.

* ``abs(abs(x))`` -> ``abs(x)``; ``neg(neg(x))`` -> ``x``
* ``square(neg(x))``, ``square(abs(x))`` -> ``square(x)``; ``abs(square(x))`` -> ``square(x)``
* ``cast(x, to=<x's dtype>)`` -> ``x`` (Keras's backend casts to the compute dtype it already has)

(``relu(relu(x))`` and clip chains are merged by fuse_clip.)

Before::

    %abs: f32[N,10] = abs(%x)
    %abs_1: f32[N,10] = abs(%abs)

After::

    %abs_1: f32[N,10] = abs(%x)

Not folded: an inner value read elsewhere (it must be computed anyway), a
cast that changes the dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ir import Graph
from kcc.passes._match import on_x
from kcc.pattern import RewriteRule, apply_rules
from kcc.pipeline import Pass, register_pass


def _check_cast(graph, x, root):
    return None if root.attrs["to"] == x.dtype else f"the cast changes {x.dtype} to {root.attrs['to']}"


RULES = [
    RewriteRule("abs_abs", on_x(lambda op, x: op.abs(op.abs(x))), lambda op, x: op.abs(x)),
    RewriteRule("neg_neg", on_x(lambda op, x: op.neg(op.neg(x))), lambda op, x: x),
    RewriteRule("square_neg", on_x(lambda op, x: op.square(op.neg(x))), lambda op, x: op.square(x)),
    RewriteRule("square_abs", on_x(lambda op, x: op.square(op.abs(x))), lambda op, x: op.square(x)),
    RewriteRule("abs_square", on_x(lambda op, x: op.abs(op.square(x))), lambda op, x: op.square(x)),
    RewriteRule("cast_same", on_x(lambda op, x: op.cast(x, _capture="root")), lambda op, x, root: x, _check_cast),
]


@register_pass
@dataclass
class FoldIdempotent(Pass):
    name = "fold_idempotent"
    after = ("fold_identity",)

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, RULES)
