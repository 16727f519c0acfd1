"""The rules of fold_batchnorm, also applied by fold_channel_affine (so neither pass imports the other).

One rule per channel producer (``CHANNEL_PRODUCERS``), with and without a bias:
``batch_norm(producer(x, w, b))`` -> ``producer(x, w * s, (b - mean) * s + bias)``
with ``s = scale / sqrt(var + eps)``; see passes/fold_batchnorm.py for the IR
before and after and the cases that are not folded.
"""
from __future__ import annotations

import numpy as np

from kcc.passes._match import CHANNEL_PRODUCERS, foldable_producer, folded_weights
from kcc.pattern import RewriteRule


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


def batchnorm_rules() -> list[RewriteRule]:
    """One rule per channel producer, with and without a bias (built when the pass runs,
    so producers whose op modules register later are included)."""
    from kcc.ops.registry import all_ops

    ops = all_ops()
    return [_make_rule(o, wb) for o in CHANNEL_PRODUCERS if o in ops for wb in (True, False)]
