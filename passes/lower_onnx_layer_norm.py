"""lower_onnx_layer_norm: a layer_norm ONNX LayerNormalization cannot express -> mean/variance ops.

ONNX LayerNormalization (opset 17) normalizes the axes from ``axis`` to the
last one; its Scale is a weight of static shape. A layer_norm over other axes
(e.g. the channels axis 1 of a channels-first image), with a computed scale, or
with a symbolic normalized dim becomes the formula written in IR ops::

    y = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + epsilon) * scale + bias

Before::

    %y: f32[N,4,3,5] = layer_norm(%x, %scale, %bias) {axes=(1,), epsilon=0.001}

After::

    %mean = reduce_mean(%x) {axes=(1,), keepdims=True}
    %d = sub(%x, %mean)
    %sq = mul(%d, %d)
    %var = reduce_mean(%sq) {axes=(1,), keepdims=True}
    %ve = add(%var, %eps)
    %sd = sqrt(%ve)
    %n = div(%d, %sd)
    %s = mul(%n, %scale_b)         // scale reshaped to (1, 4, 1, 1)
    %y = add(%s, %bias_b)

Not rewritten: suffix axes with static sizes and a constant (or absent) scale:
that is ONNX LayerNormalization, one to one. A Keras LayerNormalization on a
sequence arrives that way: sink_transposes holds the sequence in Keras order,
so its feature axis is the last one.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kcc.passes._onnx_lowering import OnnxLoweringPass, optional_inputs
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def _axes(x, root) -> tuple[int, ...]:
    return tuple(sorted(a % x.rank for a in root.attrs["axes"]))


def native_layer_norm(x, scale, root) -> str | None:
    """Why ONNX LayerNormalization expresses this layer_norm as it is; None when it cannot."""
    axes = _axes(x, root)
    if axes != tuple(range(x.rank - len(axes), x.rank)):
        return None
    if scale is not None and not scale.is_const:
        return None
    if not all(isinstance(x.shape[a], int) for a in axes):
        return None
    return f"axes {axes} are the trailing axes with static sizes: ONNX LayerNormalization"


def _check(graph, x, root, scale=None, bias=None):
    return native_layer_norm(x, scale, root)


def _param(op, p, axes, rank):
    """``p`` (the normalized dims' shape) reshaped to broadcast against x."""
    shape = [1] * rank
    for a, dim in zip(axes, p.shape):
        shape[a] = dim
    if p.is_const:
        return op.const(p.const.reshape(shape), name=f"{p.name}_b")
    return op.reshape(p, shape=tuple(shape))


def _rewrite(op, x, root, scale=None, bias=None):
    axes = _axes(x, root)
    mean = op.reduce_mean(x, axes=axes, keepdims=True)
    d = op.sub(x, mean)
    var = op.reduce_mean(op.mul(d, d), axes=axes, keepdims=True)
    y = op.div(d, op.sqrt(op.add(var, op.scalar(root.attrs["epsilon"], x))))
    if scale is not None:
        y = op.mul(y, _param(op, scale, axes, x.rank))
    if bias is not None:
        y = op.add(y, _param(op, bias, axes, x.rank))
    return y


def _rule(has_scale: bool, has_bias: bool) -> RewriteRule:
    # A pattern names an absent optional input None; one rule per combination.
    if has_scale and has_bias:
        def pattern(op, x, scale, bias):
            return op.layer_norm(x, scale, bias, _capture="root")
    elif has_scale:
        def pattern(op, x, scale):
            return op.layer_norm(x, scale, None, _capture="root")
    elif has_bias:
        def pattern(op, x, bias):
            return op.layer_norm(x, None, bias, _capture="root")
    else:
        def pattern(op, x):
            return op.layer_norm(x, None, None, _capture="root")
    name = "layer_norm" + ("_scale" if has_scale else "") + ("_bias" if has_bias else "")
    return RewriteRule(name, pattern, _rewrite, _check)


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    return [_rule(s, b) for s, b in optional_inputs(2)]


@register_pass
@dataclass
class LowerOnnxLayerNorm(OnnxLoweringPass):
    name = "lower_onnx_layer_norm"
    after = ("fuse_normalization",)
    rules_for = staticmethod(_rules)
