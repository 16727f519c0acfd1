"""Keras emitter for ``attention``: one ``keras.ops.dot_product_attention`` call.

The IR's attention is (batch, heads, sequence, dim) with an additive float bias
broadcasting to (batch, heads, T, S) and grouped key/value heads
(kcc/ops/attention.py); Keras's op takes (batch, sequence, heads, dim), the
same bias shape, ``scale`` and grouped heads (key/value heads dividing the
query heads). So q, k, v are asked for in permutation (0, 2, 1, 3) (context.py
inserts a Permute where a tensor is held otherwise) and the result is held in
it.
"""
from __future__ import annotations

from kcc.backends.keras.context import KerasContext, keras_emitter
from kcc.ir import Node

HEADS_LAST = (0, 2, 1, 3)  # IR (B, H, T, d) -> Keras (B, T, H, d)


@keras_emitter("attention")
def _attention(ctx: KerasContext, node: Node) -> None:
    q, k, v = node.inputs[:3]
    bias = node.inputs[3] if len(node.inputs) > 3 else None
    y = node.output
    tq, tk, tv = (ctx.get(t, HEADS_LAST) for t in (q, k, v))
    tb = None if bias is None else ctx.get(bias, tuple(range(4)), rank=4)
    out = ctx.ops.dot_product_attention(tq, tk, tv, bias=tb, scale=node.attrs["scale"])
    ctx.put(y, out, HEADS_LAST)
