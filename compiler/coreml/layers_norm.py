"""Normalization layers: batchnorm, mvn, l2normalize, lrn, softmax, softmaxND,
layerNormalization, and the per-channel ``scale`` / ``bias`` layers.

Legacy layers normalize along axis -3 ("C") or the last three axes, whatever the
rank, as NeuralNetwork.proto words it for rank >= 3 inputs.
"""
from __future__ import annotations

import numpy as np

from kcc.coreml.registry import LayerContext, layer


def _per_channel(values: np.ndarray) -> np.ndarray:
    return values.reshape(-1, 1, 1)


@layer("batchnorm")
def batchnorm(p, inputs, ctx: LayerContext):
    x = inputs[0]
    c = int(p.channels)
    eps = np.float32(p.epsilon or 1e-5)
    gamma = _per_channel(ctx.weight(p.gamma, (c,), "gamma"))
    beta = _per_channel(ctx.weight(p.beta, (c,), "beta"))
    if p.computeMeanVar:
        # instance: statistics of each sample over H, W; else over every axis but C.
        axes = (-2, -1) if p.instanceNormalization else tuple(
            a for a in range(-x.ndim, 0) if a != -3)
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
    else:
        mean = _per_channel(ctx.weight(p.mean, (c,), "mean"))
        var = _per_channel(ctx.weight(p.variance, (c,), "variance"))
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


@layer("mvn")
def mvn(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axes = (-3, -2, -1) if p.acrossChannels else (-2, -1)
    y = x - x.mean(axis=axes, keepdims=True)
    if p.normalizeVariance:
        eps = np.float32(p.epsilon or 1e-6)
        y = y / np.sqrt((y * y).mean(axis=axes, keepdims=True) + eps)
    return y


@layer("l2normalize")
def l2normalize(p, inputs, ctx: LayerContext):
    x = inputs[0]
    eps = np.float32(p.epsilon or 1e-6)
    return x / np.sqrt(np.sum(x * x, axis=(-3, -2, -1), keepdims=True) + eps)


@layer("lrn")
def lrn(p, inputs, ctx: LayerContext):
    """x / (k + alpha/n * sum of x^2 over a window of n channels) ** beta."""
    x = inputs[0]
    n = int(p.localSize)
    k = np.float32(p.k or 1.0)
    c = x.shape[-3]
    sq = x * x
    before = (n - 1) // 2
    padded = np.pad(sq, [(0, 0)] * (x.ndim - 3) + [(before, n - 1 - before), (0, 0), (0, 0)])
    window = sum(padded[..., i:i + c, :, :] for i in range(n))
    return x / (k + np.float32(p.alpha) / n * window) ** np.float32(p.beta)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@layer("softmax")
def softmax(p, inputs, ctx: LayerContext):
    return _softmax(inputs[0], -3)


@layer("softmaxND")
def softmax_nd(p, inputs, ctx: LayerContext):
    return _softmax(inputs[0], int(p.axis))


@layer("layerNormalization")
def layer_normalization(p, inputs, ctx: LayerContext):
    x = inputs[0]
    shape = tuple(int(d) for d in p.normalizedShape)
    axes = tuple(range(-len(shape), 0))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    gamma = ctx.weight(p.gamma, shape, "gamma")
    beta = ctx.weight(p.beta, shape, "beta")
    return gamma * (x - mean) / np.sqrt(var + np.float32(p.eps)) + beta


def _chw_param(values: np.ndarray, shape) -> np.ndarray:
    """A scale/bias of shape [1], [C], [1, H, W] or [C, H, W], broadcastable on [..., C, H, W]."""
    shape = [int(d) for d in shape] or [values.size]
    if len(shape) == 1:
        return values.reshape(-1, 1, 1) if shape[0] > 1 else values.reshape(())
    return values.reshape(shape)


@layer("scale")
def scale(p, inputs, ctx: LayerContext):
    y = inputs[0] * _chw_param(ctx.weight(p.scale, what="scale"), p.shapeScale)
    if p.hasBias:
        y = y + _chw_param(ctx.weight(p.bias, what="bias"), p.shapeBias)
    return y


@layer("bias")
def bias(p, inputs, ctx: LayerContext):
    return inputs[0] + _chw_param(ctx.weight(p.bias, what="bias"), p.shape)
