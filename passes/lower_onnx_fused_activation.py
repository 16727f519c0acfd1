"""lower_onnx_fused_activation: a conv/dense's fused ``activation`` -> its own node after it.

ONNX's Conv and Gemm carry no activation, so the emitter maps a conv/dense
with ``activation="linear"`` only. The standard pipeline gives fuse_activation
an empty table for ONNX, so fused forms reach this pass only from a graph built
with one (an IR file, another pipeline); this makes the emitter's one-to-one
rule hold for every graph.

Before::

    %y: f32[N,8,5,7] = conv(%x, %w, %b) {activation=relu}

After::

    %conv: f32[N,8,5,7] = conv(%x, %w, %b)
    %y: f32[N,8,5,7] = relu(%conv)

Not rewritten: ``activation="linear"`` (no activation to split off).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kcc.passes._onnx_lowering import OnnxLoweringPass, optional_inputs
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def _check(graph, root, **_):
    if root.attrs["activation"] == "linear":
        return f"{root.op} {root.name} has no fused activation"
    return None


def _rewrite(op, root, **_):
    y = getattr(op, root.op)(*root.inputs, **{**root.attrs, "activation": "linear"})
    return getattr(op, root.attrs["activation"])(y)


def _rule(producer: str, with_bias: bool) -> RewriteRule:
    if with_bias:
        def pattern(op, x, w, b):
            return getattr(op, producer)(x, w, b, _capture="root")
    else:
        def pattern(op, x, w):
            return getattr(op, producer)(x, w, None, _capture="root")
    return RewriteRule(f"{producer}_{'bias' if with_bias else 'nobias'}", pattern, _rewrite, _check)


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    return [_rule(p, bias) for p in ("conv", "dense") for (bias,) in optional_inputs(1)]


@register_pass
@dataclass
class LowerOnnxFusedActivation(OnnxLoweringPass):
    name = "lower_onnx_fused_activation"
    after = ("fuse_activation", "lower_onnx_dense")
    rules_for = staticmethod(_rules)
