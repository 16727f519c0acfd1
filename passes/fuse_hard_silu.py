"""fuse_hard_silu: ``x * relu6(x + 3) / 6`` and ``x * hard_sigmoid(x)`` -> ``hard_silu(x)`` (hard-swish).

Spellings (after fuse_clip, relu6 is ``clip(0, 6)`` and ``relu6(x + 3) / 6``
or ``clip(x / 6 + 0.5, 0, 1)`` is ``hard_sigmoid(x, alpha=1/6, beta=0.5)``):
``x * hard_sigmoid(x)`` with those parameters, ``(x * clip(x + 3, 0, 6)) / 6``
and ``(x * clip(x + 3, 0, 6)) * (1/6)``.

Before::

    %add: f32[N,10] = add(%x, %three)
    %clip: f32[N,10] = clip(%add) {min=0, max=6}
    %mul: f32[N,10] = mul(%x, %clip)
    %div: f32[N,10] = div(%mul, %six)

After::

    %hard_silu: f32[N,10] = hard_silu(%x)

IR ``hard_silu(x)`` = x * clip(x / 6 + 0.5, 0, 1). Targets: ONNX HardSwish;
Core ML activation sigmoidHard(alpha=1/6, beta=0.5) then multiply.

Not fused: a hard_sigmoid with other parameters (Keras 2's alpha=0.2), an
offset other than 3 or a divisor other than 6, x * hard_sigmoid(y) with y != x.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_BETA
from kcc.passes._match import close, on_x, same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _check(graph, x, root):
    return same_type(root, x)


def _check_hs(graph, x, root, hs):
    if not (close(hs.attrs["alpha"], HARD_SIGMOID_ALPHA) and close(hs.attrs["beta"], HARD_SIGMOID_BETA)):
        return f"hard_sigmoid(alpha={hs.attrs['alpha']:g}, beta={hs.attrs['beta']:g}) is not relu6(x + 3) / 6"
    return same_type(root, x)


def _relu6_x3(op, x):
    return op.clip(op.add(x, 3.0), min=0.0, max=6.0)


def _hard_silu(op, x, root, hs=None):
    return op.hard_silu(x)


RULES = [
    RewriteRule("x_hard_sigmoid_x", on_x(lambda op, x: op.mul(x, op.hard_sigmoid(x, _capture="hs"), _capture="root")),
                _hard_silu, _check_hs),
    RewriteRule("x_relu6_div6", on_x(lambda op, x: op.div(op.mul(x, _relu6_x3(op, x)), 6.0, _capture="root")),
                _hard_silu, _check),
    RewriteRule("x_relu6_mul6th", on_x(lambda op, x: op.mul(op.mul(x, _relu6_x3(op, x)), HARD_SIGMOID_ALPHA,
                                                            _capture="root")),
                _hard_silu, _check),
]


@register_pass
@dataclass
class FuseHardSilu(RewritePass):
    name = "fuse_hard_silu"
    after = ("fold_identity", "fuse_clip")
    rules = RULES
