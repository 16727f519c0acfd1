"""fold_batchnorm: fold an inference BatchNorm into the conv or dense before it.

With s = scale / sqrt(var + eps) per output channel:
w' = w * s (on the output-channel axis), b' = (b - mean) * s + bias.

Before::

    %conv: f32[N,32,26,26] = conv(%x, %w, %b)
    %bn: f32[N,32,26,26] = batch_norm(%conv, %gamma, %beta, %mean, %var) {epsilon=0.001}

After::

    %conv: f32[N,32,26,26] = conv(%x, %w', %b')

Not folded: the producer has a fused activation (the norm would apply after
it), its weights or the norm's parameters are not constant, or the producer's
output has another reader.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.ir import Graph
from kcc.pattern import RewriteRule, apply_rules
from kcc.pipeline import Pass, register_pass


def _check(graph, x, w, scale, bias, mean, var, prod, b=None, bn=None):
    if prod.attrs.get("activation", "linear") != "linear":
        return "the producer has a fused activation"
    consts = [w, scale, bias, mean, var] + ([b] if b is not None else [])
    if not all(v.is_const for v in consts):
        return "weights or norm parameters are not constant"
    return None


def _folded(prod, w, b, scale, bias, mean, var, eps):
    s = scale.const.astype(np.float64) / np.sqrt(var.const.astype(np.float64) + eps)
    if prod.op == "conv":  # w: (O, C/g, *K)
        w2 = w.const * s.reshape((-1,) + (1,) * (w.const.ndim - 1))
    else:  # dense, w: (in, out)
        w2 = w.const * s.reshape(1, -1)
    b0 = b.const.astype(np.float64) if b is not None else 0.0
    b2 = (b0 - mean.const) * s + bias.const
    return w2.astype(w.const.dtype), b2.astype(w.const.dtype)


def _make_rule(op_name: str, with_bias: bool) -> RewriteRule:
    def pattern(op, x, w, b, scale, bias, mean, var):
        producer = getattr(op, op_name)(x, w, b if with_bias else None, _capture="prod")
        return op.batch_norm(producer, scale, bias, mean, var, _capture="bn")

    def rewrite(op, x, w, scale, bias, mean, var, prod, bn, b=None):
        w2, b2 = _folded(prod, w, b, scale, bias, mean, var, bn.attrs["epsilon"])
        attrs = dict(prod.attrs)
        return getattr(op, op_name)(x, op.const(w2, name=w.name), op.const(b2, name=f"{prod.name}_bias"), **attrs)

    if not with_bias:
        # Drop the unused variable from the signatures.
        def pattern(op, x, w, scale, bias, mean, var):  # noqa: F811
            return op.batch_norm(getattr(op, op_name)(x, w, None, _capture="prod"), scale, bias, mean, var,
                                 _capture="bn")

    return RewriteRule(f"batchnorm_into_{op_name}{'' if with_bias else '_nobias'}", pattern, rewrite, _check)


RULES = [_make_rule(o, wb) for o in ("conv", "dense") for wb in (True, False)]


@register_pass
@dataclass
class FoldBatchNorm(Pass):
    name = "fold_batchnorm"
    after = ("fold_identity",)

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, RULES)
