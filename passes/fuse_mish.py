"""fuse_mish: ``x * tanh(softplus(x))`` -> ``mish(x)``; a written-out softplus -> ``softplus``.

Spellings: ``softplus`` as the op or as ``log(exp(x) + 1)`` (``log1p`` is
not an IR op; a traced ``tf.math.log1p(exp(x))`` arrives as ``log(1 + exp(x))``).

Before::

    %softplus: f32[N,10] = softplus(%x)
    %tanh: f32[N,10] = tanh(%softplus)
    %mul: f32[N,10] = mul(%x, %tanh)

After::

    %mish: f32[N,10] = mish(%x)

IR ``mish(x)`` = x * tanh(log(1 + exp(x))). Targets: ONNX Mish (opset >= 18),
else Softplus + Tanh + Mul; Core ML softplus + tanh activations then multiply.

Not fused: x * tanh(softplus(y)) with y != x; an intermediate read elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._match import on_x, same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _check(graph, x, root):
    return same_type(root, x)


RULES = [
    RewriteRule("log_1p_exp", on_x(lambda op, x: op.log(op.add(op.exp(x), 1.0), _capture="root")),
                lambda op, x, root: op.softplus(x), _check),
    RewriteRule("x_tanh_softplus_x", on_x(lambda op, x: op.mul(x, op.tanh(op.softplus(x)), _capture="root")),
                lambda op, x, root: op.mish(x), _check),
]


@register_pass
@dataclass
class FuseMish(RewritePass):
    name = "fuse_mish"
    after = ("fold_identity",)
    rules = RULES
