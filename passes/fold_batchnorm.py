"""fold_batchnorm: fold an inference BatchNorm into the conv, dense or conv_transpose before it.

With s = scale / sqrt(var + eps) per output channel:
w' = w * s (on the output-channel axis), b' = (b - mean) * s + bias.
Depthwise convolutions are ``conv`` with ``group`` = channels and fold the same
way; ``conv_transpose`` weights are (C, O/group, *K) and scale along their
output-channel axis within each group (see passes/_match.py).

Before::

    %conv: f32[N,32,26,26] = conv(%x, %w, %b)
    %bn: f32[N,32,26,26] = batch_norm(%conv, %gamma, %beta, %mean, %var) {epsilon=0.001}

After::

    %conv_1: f32[N,32,26,26] = conv(%x, %w_1, %conv_bias)

Not folded (the batch_norm stays, for the target's own BatchNormalization):
the producer has a fused activation (the norm would apply after it), its
weights or the norm's parameters are not constant, the producer's output has
another reader, or there is no such producer (a batch_norm on an input, after
a pooling, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.ir import Graph
from kcc.passes._match import CHANNEL_PRODUCERS, foldable_producer, folded_weights
from kcc.pattern import RewriteRule, apply_rules
from kcc.pipeline import Pass, register_pass


def _check(graph, x, w, scale, bias, mean, var, prod, bn, b=None):
    reason = foldable_producer(prod, w, b)
    if reason:
        return reason
    if not all(v.is_const for v in (scale, bias, mean, var)):
        return "the norm's parameters are not constant"
    return None


def _rewrite(op, x, w, scale, bias, mean, var, prod, bn, b=None):
    s = scale.const.astype(np.float64) / np.sqrt(var.const.astype(np.float64) + bn.attrs["epsilon"])
    shift = bias.const.astype(np.float64) - mean.const.astype(np.float64) * s
    w2, b2 = folded_weights(prod, w, b, s, shift)
    return getattr(op, prod.op)(x, op.const(w2, name=w.name), op.const(b2, name=f"{prod.name}_bias"),
                                **prod.attrs)


def _make_rule(op_name: str, with_bias: bool) -> RewriteRule:
    if with_bias:
        def pattern(op, x, w, b, scale, bias, mean, var):
            return op.batch_norm(getattr(op, op_name)(x, w, b, _capture="prod"), scale, bias, mean, var,
                                 _capture="bn")
    else:
        def pattern(op, x, w, scale, bias, mean, var):
            return op.batch_norm(getattr(op, op_name)(x, w, None, _capture="prod"), scale, bias, mean, var,
                                 _capture="bn")

    return RewriteRule(f"batchnorm_into_{op_name}{'' if with_bias else '_nobias'}", pattern, _rewrite, _check)


def rules() -> list[RewriteRule]:
    """One rule per channel producer, with and without a bias (built when the pass runs,
    so producers whose op modules register later are included)."""
    from kcc.ops.registry import all_ops

    ops = all_ops()
    return [_make_rule(o, wb) for o in CHANNEL_PRODUCERS if o in ops for wb in (True, False)]


@register_pass
@dataclass
class FoldBatchNorm(Pass):
    name = "fold_batchnorm"
    after = ("fold_identity",)

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, rules())
