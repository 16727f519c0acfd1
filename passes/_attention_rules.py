"""The attention formula in IR ops, shared by the lowering passes of targets without a fused op.

    y = softmax(matmul(q * scale, transpose(k)) + bias) @ v

with grouped key/value heads repeated to the query heads first (head j of k and
v serves query heads j*r .. j*r + r-1, r = H / Hkv). ``check`` decides when the
op stays whole (ONNX from opset 23).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from kcc.pattern import RewriteRule


def _repeat_heads(op, t, heads: int):
    """(B, Hkv, a, b) -> (B, heads, a, b), each head repeated heads/Hkv times in place."""
    r = heads // t.shape[1]
    tiled = op.tile(op.unsqueeze(t, axes=(2,)), repeats=(1, 1, r, 1, 1))
    a, b = t.shape[2], t.shape[3]
    return op.reshape(tiled, shape=(0, heads, -1, b) if isinstance(b, int) else (0, heads, a, -1))


def _rewrite(op, q, k, v, root, bias=None):
    heads = q.shape[1]
    k_t = op.transpose(k, perm=(0, 1, 3, 2))    # next to the frontend's transpose of k, which it merges with
    if k.shape[1] != heads:
        k_t, v = _repeat_heads(op, k_t, heads), _repeat_heads(op, v, heads)
    scaled = op.mul(q, op.const(np.asarray(root.attrs["scale"], dtype=np.float32)))
    scores = op.matmul(scaled, k_t)
    if bias is not None:
        scores = op.add(scores, bias)
    return op.matmul(op.softmax(scores, axis=3), v)


def attention_rules(check: Callable[..., str | None]) -> list[RewriteRule]:
    """Rules writing out attention (with and without a bias) where ``check`` returns None."""
    return [RewriteRule("attention_bias", lambda op, q, k, v, bias: op.attention(q, k, v, bias, _capture="root"),
                        _rewrite, check),
            RewriteRule("attention", lambda op, q, k, v: op.attention(q, k, v, None, _capture="root"),
                        lambda op, q, k, v, root: _rewrite(op, q, k, v, root), check)]
