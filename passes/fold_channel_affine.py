"""fold_channel_affine: fold a per-channel add/sub/mul/div by a constant into conv/dense weights.

A conv, dense or conv_transpose computes y[:, o] = (linear in x)[:, o] + b[o];
``y * s + t`` with s, t constant per output channel (or scalars) is the same
producer with w' = w * s along the output-channel axis and b' = b * s + t.
What traced Lambda bodies and hand-written bias/scale layers produce
(``x * gamma + beta`` after a bias-free Dense) then costs nothing.

Before (a bias-add: a constant broadcast along axis 1)::

    %conv: f32[N,8,6,6] = conv(%x, %w)
    %add: f32[N,8,6,6] = add(%conv, %t)          # %t: f32[8,1,1]

After::

    %conv_1: f32[N,8,6,6] = conv(%x, %w, %conv_bias)

``c - y`` folds too (scale -1, shift c).

Before (scale folding)::

    %dense: f32[N,10] = dense(%x, %w, %b)
    %mul: f32[N,10] = mul(%dense, %s)            # %s: f32[10]

After::

    %dense_1: f32[N,10] = dense(%x, %w_1, %dense_bias)

The pass also carries fold_batchnorm's rules, so chains in any order
(conv -> mul -> batch_norm -> add) fold completely in one fixed point.

Not folded: the constant varies along another axis than the channels (or
would widen the output), the producer's output has another reader, the
producer carries a fused activation, its weights are not constant, a divisor
has a zero, or the constant is divided by the output (``c / y`` is not affine).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kcc.ir import Graph
from kcc.passes._batchnorm_rules import batchnorm_rules
from kcc.passes._match import CHANNEL_PRODUCERS, foldable_producer, folded_weights, per_channel
from kcc.pattern import RewriteRule, apply_rules
from kcc.passes.base import Pass, register_pass

# Elementwise op with the constant on the right (``rsub``: c - y) -> (scale, shift) of the
# per-channel vector c.
_AFFINE: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "add": lambda c: (np.ones_like(c), c),
    "sub": lambda c: (np.ones_like(c), -c),
    "rsub": lambda c: (-np.ones_like(c), c),  # c - y
    "mul": lambda c: (c, np.zeros_like(c)),
    "div": lambda c: (1.0 / c, np.zeros_like(c)),
}


def _check(graph, x, w, c, prod, root, b=None):
    reason = foldable_producer(prod, w, b)
    if reason:
        return reason
    vec = per_channel(c, prod.outputs[0].type)
    if vec is None:
        return f"{c.name} {c.type} is not a constant per channel of {prod.outputs[0].type}"
    if root.outputs[0].type != prod.outputs[0].type:
        return "the constant widens the output"
    if root.op == "div" and np.any(vec == 0):
        return "division by a zero channel constant"
    return None


def _kind(root, c) -> str:
    return "rsub" if root.op == "sub" and root.inputs[0] is c else root.op


def _rewrite(op, x, w, c, prod, root, b=None):
    scale, shift = _AFFINE[_kind(root, c)](per_channel(c, prod.outputs[0].type))
    w2, b2 = folded_weights(prod, w, b, scale, shift)
    return getattr(op, prod.op)(x, op.const(w2, name=w.name), op.const(b2, name=f"{prod.name}_bias"),
                                **prod.attrs)


def _make_rule(prod_op: str, affine: str, with_bias: bool) -> RewriteRule:
    def apply(op, y, c):
        return op.sub(c, y, _capture="root") if affine == "rsub" else getattr(op, affine)(y, c, _capture="root")

    if with_bias:
        def pattern(op, x, w, b, c):
            return apply(op, getattr(op, prod_op)(x, w, b, _capture="prod"), c)
    else:
        def pattern(op, x, w, c):
            return apply(op, getattr(op, prod_op)(x, w, None, _capture="prod"), c)

    return RewriteRule(f"{affine}_into_{prod_op}{'' if with_bias else '_nobias'}", pattern, _rewrite, _check)


def rules() -> list[RewriteRule]:
    from kcc.ops.registry import all_ops

    ops = all_ops()
    return [_make_rule(p, a, wb) for p in CHANNEL_PRODUCERS if p in ops for a in _AFFINE for wb in (True, False)]


@register_pass
@dataclass
class FoldChannelAffine(Pass):
    name = "fold_channel_affine"
    after = ("fold_identity", "fold_batchnorm", "fuse_normalization", "fuse_gelu", "fuse_silu")

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, rules() + batchnorm_rules())
