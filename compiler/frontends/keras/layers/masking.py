"""Keras masks: kcc carries no mask, so a mask some layer would read is a conversion error.

Masking and ``Embedding(mask_zero=True)`` create a mask. Layers that support masking
pass it on; the layers in :data:`MASK_CONSUMERS` change their results with it. If
a consumer is reachable downstream (through any layers except those that drop the
mask), the conversion stops with an error naming both layers; otherwise the mask
has no effect on the outputs and the layer converts as an identity.
"""
from __future__ import annotations

from kcc.frontends.keras.registry import KerasLayerContext
from kcc.frontends.keras.spec import KerasModelSpec

MASK_CONSUMERS = frozenset({
    "SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "TimeDistributed", "GlobalAveragePooling1D", "GlobalAvgPool1D", "Attention", "AdditiveAttention",
    "MultiHeadAttention", "GroupQueryAttention", "Softmax", "Lambda",
})
# Layers that do not support masking: Keras drops the mask there.
MASK_DROPPERS = frozenset({
    "Flatten", "Reshape", "Conv1D", "Conv2D", "Conv3D", "GlobalMaxPooling1D", "GlobalMaxPool1D",
    "MaxPooling1D", "AveragePooling1D", "Dot",
})


def _consumers(spec: KerasModelSpec, name: str) -> list:
    return [layer for layer in spec.layers if any(r.layer == name for c in layer.calls for r in c.input_refs())]


def _reaches_consumer(stack: list[KerasModelSpec], level: int, name: str, seen: set) -> str | None:
    spec = stack[level]
    if name in {r.layer for r in spec.outputs} and level > 0:
        parent = stack[level - 1]
        holder = next((l for l in parent.layers if l.model is spec), None)
        if holder is not None:
            found = _reaches_consumer(stack, level - 1, holder.name, seen)
            if found:
                return found
    for layer in _consumers(spec, name):
        if (level, layer.name) in seen:
            continue
        seen.add((level, layer.name))
        if layer.class_name in MASK_CONSUMERS:
            return f"{layer.name!r} ({layer.class_name})"
        if layer.model is not None and any(l.class_name in MASK_CONSUMERS for l in layer.model.layers):
            return f"{layer.name!r} (a nested model holding a mask-consuming layer)"
        if layer.class_name in MASK_DROPPERS:
            continue
        found = _reaches_consumer(stack, level, layer.name, seen)
        if found:
            return found
    return None


def check_mask_unused(ctx: KerasLayerContext, what: str) -> None:
    """Raise a ConversionError when a layer downstream would read this layer's mask."""
    stack = ctx.spec_stack
    if not stack:
        return
    found = _reaches_consumer(stack, len(stack) - 1, ctx.layer.name, set())
    if found:
        raise ctx.fail(f"its mask ({what}) is read by layer {found}, which would give different results "
                       f"without it; kcc does not carry Keras masks. Remove the mask (e.g. mask_zero=False, "
                       f"drop Masking) or pad inputs so no step is masked.")
