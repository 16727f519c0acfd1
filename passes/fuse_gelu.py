"""fuse_gelu: the written-out GELU -> ``gelu(x)`` (erf form) or ``gelu(x, approximate=True)`` (tanh form).

Exact form, 0.5 * x * (1 + erf(x / sqrt(2))), in the spellings traced bodies
produce: the erf argument as ``x / 1.41421..`` or ``x * 0.70710..``; the
product of 0.5, x and (1 + erf) in any association (``(x*0.5)*p``,
``(x*p)*0.5``, ``x*(p*0.5)``, ``(x*p)/2``, ``(x/2)*p``, ``x*(p/2)``) and
``x * (0.5 + 0.5*erf(..))``; and tf.nn.gelu's ``0.5 * x * erfc(-x / sqrt(2))``
with erfc lowered as ``1 - erf(..)``. Tanh form, 0.5 * x * (1 + tanh(sqrt(2/pi) *
(x + 0.044715 * x**3))), with the same products and x**3 as ``square(x) * x``
or ``pow(x, 3)`` (run fuse_square first: ``x*x*x`` becomes ``square(x)*x``),
the inner sum also as ``x * (1 + 0.044715 * x**2)`` or with sqrt(2/pi)
distributed. Constants must equal the exact ones to float32 rounding: a
truncated 0.7071 is another function and is left alone.

Before::

    %mul: f32[N,10] = mul(%x, %inv_sqrt2)
    %erf: f32[N,10] = erf(%mul)
    %add: f32[N,10] = add(%erf, %one)
    %mul_1: f32[N,10] = mul(%x, %half)
    %mul_2: f32[N,10] = mul(%mul_1, %add)

After::

    %gelu: f32[N,10] = gelu(%x)

IR ``gelu(x, approximate)``: exactly the formulas above. Targets: ONNX Gelu
(opset >= 20, approximate="none"/"tanh"), else the decomposed formula;
Core ML gelu layer (mode EXACT / TANH_APPROXIMATION).

Not fused: x in the erf differs from the x multiplied, a constant differs
(0.5, sqrt(2), 0.044715, sqrt(2/pi)), an intermediate is read elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from kcc.ops.activation import GELU_TANH_COEFF
from kcc.passes._match import on_x, same_type
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass

SQRT2 = math.sqrt(2.0)
K = math.sqrt(2.0 / math.pi)
C = GELU_TANH_COEFF


def _erf_args(op, x):
    return {"div_sqrt2": op.div(x, SQRT2), "mul_rsqrt2": op.mul(x, 1.0 / SQRT2)}


def _neg_erf_args(op, x):
    """-x / sqrt(2) spelled out: erfc(-x / sqrt2) = 1 - erf(-x / sqrt2) is tf.nn.gelu's form."""
    return {"neg_mul": op.mul(op.neg(x), 1.0 / SQRT2), "neg_div": op.div(op.neg(x), SQRT2),
            "mul_neg": op.mul(x, -1.0 / SQRT2), "neg_of_mul": op.neg(op.mul(x, 1.0 / SQRT2))}


def _cubes(op, x):
    return {"sq_x": op.mul(op.square(x), x), "pow3": op.pow(x, 3.0)}


def _tanh_args(op, x):
    out = {}
    for cname, cube in _cubes(op, x).items():
        out[f"k_x_plus_c_{cname}"] = op.mul(op.add(x, op.mul(cube, C)), K)
        out[f"kx_plus_kc_{cname}"] = op.add(op.mul(x, K), op.mul(cube, K * C))
    out["k_x_1p_c_sq"] = op.mul(op.mul(x, op.add(op.mul(op.square(x), C), 1.0)), K)
    return out


# How 0.5, x and p = (1 + t) multiply: name -> pattern(op, x, p); the outermost op is the root.
_PRODUCTS: dict[str, Callable] = {
    "x_half_p": lambda op, x, p: op.mul(op.mul(x, 0.5), p, _capture="root"),
    "x_p_half": lambda op, x, p: op.mul(op.mul(x, p), 0.5, _capture="root"),
    "x_phalf": lambda op, x, p: op.mul(x, op.mul(p, 0.5), _capture="root"),
    "xp_div2": lambda op, x, p: op.div(op.mul(x, p), 2.0, _capture="root"),
    "xdiv2_p": lambda op, x, p: op.mul(op.div(x, 2.0), p, _capture="root"),
    "x_pdiv2": lambda op, x, p: op.mul(x, op.div(p, 2.0), _capture="root"),
}


def _half_plus_half(op, x, t):
    """x * (0.5 + 0.5 * t)."""
    return op.mul(x, op.add(op.mul(t, 0.5), 0.5), _capture="root")


def _check(graph, x, root):
    return same_type(root, x)


def _factors(op, x) -> dict[str, tuple[object, object]]:
    """name -> (p = 1 + t, t) for every spelling of the erf and tanh factors, and whether approximate."""
    out = {}
    for a, arg in _erf_args(op, x).items():
        t = op.erf(arg)
        out[f"erf_{a}"] = (op.add(t, 1.0), t)
    for a, arg in _neg_erf_args(op, x).items():
        out[f"erfc_{a}"] = (op.sub(1.0, op.erf(arg)), None)
    for a, arg in _tanh_args(op, x).items():
        t = op.tanh(arg)
        out[f"tanh_{a}"] = (op.add(t, 1.0), t)
    return out


def _rules() -> list[RewriteRule]:
    from kcc.pattern import PatternBuilder

    rules = []
    for fname, (_, t) in _factors(PatternBuilder(), None).items():
        rewrite = (lambda op, x, root: op.gelu(x, approximate=True)) if fname.startswith("tanh") else \
            (lambda op, x, root: op.gelu(x))
        for pname, product in _PRODUCTS.items():
            def build(op, x, product=product, fname=fname):
                return product(op, x, _factors(op, x)[fname][0])
            rules.append(RewriteRule(f"gelu_{fname}_{pname}", on_x(build), rewrite, _check))
        if t is not None:
            def build(op, x, fname=fname):
                return _half_plus_half(op, x, _factors(op, x)[fname][1])
            rules.append(RewriteRule(f"gelu_{fname}_x_half_plus_half_t", on_x(build), rewrite, _check))
    return rules


RULES = _rules()


@register_pass
@dataclass
class FuseGelu(RewritePass):
    name = "fuse_gelu"
    after = ("fold_identity", "fuse_square")
    rules = RULES
