"""lower_onnx_elementwise: elementwise IR ops with no ONNX op at the target opset -> ops that have one.

Each rule's check reads the shared ONNX table (kcc.formats.onnx_ops): an op
whose row exists from an opset at or below the target's is left alone
("ONNX opset 20 has Gelu (from opset 20)"); an op with no row always lowers.

silu (ONNX has no Swish up to opset 21)::

    %y: f32[N,10] = silu(%x)
  ->
    %s: f32[N,10] = sigmoid(%x)
    %y: f32[N,10] = mul(%x, %s)

gelu below opset 20 (``approximate=False``: the erf form; ``True``: the tanh form)::

    %y: f32[N,10] = gelu(%x) {approximate=False}
  ->
    %d = div(%x, %sqrt2); %e = erf(%d); %p = add(%e, %one); %m = mul(%x, %p); %y = mul(%m, %half)

    %y: f32[N,10] = gelu(%x) {approximate=True}
  ->
    (1 + tanh((x * 0.044715 * x + 1) * (x * sqrt(2/pi)))) * (x * 0.5)     (mul/add/tanh nodes)

  The erf form is the spelling onnxruntime's GeluFusion fuses and the tanh form the
  one its FastGeluFusion fuses, so both run as one kernel under default options.

mish below opset 18: ``mish(x)`` -> ``mul(x, tanh(softplus(x)))``.

scaled_tanh (no ONNX op): ``scaled_tanh(x) {alpha, beta}`` -> ``mul(tanh(mul(x, beta)), alpha)``.

rsqrt (no ONNX op): ``rsqrt(x)`` -> ``reciprocal(sqrt(x))``.

square (no ONNX op): ``square(x)`` -> ``mul(x, x)``.

The constants come from the ops' declarations (kcc.ops.activation). This runs
after the fuse_* passes, which would otherwise fold the expansions back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from kcc.ops.activation import GELU_TANH_COEFF
from kcc.passes._match import on_x
from kcc.passes._onnx_lowering import OnnxLoweringPass, native_reason
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def _silu(op, x, root):
    return op.mul(x, op.sigmoid(x))


def _gelu_erf(op, x, root):
    t = op.erf(op.div(x, op.scalar(math.sqrt(2.0), x)))
    return op.mul(op.mul(x, op.add(t, op.scalar(1.0, x))), op.scalar(0.5, x))


def _gelu_tanh(op, x, root):
    # The spelling onnxruntime's FastGeluFusion recognizes (its first formula), so
    # under default session options the eight nodes run as one FastGelu kernel.
    poly = op.add(op.mul(op.mul(x, op.scalar(GELU_TANH_COEFF, x)), x), op.scalar(1.0, x))
    t = op.tanh(op.mul(poly, op.mul(x, op.scalar(math.sqrt(2.0 / math.pi), x))))
    return op.mul(op.add(t, op.scalar(1.0, x)), op.mul(x, op.scalar(0.5, x)))


def _mish(op, x, root):
    return op.mul(x, op.tanh(op.softplus(x)))


def _scaled_tanh(op, x, root):
    t = op.tanh(op.mul(x, op.scalar(root.attrs["beta"], x)))
    return op.mul(t, op.scalar(root.attrs["alpha"], x))


def _rsqrt(op, x, root):
    return op.reciprocal(op.sqrt(x))


def _square(op, x, root):
    return op.mul(x, x)


# rule name -> (IR op, pattern attributes, rewrite)
_LOWERINGS = {
    "silu": ("silu", {}, _silu),
    "gelu_erf": ("gelu", {"approximate": False}, _gelu_erf),
    "gelu_tanh": ("gelu", {"approximate": True}, _gelu_tanh),
    "mish": ("mish", {}, _mish),
    "scaled_tanh": ("scaled_tanh", {}, _scaled_tanh),
    "rsqrt": ("rsqrt", {}, _rsqrt),
    "square": ("square", {}, _square),
}


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    rules = []
    for rule_name, (ir_op, attrs, rewrite) in _LOWERINGS.items():
        def pattern(op, x, ir_op=ir_op, attrs=attrs):
            return getattr(op, ir_op)(x, _capture="root", **attrs)

        def check(graph, x, root, ir_op=ir_op):
            return native_reason(ir_op, opset)

        rules.append(RewriteRule(rule_name, on_x(pattern), rewrite, check))
    return rules


@register_pass
@dataclass
class LowerOnnxElementwise(OnnxLoweringPass):
    name = "lower_onnx_elementwise"
    after = ("fuse_square", "fuse_silu", "fuse_mish", "fuse_gelu", "fuse_activation", "lower_onnx_fused_activation")
    rules_for = staticmethod(_rules)
