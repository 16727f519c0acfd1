"""fuse_silu: ``x * sigmoid(x)`` -> ``silu(x)`` (swish), and a written-out sigmoid -> ``sigmoid``.

Spellings matched (either operand order of commutative ops):
``x * sigmoid(x)``, ``x / (1 + exp(-x))``; and ``1 / (1 + exp(-x))`` or
``reciprocal(1 + exp(-x))`` -> ``sigmoid(x)`` (which then feeds the first form).

Before::

    %sigmoid: f32[N,10] = sigmoid(%x)
    %mul: f32[N,10] = mul(%x, %sigmoid)

After::

    %silu: f32[N,10] = silu(%x)

IR ``silu(x)`` = x * sigmoid(x). Targets: ONNX Sigmoid + Mul (no Swish before
opset 24); Core ML: activation ``sigmoid`` then multiply (NeuralNetwork has
no swish activation).

Not fused: ``x * sigmoid(y)`` with y another value; the sigmoid also read
elsewhere (fusing would compute it twice); a constant that widens the shape.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._match import on_x, same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _check(graph, x, root):
    return same_type(root, x)


def _neg_x(op, x):
    return [op.neg(x), op.mul(x, -1.0)]


def _one_plus_exp_neg(op, x):
    return [op.add(op.exp(n), 1.0) for n in _neg_x(op, x)]


def _rules() -> list[RewriteRule]:
    silu = lambda op, x, root: op.silu(x)  # noqa: E731
    sigmoid = lambda op, x, root: op.sigmoid(x)  # noqa: E731
    out = [RewriteRule("x_sigmoid_x", on_x(lambda op, x: op.mul(x, op.sigmoid(x), _capture="root")), silu, _check)]
    for i in range(2):
        def den(op, x, i=i):
            return _one_plus_exp_neg(op, x)[i]
        out += [
            RewriteRule(f"x_over_1p_exp_neg_{i}", on_x(lambda op, x, d=den: op.div(x, d(op, x), _capture="root")),
                        silu, _check),
            RewriteRule(f"recip_1p_exp_neg_{i}", on_x(lambda op, x, d=den: op.reciprocal(d(op, x), _capture="root")),
                        sigmoid, _check),
            RewriteRule(f"one_over_1p_exp_neg_{i}", on_x(lambda op, x, d=den: op.div(1.0, d(op, x), _capture="root")),
                        sigmoid, _check),
        ]
    return out


RULES = _rules()


@register_pass
@dataclass
class FuseSilu(RewritePass):
    name = "fuse_silu"
    after = ("fold_identity",)
    rules = RULES
