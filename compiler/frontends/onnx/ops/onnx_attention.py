"""ONNX Attention (opset 23), its 4-D form -> the IR ``attention`` op.

Inputs Q (B, H, T, d), K (B, Hkv, S, d), V (B, Hkv, S, dv) and an optional
``attn_mask``: a float mask is the additive bias as it is; a boolean mask keeps
True positions and becomes a bias of 0 / -inf (ONNX's meaning). ``is_causal``
adds the causal bias (query i sees keys j <= i, ONNX's upper-left alignment).
``scale`` defaults to 1/sqrt(d).

Refused, naming the node: the 3-D form (``q_num_heads``), a KV cache
(``past_key``/``past_value`` or the present/qk outputs read), ``softcap``, a
``qk_matmul_output_mode`` other than 0, and ``nonpad_kv_seqlen``.
"""
from __future__ import annotations

import math

import numpy as np

from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Value


def _causal_bias(ctx: OnnxNodeContext, q: Value, k: Value) -> Value:
    t, s = q.shape[2], k.shape[2]
    if not (isinstance(t, int) and isinstance(s, int)):
        raise ctx.fail(f"is_causal=1 needs static sequence lengths, got query {t!r} and key {s!r}")
    keep = np.arange(t)[:, None] >= np.arange(s)[None, :]
    return ctx.op.const(np.where(keep, 0.0, -np.inf).astype(np.float32)[None, None], name=f"{ctx.node.name}_causal")


@onnx_op("Attention")
def attention(ctx: OnnxNodeContext) -> Value:
    if any(ctx.has(i) for i in (4, 5, 6)) or any(o for o in ctx.node.output[1:]):
        raise ctx.fail("a KV cache (past_key/past_value, present or qk outputs) or nonpad_kv_seqlen is not "
                       "supported; export the model without a cache")
    if ctx.attr("q_num_heads") is not None or ctx.attr("kv_num_heads") is not None:
        raise ctx.fail("the 3-D form (q_num_heads/kv_num_heads) is not supported; give Q, K, V as "
                       "(batch, heads, sequence, dim)")
    if ctx.attr("softcap", 0.0) or ctx.attr("qk_matmul_output_mode", 0):
        raise ctx.fail("softcap and qk_matmul_output_mode are not supported")
    q, k, v = ctx.value(0), ctx.value(1), ctx.value(2)
    if q.rank != 4:
        raise ctx.fail(f"Q has rank {q.rank}; only the 4-D form is supported")
    bias = None
    if ctx.has(3):
        mask = ctx.value(3)
        if mask.dtype == "bool":
            zero = ctx.op.const(np.asarray(0.0, np.float32))
            bias = ctx.op.where(mask, zero, ctx.op.const(np.asarray(-np.inf, np.float32)))
        else:
            bias = mask
    if ctx.attr("is_causal", 0):
        causal = _causal_bias(ctx, q, k)
        bias = causal if bias is None else ctx.op.add(bias, causal)
    d = q.shape[3]
    scale = ctx.attr("scale")
    if scale is None:
        if not isinstance(d, int):
            raise ctx.fail(f"the head size {d!r} must be static when scale is not given")
        scale = 1.0 / math.sqrt(d)
    return ctx.op.attention(q, k, v, bias, scale=float(scale))
