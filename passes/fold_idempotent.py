"""fold_idempotent: cheap algebraic cleanups of unary chains.

* ``abs(abs(x))`` -> ``abs(x)``; ``neg(neg(x))`` -> ``x``
* ``square(neg(x))``, ``square(abs(x))`` -> ``square(x)``; ``abs(square(x))`` -> ``square(x)``
* ``cast(x, to=<x's dtype>)`` -> ``x`` (Keras's backend casts to the compute dtype it already has)
* ``x * 1``, ``x + 0``, ``x - 0``, ``x / 1``, ``pow(x, 1)`` -> ``x`` (tf.nn.silu traces as
  ``x * sigmoid(1.0 * x)``)

(``relu(relu(x))`` and clip chains are merged by fuse_clip.)

Before::

    %abs: f32[N,10] = abs(%x)
    %abs_1: f32[N,10] = abs(%abs)

After::

    %abs_1: f32[N,10] = abs(%x)

Not folded: an inner value read elsewhere (it must be computed anyway), a
cast that changes the dtype, a neutral constant that broadcasts x to a wider
shape (then the op is a broadcast, not a no-op).
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._match import on_x, same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _check_cast(graph, x, root):
    return None if root.attrs["to"] == x.dtype else f"the cast changes {x.dtype} to {root.attrs['to']}"


def _check_neutral(graph, x, root):
    return same_type(root, x)


def _neutral(name: str, build) -> RewriteRule:
    return RewriteRule(name, on_x(build), lambda op, x, root: x, _check_neutral)


RULES = [
    RewriteRule("abs_abs", on_x(lambda op, x: op.abs(op.abs(x))), lambda op, x: op.abs(x)),
    RewriteRule("neg_neg", on_x(lambda op, x: op.neg(op.neg(x))), lambda op, x: x),
    RewriteRule("square_neg", on_x(lambda op, x: op.square(op.neg(x))), lambda op, x: op.square(x)),
    RewriteRule("square_abs", on_x(lambda op, x: op.square(op.abs(x))), lambda op, x: op.square(x)),
    RewriteRule("abs_square", on_x(lambda op, x: op.abs(op.square(x))), lambda op, x: op.square(x)),
    RewriteRule("cast_same", on_x(lambda op, x: op.cast(x, _capture="root")), lambda op, x, root: x, _check_cast),
    _neutral("mul_one", lambda op, x: op.mul(x, 1.0, _capture="root")),
    _neutral("add_zero", lambda op, x: op.add(x, 0.0, _capture="root")),
    _neutral("sub_zero", lambda op, x: op.sub(x, 0.0, _capture="root")),
    _neutral("div_one", lambda op, x: op.div(x, 1.0, _capture="root")),
    _neutral("pow_one", lambda op, x: op.pow(x, 1.0, _capture="root")),
]


@register_pass
@dataclass
class FoldIdempotent(RewritePass):
    name = "fold_idempotent"
    after = ("fold_identity",)
    rules = RULES
