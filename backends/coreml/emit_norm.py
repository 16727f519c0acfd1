"""Core ML emitter for layer normalization.

Over every non-batch axis, or over the spatial axes, the rank-5 layout has
``mvn`` plus a ``scale`` layer for the scale/bias (specification 1, which is
why the rank-5 layout is kept); the ND layout has one ``layerNormalization``
(kcc.formats.coreml_layers.NORMALIZATION_LAYERS) over trailing axes.
Normalized axes that are not trailing were moved last by
passes/lower_coreml_axes.py.
"""
from __future__ import annotations

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter, rank5_check
from kcc.backends.coreml.emit_math import scale_layer
from kcc.formats.coreml_layers import NORMALIZATION_LAYERS, NORMALIZATION_LAYERS_VERSION
from kcc.ir import Node
from kcc.ops.normalization import LayerNorm
from kcc.ops.shapes import norm_axes


def _params(node: Node, axes: tuple[int, ...], rank: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    scale, bias = node.inputs[1], node.inputs[2]
    if (scale is not None and not scale.is_const) or (bias is not None and not bias.is_const):
        return None, None
    s = LayerNorm.param_shape(axes, rank, scale.const) if scale is not None else None
    b = LayerNorm.param_shape(axes, rank, bias.const) if bias is not None else None
    return s, b


def _mvn_form(ctx: CoremlContext, node: Node) -> bool:
    """Whether the rank-5 ``mvn`` (+ ``scale``) form holds the node."""
    x = node.inputs[0]
    r = x.rank
    axes = norm_axes(node.attrs["axes"], r)
    scale, bias = _params(node, axes, r)
    has_params = node.inputs[1] is not None or node.inputs[2] is not None
    all_axes = axes == tuple(range(1, r))
    spatial = axes == tuple(range(2, r)) and r in (3, 4)
    return (r <= 4 and (all_axes or spatial) and (scale is not None or bias is not None or not has_params)
            and ctx.chw_reason(x) is None)


@rank5_check("layer_norm")
def _layer_norm_rank5(ctx: CoremlContext, node: Node) -> str | None:
    if _mvn_form(ctx, node):
        return None
    return f"layer normalization over axes {node.attrs['axes']} of {node.inputs[0].type}"


@coreml_emitter("layer_norm")
def _layer_norm(ctx: CoremlContext, node: Node) -> None:
    x = node.inputs[0]
    r = x.rank
    axes = norm_axes(node.attrs["axes"], r)
    eps = float(node.attrs["epsilon"])
    scale, bias = _params(node, axes, r)
    has_params = node.inputs[1] is not None or node.inputs[2] is not None
    all_axes = axes == tuple(range(1, r))
    if not ctx.nd:
        if not _mvn_form(ctx, node):
            ctx.need_nd(node, f"layer normalization over axes {axes} of {x.type}")
        normed = ctx.tmp("mvn") if has_params else ctx.out(node)
        _, p = ctx.layer("mvn", [ctx.name(x)], normed)
        p.acrossChannels = all_axes
        p.normalizeVariance = True
        p.epsilon = eps
        if has_params:
            if scale is None:
                scale_layer(ctx, normed, ctx.out(node), None, bias, x)
            else:
                scale_layer(ctx, normed, ctx.out(node), scale, bias, x)
        return
    ctx.need_nd(node, f"layer normalization over axes {axes} of {x.type}")
    if scale is None and has_params:
        raise ctx.fail(node, "layer normalization with computed scale/bias has no Core ML form")
    if axes != tuple(range(r - len(axes), r)):
        raise ctx.fail(node, f"layer normalization over axes {axes} (not the trailing ones) reaches the emitter: "
                             f"run the Core ML lowering (lower_coreml_axes) first")
    dims = ctx.dims(x)
    norm_shape = [dims[a] for a in axes]
    _, p = ctx.layer(NORMALIZATION_LAYERS["layer_norm"], [ctx.name(x)], ctx.out(node))
    p.normalizedShape.extend(norm_shape)
    p.eps = eps
    gamma = node.inputs[1].const if node.inputs[1] is not None else np.ones(norm_shape, np.float32)
    beta = node.inputs[2].const if node.inputs[2] is not None else np.zeros(norm_shape, np.float32)
    ctx.weights(p.gamma, gamma)
    ctx.weights(p.beta, beta)
    ctx.require(NORMALIZATION_LAYERS_VERSION, node, "the layerNormalization layer")


