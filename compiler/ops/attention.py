"""``attention``: scaled dot-product attention over heads, with grouped key/value heads.

    y = softmax(q @ k^T * scale + bias) @ v        (softmax over the keys)

q: (B, H, T, d), k: (B, Hkv, S, d), v: (B, Hkv, S, dv), bias: float, broadcasting
to (B, H, T, S); y: (B, H, T, dv). H must be a multiple of Hkv: key/value head j
serves the H/Hkv consecutive query heads j*H/Hkv .. (j+1)*H/Hkv - 1 (Keras's
``ops.repeat`` on the heads axis, ONNX Attention's grouping). A mask is an additive
bias: 0 where a key is seen, a large negative number where it is not (Keras's
``dot_product_attention`` writes -0.7 * float32 max; a fully masked row then
averages every value, as in Keras). A row whose every bias is -inf (an ONNX boolean
mask that hides every key) gives zeros, as ONNX Attention does; the decomposed
formula would give NaN there.

This is ONNX ``Attention`` (opset 23, its 4-D form, float ``attn_mask``).
Targets without it run ``passes/_attention_rules.py``'s decomposition.
"""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import broadcast
from kcc.tensor_type import TensorType


def _same(a, b) -> bool:
    return not (isinstance(a, int) and isinstance(b, int)) or a == b


@register_op
class Attention(OpDef):
    name = "attention"
    inputs = ("q", "k", "v", "bias?")
    attrs = {"scale": Attr("float")}

    def infer(self, attrs, q, k, v, bias):
        if q.rank != 4 or k.rank != 4 or v.rank != 4:
            raise IRError(f"attention takes rank-4 (batch, heads, sequence, dim) q, k, v; got {q.shape}, "
                          f"{k.shape}, {v.shape}")
        if not (_same(k.shape[1], v.shape[1]) and _same(k.shape[2], v.shape[2]) and _same(q.shape[3], k.shape[3])):
            raise IRError(f"attention: k {k.shape} and v {v.shape} must share heads and length, and q {q.shape} "
                          f"and k their last dim")
        h, hkv = q.shape[1], k.shape[1]
        if isinstance(h, int) and isinstance(hkv, int) and h % hkv:
            raise IRError(f"attention: {h} query heads are not a multiple of {hkv} key/value heads")
        batch = broadcast((q.shape[0],), (k.shape[0],))
        if bias is not None:
            if bias.rank > 4 or not bias.dtype.startswith("f"):
                raise IRError(f"attention bias must be a float tensor of rank <= 4, got {bias.dtype}{bias.shape}")
            broadcast(bias.shape, (batch[0], h, q.shape[2], k.shape[2]))
        return TensorType((batch[0], h, q.shape[2], v.shape[3]), q.dtype)

    def compute(self, attrs, q, k, v, bias):
        group = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        scores = np.matmul(q * np.float32(attrs["scale"]), np.swapaxes(k, -1, -2))
        if bias is not None:
            scores = scores + bias
        top = scores.max(axis=-1, keepdims=True)
        e = np.exp(scores - np.where(np.isfinite(top), top, 0))
        total = e.sum(axis=-1, keepdims=True)
        probs = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
        return np.matmul(probs, v).astype(q.dtype, copy=False)
