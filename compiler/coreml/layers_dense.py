"""Matrix layers: innerProduct, batchedMatmul, embedding, embeddingND."""
from __future__ import annotations

import numpy as np

from kcc.coreml.registry import LayerContext, layer


@layer("innerProduct")
def inner_product(p, inputs, ctx: LayerContext):
    """y = x W^T + b with W [C_out, C_in], reshaping by rank as NeuralNetwork.proto lists."""
    x = inputs[0]
    cin, cout = int(p.inputChannels), int(p.outputChannels)
    weights = ctx.weight(p.weights, (cout, cin))
    shape = x.shape
    if x.ndim <= 3:
        lead, out_tail = shape[:-1], (cout,)
    elif x.ndim == 4:
        lead, out_tail = shape[:1], (cout, 1, 1)
    else:
        lead, out_tail = shape[:-3], (cout, 1, 1)
    flat = x.reshape(int(np.prod(lead, dtype=np.int64)), -1)
    if flat.shape[1] != cin:
        raise ctx.error(f"expects {cin} input features, got input of shape {list(shape)}")
    y = flat @ weights.T
    if p.hasBias:
        y = y + ctx.weight(p.bias, (cout,), "bias")
    return y.reshape(tuple(lead) + out_tail)


@layer("batchedMatmul")
def batched_matmul(p, inputs, ctx: LayerContext):
    if len(inputs) == 1:
        x = inputs[0]
        x1, x2 = int(p.weightMatrixFirstDimension), int(p.weightMatrixSecondDimension)
        # [X1, X2] stored column-major: memory order is that of the transpose [X2, X1].
        weights = ctx.weight(p.weights, (x2, x1)).T
        y = x.reshape(-1, x1) @ weights
        if p.hasBias:
            y = y + ctx.weight(p.bias, (x2,), "bias")
        return y.reshape(x.shape[:-1] + (x2,))
    a, b = inputs
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    if a_vec:
        a = a.reshape(1, -1)
    if b_vec:
        b = b.reshape(-1, 1)
    if p.transposeA:
        a = np.swapaxes(a, -1, -2)
    if p.transposeB:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


@layer("embedding")
def embedding(p, inputs, ctx: LayerContext):
    """Rank-4/5 lookup: [..., 1, 1, 1] indices -> [..., C_out, 1, 1]."""
    x = inputs[0]
    vocab, cout = int(p.inputDim), int(p.outputChannels)
    table = ctx.weight(p.weights, (cout, vocab)).T
    idx = _indices(x[..., 0, 0, 0], vocab, ctx)
    y = table[idx]
    if p.hasBias:
        y = y + ctx.weight(p.bias, (cout,), "bias")
    return y[..., None, None]


@layer("embeddingND")
def embedding_nd(p, inputs, ctx: LayerContext):
    """[..., 1] indices -> [..., embeddingSize]."""
    x = inputs[0]
    vocab, size = int(p.vocabSize), int(p.embeddingSize)
    table = ctx.weight(p.weights, (size, vocab)).T
    y = table[_indices(x[..., 0], vocab, ctx)]
    if p.hasBias:
        y = y + ctx.weight(p.bias, (size,), "bias")
    return y


def _indices(values: np.ndarray, size: int, ctx: LayerContext) -> np.ndarray:
    idx = values.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ctx.error(f"index out of range [0, {size - 1}]: got {int(idx.min())}..{int(idx.max())}")
    return idx
