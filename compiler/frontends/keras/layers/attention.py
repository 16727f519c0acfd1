"""MultiHeadAttention, GroupQueryAttention, Attention and AdditiveAttention, from config and weights.

No live Keras object is needed, so ``.keras`` and ``.h5`` files convert the same
way as in-memory models. The handler computes in Keras order (the session's
layout decision): the IR (channels-first) inputs are transposed to Keras order
with ``ctx.to_keras_layout``, the result goes back with ``ctx.from_keras_layout``,
and the layout pass cancels those round trips. For a ``(B, T, F)`` query::

    q = reshape(matmul(query, Wq) + bq, (0, 0, H, dk))       # EinsumDense "abc,cde->abde"
    bias = where(mask, 0, NEG)                                # (B, 1, T, S) or (1, 1, T, S)
    out = attention(transpose(q), transpose(k), transpose(v), bias)   # (B, H, T, dv)
    out = transpose(out) -> (B, T, H*dv) -> matmul(., Wo) + bo

The IR ``attention`` op (kcc.ops.attention) is ONNX Attention from opset 23; other
targets get its formula. Attention over several axes, and Keras's explicit path
below, are written out here as matmul/where/softmax/matmul instead.

Masks follow Keras exactly (``_compute_attention_mask``): the query's Keras mask
as ``(B, T, 1)``, the value's and key's as ``(B, 1, S)``, the causal mask
``(1, T, S)`` (row >= column, over Keras axis 1 of query and value), the sliding
window ``|row - column| < w`` and the ``attention_mask`` argument, all ANDed.
Masked scores are *replaced* (not offset) before the softmax, and the value
depends on the path Keras takes:

* ``keras.ops.dot_product_attention`` (rank-3 inputs, no dropout, no returned
  scores): ``-0.7 * 3.38953e38``; a fully masked row averages every position;
* the explicit path (``return_attention_scores``, ``dropout > 0``, other ranks):
  ``Softmax(mask=...)``, ``-1e9`` then the masked probabilities set to 0, so a
  fully masked row gives zeros.

Dropout is the identity at inference. GroupQueryAttention repeats each key/value
head over its group of query heads (``ops.repeat`` on the heads axis) and takes the
same paths. Attention and AdditiveAttention (Luong and Bahdanau scores) subtract
1e9 from masked scores and zero the rows of masked queries, as Keras does.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value

# keras.layers.Softmax(mask=...) for float32 inputs (softmax.py _large_negative_number).
SOFTMAX_MASKED = -1e9
# keras.ops.dot_product_attention's masked logit for float32 (backend nn.py _get_large_negative).
DOT_PRODUCT_MASKED = -0.7 * 3.38953e38


# ------------------------------------------------------------------ projections
def _positive(ctx: KerasLayerContext, key: str, default: Any = None) -> int:
    """A positive int config field (``default`` when absent or None)."""
    value = ctx.get(key)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ctx.fail(f"{key}={value!r} must be a positive integer")
    return value


def _window(ctx: KerasLayerContext) -> int | None:
    return None if ctx.get("sliding_window") is None else _positive(ctx, "sliding_window")


def _bias(ctx: KerasLayerContext, key: str, size: int) -> Value | None:
    if not ctx.has_weight(key):
        return None
    b = ctx.weight(key)
    if b.size != size:
        raise ctx.fail(f"weight {key} has shape {b.shape}, expected {size} values")
    return ctx.const(b.reshape(-1), key.replace("/", "_"))


def _project(ctx: KerasLayerContext, x: Value, prefix: str, heads: int, dim: int) -> Value:
    """EinsumDense ``...c,cde->...de``: (B, ..., C) -> (B, ..., heads, dim), Keras order."""
    kernel = ctx.weight(f"{prefix}/kernel")
    features = x.shape[-1]
    if kernel.shape[1:] != (heads, dim) or (isinstance(features, int) and kernel.shape[0] != features):
        raise ctx.fail(f"weight {prefix}/kernel has shape {kernel.shape}, expected "
                       f"({features}, {heads}, {dim}) for its input of shape {x.shape}")
    y = ctx.op.matmul(x, ctx.const(kernel.reshape(kernel.shape[0], heads * dim), f"{prefix}_kernel"))
    bias = _bias(ctx, f"{prefix}/bias", heads * dim)
    if bias is not None:
        y = ctx.op.add(y, bias)
    return ctx.op.reshape(y, shape=(0,) * (x.rank - 1) + (heads, dim))


def _output_projection(ctx: KerasLayerContext, x: Value, out_shape: Sequence[int]) -> Value:
    """EinsumDense ``...hd,hdo->...o``: (B, ..., H, dv) -> (B, ..., *out_shape), Keras order."""
    kernel = ctx.weight("attention_output/kernel")
    heads, dim = x.shape[-2], x.shape[-1]
    if kernel.shape[:2] != (heads, dim) or tuple(kernel.shape[2:]) != tuple(out_shape):
        raise ctx.fail(f"weight attention_output/kernel has shape {kernel.shape}, expected "
                       f"({heads}, {dim}, {', '.join(map(str, out_shape))})")
    flat = ctx.op.reshape(x, shape=(0,) * (x.rank - 2) + (heads * dim,))
    size = int(np.prod(out_shape))
    y = ctx.op.matmul(flat, ctx.const(kernel.reshape(heads * dim, size), "attention_output_kernel"))
    bias = _bias(ctx, "attention_output/bias", size)
    if bias is not None:
        y = ctx.op.add(y, bias)
    if len(out_shape) != 1:
        y = ctx.op.reshape(y, shape=(0,) * (x.rank - 2) + tuple(int(d) for d in out_shape))
    return y


def _gate(ctx: KerasLayerContext, query: Value, out: Value, heads: int, dim: int) -> Value:
    """``use_gate``: the output before its projection times sigmoid(EinsumDense(query))."""
    return ctx.op.mul(out, ctx.op.sigmoid(_project(ctx, query, "gate", heads, dim)))


# ------------------------------------------------------------------------ masks
def _scalar(ctx: KerasLayerContext, x: float, dtype: type = np.float32) -> Value:
    """A rank-0 constant (``ctx.const`` would make it 1-D)."""
    return ctx.op.const(np.asarray(x, dtype=dtype))


def _as_bool(ctx: KerasLayerContext, m: Value) -> Value:
    return m if m.dtype == "bool" else ctx.op.cast(m, to="bool")


def _and(ctx: KerasLayerContext, a: Value | None, b: Value) -> Value:
    return b if a is None else ctx.op.logical_and(a, b)


def _positions(ctx: KerasLayerContext, x: Value, axis: int) -> Value:
    """0, 1, ..., len-1 along Keras axis ``axis`` of ``x``: a constant when the length is static."""
    n = x.shape[axis]
    if isinstance(n, int):
        return ctx.const(np.arange(n, dtype=np.int64), f"positions{n}")
    length = ctx.op.gather(ctx.op.shape(x), _scalar(ctx, axis, np.int64), axis=0)
    zero, one = _scalar(ctx, 0, np.int64), _scalar(ctx, 1, np.int64)
    return ctx.op.range(zero, length, one)


def _band_mask(ctx: KerasLayerContext, query: Value, value: Value, causal: bool,
               window: int | None) -> Value | None:
    """(1, T, S): row >= column (causal) and |row - column| < window, over Keras axis 1."""
    t, s = query.shape[1], value.shape[1]
    if isinstance(t, int) and isinstance(s, int):
        rows, cols = np.arange(t)[:, None], np.arange(s)[None, :]
        band = np.ones((t, s), dtype=bool)
        if causal:
            band &= rows >= cols
        if window is not None:
            band &= np.abs(rows - cols) < window
        return ctx.const(band[None], "causal_mask" if window is None else "band_mask")
    rows = ctx.op.unsqueeze(_positions(ctx, query, 1), axes=(1,))
    cols = ctx.op.unsqueeze(_positions(ctx, value, 1), axes=(0,))
    mask = ctx.op.greater_equal(rows, cols) if causal else None
    if window is not None:
        near = ctx.op.less(ctx.op.abs(ctx.op.sub(rows, cols)),
                           _scalar(ctx, window, np.int64))
        mask = _and(ctx, mask, near)
    return ctx.op.unsqueeze(mask, axes=(0,))


def attention_mask(ctx: KerasLayerContext, query: Value, value: Value, *, query_mask: Value | None,
                   value_mask: Value | None, key_mask: Value | None, explicit: Value | None,
                   causal: bool, window: int | None) -> Value | None:
    """Keras's ``_compute_attention_mask``; every operand and the result in Keras order."""
    auto = None
    if query_mask is not None:
        qm = _as_bool(ctx, query_mask)
        auto = ctx.op.unsqueeze(qm, axes=(qm.rank,))
    for m in (value_mask, key_mask):
        if m is not None:
            m = _as_bool(ctx, m)
            auto = _and(ctx, auto, ctx.op.unsqueeze(m, axes=(m.rank - 1,)))
    if causal or window is not None:
        auto = _and(ctx, auto, _band_mask(ctx, query, value, causal, window))
    if explicit is not None:
        explicit = _as_bool(ctx, explicit)
        return explicit if auto is None else ctx.op.logical_and(explicit, auto)
    return auto


# -------------------------------------------------------------------- attention
def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _static(ctx: KerasLayerContext, dims: Sequence[Any], what: str) -> tuple[int, ...]:
    if not all(isinstance(d, int) for d in dims):
        raise ctx.fail(f"attention over several axes needs their sizes at conversion time, but the {what} "
                       f"has sizes {tuple(dims)}; give the model input static sizes on those axes")
    return tuple(dims)


def attend(ctx: KerasLayerContext, q: Value, k: Value, v: Value, mask: Value | None, axes: Sequence[int],
           scale: float, explicit_path: bool) -> tuple[Value, Value]:
    """Dot-product attention of projected (B, ..., H, d) tensors over ``axes``; returns (output, scores).

    ``axes`` are axes of the projected rank-R tensors in ``1 .. R-3``; every other
    axis but the last (batch, non-attention axes, heads) is a batch axis. Scores
    have Keras's shape (batch axes..., query attention axes..., key attention axes...).
    """
    rank = q.rank
    axes = tuple(sorted(axes))
    if rank == 4 and axes == (1,) and not explicit_path:
        return _fused(ctx, q, k, v, mask, scale), None
    if k.shape[-2] != q.shape[-2]:
        # GroupQueryAttention, ops.repeat(x, r, axis=2): key/value head j serves query heads j*r .. j*r + r-1.
        heads, r = q.shape[-2], q.shape[-2] // k.shape[-2]
        k, v = (ctx.op.reshape(ctx.op.tile(ctx.op.unsqueeze(t, axes=(3,)), repeats=(1, 1, 1, r, 1)),
                               shape=(0, 0, heads, t.shape[-1])) for t in (k, v))
    batch = tuple(i for i in range(rank - 1) if i not in axes)
    nb, na = len(batch), len(axes)
    q_t = ctx.op.transpose(q, perm=batch + axes + (rank - 1,))
    k_t = ctx.op.transpose(k, perm=batch + (rank - 1,) + axes)
    v_t = ctx.op.transpose(v, perm=batch + axes + (rank - 1,))
    q_dims = k_dims = ()
    if na > 1:
        q_dims = _static(ctx, [q.shape[a] for a in axes], "query")
        k_dims = _static(ctx, [k.shape[a] for a in axes], "key")
        q_t = ctx.op.reshape(q_t, shape=(0,) * nb + (-1, q.shape[-1]))
        k_t = ctx.op.reshape(k_t, shape=(0,) * nb + (k.shape[-1], -1))
        v_t = ctx.op.reshape(v_t, shape=(0,) * nb + (-1, v.shape[-1]))
    q_t = ctx.op.mul(q_t, _scalar(ctx, scale))
    scores = ctx.op.matmul(q_t, k_t)                       # (batch..., Tq, Sk), flattened if na > 1
    if na > 1:
        scores = ctx.op.reshape(scores, shape=(0,) * nb + q_dims + k_dims)
    if mask is not None:
        mask = _expand_mask(ctx, mask, nb + 2 * na, na)
        fill = SOFTMAX_MASKED if explicit_path else DOT_PRODUCT_MASKED
        scores = ctx.op.where(mask, scores, _scalar(ctx, fill))
    if na > 1:
        flat = ctx.op.reshape(scores, shape=(0,) * (nb + na) + (-1,))
        probs = ctx.op.reshape(ctx.op.softmax(flat, axis=nb + na), shape=(0,) * (nb + na) + k_dims)
    else:
        probs = ctx.op.softmax(scores, axis=nb + 1)
    if mask is not None and explicit_path:
        probs = ctx.op.where(mask, probs, _scalar(ctx, 0.0))
    mixed = probs
    if na > 1:
        mixed = ctx.op.reshape(probs, shape=(0,) * nb + (int(np.prod(q_dims)), int(np.prod(k_dims))))
    out = ctx.op.matmul(mixed, v_t)                        # (batch..., Tq, dv)
    if na > 1:
        out = ctx.op.reshape(out, shape=(0,) * nb + q_dims + (v.shape[-1],))
    out = ctx.op.transpose(out, perm=_inverse(batch + axes + (rank - 1,)))
    return out, probs


def _fused(ctx: KerasLayerContext, q: Value, k: Value, v: Value, mask: Value | None, scale: float) -> Value:
    """The IR ``attention`` op on (B, T, H, d) tensors: Keras's ``dot_product_attention`` path.

    Its masked logit replaces the score; as an additive bias it gives the same
    float32 numbers (a score plus -0.7 * float32 max rounds to that number), so a
    fully masked row still averages every value.
    """
    to_heads = (0, 2, 1, 3)
    bias = None
    if mask is not None:
        bias = ctx.op.where(_expand_mask(ctx, mask, 4, 1), _scalar(ctx, 0.0), _scalar(ctx, DOT_PRODUCT_MASKED))
    out = ctx.op.attention(*(ctx.op.transpose(t, perm=to_heads) for t in (q, k, v)), bias, scale=scale)
    return ctx.op.transpose(out, perm=to_heads)


def _expand_mask(ctx: KerasLayerContext, mask: Value, rank: int, na: int) -> Value:
    """Keras's ``_masked_softmax``: insert axes at ``-2 * na - 1`` until the mask has the scores' rank."""
    extra = rank - mask.rank
    if extra < 0:
        raise ctx.fail(f"the attention mask has rank {mask.rank}, more than the attention scores' {rank}")
    if extra == 0:
        return mask
    at = mask.rank - 2 * na
    if at < 0:
        raise ctx.fail(f"the attention mask of shape {mask.shape} cannot be broadcast to the attention "
                       f"scores (rank {rank}); Keras would refuse it too")
    return ctx.op.unsqueeze(mask, axes=tuple(range(at, at + extra)))


# ---------------------------------------------------------------------- handlers
def _flag(ctx: KerasLayerContext, name: str) -> bool:
    value = ctx.call.kwargs.get(name, False)
    if not isinstance(value, bool):
        raise ctx.fail(f"call argument {name}={value!r} must be True or False (a constant)")
    return value


def _inputs(ctx: KerasLayerContext, query: Any, tensors: dict[str, Value]) -> tuple[Value, Value, Value]:
    """query, value and key (key defaults to value) in Keras order."""
    if isinstance(query, list):  # tf.keras files list every tensor input: [query, value, key]
        listed = dict(zip(("query", "value", "key"), query))
        tensors = {**listed, **tensors}
        query = tensors.pop("query", None)
    value = tensors.pop("value", None)
    if not isinstance(query, Value) or not isinstance(value, Value):
        raise ctx.fail("it must be called with a query and a value tensor")
    key = tensors.pop("key", None)
    key = value if key is None else key
    return ctx.to_keras_layout(query), ctx.to_keras_layout(value), ctx.to_keras_layout(key)


def _masks(ctx: KerasLayerContext, tensors: dict[str, Value]) -> dict[str, Value | None]:
    names = ("query_mask", "value_mask", "key_mask", "attention_mask")
    out = {n: tensors.pop(n, None) for n in names}
    if tensors:
        raise ctx.fail(f"call arguments {sorted(tensors)} are not supported")
    return {n: None if m is None else ctx.to_keras_layout(m) for n, m in out.items()}


def _finish(ctx: KerasLayerContext, out: Value, scores: Value) -> Value | tuple[Value, Value]:
    out = ctx.from_keras_layout(out)
    if _flag(ctx, "return_attention_scores"):
        return out, ctx.from_keras_layout(scores)
    return out


@keras_layer("MultiHeadAttention")
def multi_head_attention(ctx: KerasLayerContext, query: Any, **tensors: Value) -> Any:
    """keras.layers.MultiHeadAttention: every config option and call argument (see the module doc)."""
    q_in, v_in, k_in = _inputs(ctx, query, tensors)
    masks = _masks(ctx, tensors)
    heads, key_dim = _positive(ctx, "num_heads"), _positive(ctx, "key_dim")
    value_dim = _positive(ctx, "value_dim", key_dim)
    if len(v_in.shape) != len(k_in.shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(v_in.shape[1:-1], k_in.shape[1:-1])):
        raise ctx.fail(f"value {v_in.shape} and key {k_in.shape} must agree on every axis but the last")
    out_shape = ctx.get("output_shape") or [q_in.shape[-1]]
    out_shape = [out_shape] if isinstance(out_shape, int) else list(out_shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in out_shape):
        raise ctx.fail(f"output_shape={ctx.get('output_shape')!r} must be positive integers (the query's "
                       f"last axis must be static when output_shape is not given)")
    rank = q_in.rank + 1                                    # of the projected tensors
    axes = ctx.get("attention_axes")
    axes = tuple(range(1, rank - 2)) if axes is None else ([axes] if isinstance(axes, int) else axes)
    if not isinstance(axes, (list, tuple)) or not all(isinstance(a, int) for a in axes):
        raise ctx.fail(f"attention_axes={ctx.get('attention_axes')!r} must be an int or a list of ints")
    axes = tuple(sorted({a if a >= 0 else rank - 1 + a for a in axes}))
    if not axes or not all(1 <= a < rank - 2 for a in axes):
        raise ctx.fail(f"attention_axes={ctx.get('attention_axes')!r} must name axes between the batch "
                       f"axis and the last axis of its rank-{q_in.rank} inputs")
    q = _project(ctx, q_in, "query", heads, key_dim)
    k = _project(ctx, k_in, "key", heads, key_dim)
    v = _project(ctx, v_in, "value", heads, value_dim)
    explicit_path = (float(ctx.get("dropout", 0.0) or 0.0) > 0 or _flag(ctx, "return_attention_scores")
                     or rank != 4)
    mask = attention_mask(ctx, q_in, v_in, query_mask=masks["query_mask"], value_mask=masks["value_mask"],
                          key_mask=masks["key_mask"], explicit=masks["attention_mask"],
                          causal=_flag(ctx, "use_causal_mask"), window=_window(ctx))
    out, scores = attend(ctx, q, k, v, mask, axes, 1.0 / math.sqrt(float(key_dim)), explicit_path)
    if ctx.get("use_gate", False):
        out = _gate(ctx, q_in, out, heads, value_dim)
    return _finish(ctx, _output_projection(ctx, out, out_shape), scores)


@keras_layer("GroupQueryAttention", "GroupedQueryAttention")
def group_query_attention(ctx: KerasLayerContext, query: Any, **tensors: Value) -> Any:
    """keras.layers.GroupQueryAttention: key/value heads repeated to the query heads (ops.repeat)."""
    q_in, v_in, k_in = _inputs(ctx, query, tensors)
    masks = _masks(ctx, tensors)
    if q_in.rank != 3:
        raise ctx.fail(f"it takes rank-3 (batch, sequence, features) inputs, got a rank-{q_in.rank} query")
    head_dim = _positive(ctx, "head_dim")
    q_heads, kv_heads = _positive(ctx, "num_query_heads"), _positive(ctx, "num_key_value_heads")
    if q_heads % kv_heads:
        raise ctx.fail(f"num_query_heads={q_heads} is not a multiple of num_key_value_heads={kv_heads}")
    q = _project(ctx, q_in, "query", q_heads, head_dim)
    k = _project(ctx, k_in, "key", kv_heads, head_dim)
    v = _project(ctx, v_in, "value", kv_heads, head_dim)
    explicit_path = float(ctx.get("dropout", 0.0) or 0.0) > 0 or _flag(ctx, "return_attention_scores")
    mask = attention_mask(ctx, q_in, v_in, query_mask=masks["query_mask"], value_mask=masks["value_mask"],
                          key_mask=masks["key_mask"], explicit=masks["attention_mask"],
                          causal=_flag(ctx, "use_causal_mask"), window=_window(ctx))
    out, scores = attend(ctx, q, k, v, mask, (1,), 1.0 / math.sqrt(float(head_dim)), explicit_path)
    if ctx.get("use_gate", False):
        out = _gate(ctx, q_in, out, q_heads, head_dim)
    return _finish(ctx, _output_projection(ctx, out, [q_in.shape[-1]]), scores)


# ------------------------------------------------------- Attention, AdditiveAttention
# keras.layers.Attention._apply_scores: masked scores are lowered by this much (float32).
SCORES_MASK_OFFSET = 1e9


def _scores(ctx: KerasLayerContext, q: Value, k: Value) -> Value:
    """(B, Tq, Tv) scores of Luong (dot / concat) or Bahdanau (additive) attention, Keras order."""
    cls, mode = ctx.layer.class_name, ctx.get("score_mode", "dot")
    scale = ctx.const(ctx.weight("scale").astype(np.float32), "scale") if ctx.get("use_scale", False) else None
    if cls == "Attention" and mode == "dot":
        scores = ctx.op.matmul(q, ctx.op.transpose(k, perm=(0, 2, 1)))
        return scores if scale is None else ctx.op.mul(scores, scale)
    if cls == "Attention" and mode != "concat":
        raise ctx.fail(f"score_mode={mode!r} is not 'dot' or 'concat'")
    pairs = ctx.op.add(ctx.op.unsqueeze(q, axes=(2,)), ctx.op.unsqueeze(k, axes=(1,)))  # (B, Tq, Tv, dim)
    if cls == "AdditiveAttention":
        t = ctx.op.tanh(pairs)
        return ctx.op.reduce_sum(t if scale is None else ctx.op.mul(t, scale), axes=(3,))
    t = ctx.op.tanh(pairs if scale is None else ctx.op.mul(pairs, scale))
    weight = ctx.const(ctx.weight("concat_score_weight").astype(np.float32), "concat_score_weight")
    return ctx.op.mul(ctx.op.reduce_sum(t, axes=(3,)), weight)


@keras_layer("Attention", "AdditiveAttention")
def luong_bahdanau_attention(ctx: KerasLayerContext, inputs: Any, mask: Any = None) -> Any:
    """keras.layers.Attention / AdditiveAttention on [query, value, key?] (key defaults to value).

    Value mask and causal mask: masked scores minus 1e9 (Keras subtracts, it does not
    replace); the query mask zeroes the output rows. ``mask`` is Keras's list
    [query_mask, value_mask] (the inputs' Keras masks, or the call's ``mask=``).
    """
    if not isinstance(inputs, list) or len(inputs) not in (2, 3):
        raise ctx.fail("it must be called on a list [query, value] or [query, value, key]")
    q, v = ctx.to_keras_layout(inputs[0]), ctx.to_keras_layout(inputs[1])
    k = ctx.to_keras_layout(inputs[2]) if len(inputs) == 3 else v
    if q.rank != 3:
        raise ctx.fail(f"it takes rank-3 (batch, steps, features) inputs, got rank {q.rank}")
    masks = list(mask) if isinstance(mask, (list, tuple)) else [None, None]
    q_mask, v_mask = (masks + [None, None])[:2]
    scores = _scores(ctx, q, k)
    keep = None
    if v_mask is not None:
        vm = _as_bool(ctx, ctx.to_keras_layout(v_mask))
        keep = ctx.op.unsqueeze(vm, axes=(1,))
    if _flag(ctx, "use_causal_mask"):
        keep = _and(ctx, keep, _band_mask(ctx, q, v, True, None))
    if keep is not None:
        lowered = ctx.op.sub(scores, _scalar(ctx, SCORES_MASK_OFFSET))
        scores = ctx.op.where(keep, scores, lowered)
    weights = ctx.op.softmax(scores, axis=2)
    out = ctx.op.matmul(weights, v)
    if q_mask is not None:
        qm = ctx.op.unsqueeze(_as_bool(ctx, ctx.to_keras_layout(q_mask)), axes=(2,))
        out = ctx.op.where(qm, out, _scalar(ctx, 0.0))
    return _finish(ctx, out, weights)
