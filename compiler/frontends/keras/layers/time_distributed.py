"""TimeDistributed: apply the wrapped layer's handler to every time step.

Keras ``(N, T, *S, C)`` is IR ``(N, C, T, *S)``. Layers that act on the last
Keras axis alone at any rank (Dense, Activation, Dropout, ...) read IR axis 1,
so their handler runs on the sequence as it is: no data moves. Any other layer
sees time folded into the batch::

    %a = transpose(%x) {perm=(0, 2, 1, ...)}    # (N, T, C, *S)
    %b = reshape(%a) {shape=(-1, C, *S)}        # (N*T, C, *S): the inner layer's IR input
    ... inner handler ...                       # (N*T, C', *S')
    %c = reshape(%o) {shape=(-1, T, C', *S')}   # (N, T, C', *S')
    %y = transpose(%c) {perm=(0, 2, 1, ...)}    # IR (N, C', T, *S')

Unfolding needs the sequence length (or the batch size) to be fixed.
The wrapped layer's weights are the wrapper's ``layer/...`` entries.
"""
from __future__ import annotations

from typing import Any

from kcc.frontends.keras.registry import KerasLayerContext, handler_for, keras_layer
from kcc.frontends.keras.spec import KerasLayer
from kcc.ir import Value

# Wrapped classes whose handler works on any rank along IR axis 1.
PER_POSITION = frozenset({"Dense", "Activation", "Dropout", "GaussianDropout", "GaussianNoise", "AlphaDropout",
                          "ReLU", "LeakyReLU", "ELU"})


def _swap_1_2(rank: int) -> tuple[int, ...]:
    return (0, 2, 1) + tuple(range(3, rank))


def inner_context(ctx: KerasLayerContext, key: str = "layer", prefix: str = "layer/") -> KerasLayerContext:
    """A context for the wrapped layer: its class, config and the wrapper's ``prefix`` weights."""
    inner = ctx.config[key]
    cfg = inner["config"]
    weights = {k[len(prefix):]: v for k, v in ctx.layer.weights.items() if k.startswith(prefix)}
    layer = KerasLayer(name=f"{ctx.name}/{cfg.get('name', inner['class_name'])}", class_name=inner["class_name"],
                       config=cfg, weights=weights, calls=ctx.layer.calls,
                       live=getattr(ctx.layer.live, key, None))
    return KerasLayerContext(ctx.graph, layer, ctx.call, ctx.call_index, f"{ctx.origin}/{cfg.get('name', '')}",
                        ctx.options, ctx.spec_stack)


@keras_layer("TimeDistributed")
def time_distributed(ctx: KerasLayerContext, x: Value, mask: Any = None) -> Value:
    if mask is not None:
        raise ctx.fail("masked sequences are not supported; remove the Masking layer / mask argument")
    if x.rank < 3:
        raise ctx.fail(f"needs a (batch, time, ...) input, got IR shape {x.shape}")
    inner = inner_context(ctx)
    handler = handler_for(inner.layer.class_name)
    if handler is None:
        raise ctx.fail(f"the wrapped layer's class {inner.layer.class_name!r} has no kcc handler")
    if inner.layer.class_name in PER_POSITION:
        return handler(inner, x)
    steps = x.shape[2]
    inner_shape = (x.shape[1],) + x.shape[3:]
    if not all(isinstance(d, int) for d in inner_shape):
        raise ctx.fail(f"the per-step shape {inner_shape} must be fixed to fold time into the batch")
    folded = ctx.op.reshape(ctx.op.transpose(x, perm=_swap_1_2(x.rank)), shape=(-1,) + inner_shape)
    out = handler(inner, folded)
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ctx.fail(f"the wrapped layer returns {len(out)} tensors; TimeDistributed needs one")
        out = out[0]
    out_shape = out.shape[1:]
    if not all(isinstance(d, int) for d in out_shape):
        raise ctx.fail(f"the wrapped layer's per-step output {out_shape} must be fixed to unfold time")
    if isinstance(steps, int):
        spec = (-1, steps) + out_shape
    elif isinstance(x.shape[0], int):
        spec = (x.shape[0], -1) + out_shape
    else:
        raise ctx.fail(f"wrapping {inner.layer.class_name} needs a fixed sequence length (or batch size) to "
                       f"unfold time from the batch; give one with input_name_shape_dict")
    unfolded = ctx.op.reshape(out, shape=spec)
    return ctx.op.transpose(unfolded, perm=_swap_1_2(unfolded.rank))
