"""Indexing layers: gather/scatter families, static/dynamic slices, range,
whereNonZero, topK, argSort, cumSum, oneHot, reverseSeq, slidingWindows and
the band/triangular masks. Index tensors arrive as float blobs and are
truncated to integers; negative indices count from the end.
"""
from __future__ import annotations

import numpy as np

from kcc.coreml import proto
from kcc.coreml.registry import LayerContext, layer


def _int(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.int64)


def _wrap(idx: np.ndarray, size: int) -> np.ndarray:
    return np.where(idx < 0, idx + size, idx)


@layer("gather")
def gather(p, inputs, ctx: LayerContext):
    data, indices = inputs
    axis = int(p.axis)
    return np.take(data, _wrap(_int(indices), data.shape[axis]), axis=axis)


@layer("gatherND")
def gather_nd(p, inputs, ctx: LayerContext):
    data, indices = inputs
    idx = _int(indices)
    k = idx.shape[-1]
    idx = np.stack([_wrap(idx[..., i], data.shape[i]) for i in range(k)], axis=-1)
    return data[tuple(np.moveaxis(idx, -1, 0))]


@layer("gatherAlongAxis")
def gather_along_axis(p, inputs, ctx: LayerContext):
    data, indices = inputs
    axis = int(p.axis)
    return np.take_along_axis(data, _wrap(_int(indices), data.shape[axis]), axis=axis)


_SCATTER = {
    "SCATTER_UPDATE": None,
    "SCATTER_ADD": np.add, "SCATTER_SUB": np.subtract, "SCATTER_MUL": np.multiply,
    "SCATTER_DIV": np.divide, "SCATTER_MAX": np.maximum, "SCATTER_MIN": np.minimum,
}


def _scatter_into(out: np.ndarray, index, updates: np.ndarray, mode: str) -> None:
    ufunc = _SCATTER[mode]
    if ufunc is None:
        out[index] = updates
    else:
        ufunc.at(out, index, updates)


def _mode_name(p) -> str:
    return proto.module("NeuralNetwork_pb2").ScatterMode.Name(p.mode)


@layer("scatter")
def scatter(p, inputs, ctx: LayerContext):
    container, indices, updates = inputs
    axis = int(p.axis)
    axis = axis + container.ndim if axis < 0 else axis
    out = np.moveaxis(container.copy(), axis, 0)
    idx = _wrap(_int(indices), out.shape[0])
    # updates = container.shape[:axis] + indices.shape + container.shape[axis+1:]
    upd = np.moveaxis(updates, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    _scatter_into(out, idx, upd.reshape(idx.shape + out.shape[1:]), _mode_name(p))
    return np.moveaxis(out, 0, axis)


@layer("scatterND")
def scatter_nd(p, inputs, ctx: LayerContext):
    container, indices, updates = inputs
    out = container.copy()
    idx = _int(indices)
    k = idx.shape[-1]
    index = tuple(_wrap(idx[..., i], out.shape[i]) for i in range(k))
    _scatter_into(out, index, updates, _mode_name(p))
    return out


@layer("scatterAlongAxis")
def scatter_along_axis(p, inputs, ctx: LayerContext):
    container, indices, updates = inputs
    axis = int(p.axis)
    axis = axis + container.ndim if axis < 0 else axis
    out = container.copy()
    idx = _wrap(_int(indices), out.shape[axis])
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    _scatter_into(out, tuple(grid), updates, _mode_name(p))
    return out


def _strided_slice(x, begin, end, strides, begin_mask, end_mask, squeeze_mask):
    index = []
    for i in range(x.ndim):
        b = None if begin_mask[i] else int(begin[i])
        e = None if end_mask[i] else int(end[i])
        if squeeze_mask[i]:
            index.append(int(begin[i]))
        else:
            index.append(slice(b, e, int(strides[i]) or 1))
    return x[tuple(index)]


def _flags(values, rank: int) -> list[bool]:
    values = [bool(v) for v in values]
    return values if len(values) == rank else [False] * rank


@layer("sliceStatic")
def slice_static(p, inputs, ctx: LayerContext):
    x = inputs[0]
    r = x.ndim
    strides = list(p.strides) or [1] * r
    return _strided_slice(x, p.beginIds, p.endIds, strides, _flags(p.beginMasks, r),
                          _flags(p.endMasks, r), _flags(p.squeezeMasks, r))


@layer("sliceDynamic")
def slice_dynamic(p, inputs, ctx: LayerContext):
    x = inputs[0]
    r = x.ndim
    dyn = [_int(v).reshape(-1).tolist() for v in inputs[1:]] + [None] * (7 - len(inputs))
    begin = dyn[0]
    end = dyn[1] if dyn[1] is not None else list(p.endIds)
    strides = dyn[2] if dyn[2] is not None else (list(p.strides) or [1] * r)
    begin_mask = _flags(dyn[3] if dyn[3] is not None else p.beginMasks, r)
    end_mask = _flags(dyn[4] if dyn[4] is not None else p.endMasks, r)
    squeeze_mask = _flags(dyn[5] if dyn[5] is not None else p.squeezeMasks, r)
    return _strided_slice(x, begin, end, strides, begin_mask, end_mask, squeeze_mask)


@layer("sliceBySize")
def slice_by_size(p, inputs, ctx: LayerContext):
    x, begin = inputs
    axis = int(p.axis)
    start = int(_int(begin).reshape(-1)[0])
    start = start + x.shape[axis] if start < 0 else start
    return np.take(x, np.arange(start, start + int(p.size)), axis=axis)


@layer("rangeStatic")
def range_static(p, inputs, ctx: LayerContext):
    return np.arange(p.startValue, p.endValue, p.stepSizeValue, dtype=np.float32)


@layer("rangeDynamic")
def range_dynamic(p, inputs, ctx: LayerContext):
    values = [float(np.asarray(v).reshape(-1)[0]) for v in inputs]
    end = values[0]
    start = values[1] if len(values) > 1 else p.startValue
    step = values[2] if len(values) > 2 else p.stepSizeValue
    return np.arange(start, end, step, dtype=np.float32)


@layer("whereNonZero")
def where_non_zero(p, inputs, ctx: LayerContext):
    return np.argwhere(inputs[0] != 0).astype(np.float32)


@layer("topK")
def top_k(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axis = int(p.axis)
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 else int(p.K)
    order = np.argsort(x if p.useBottomK else -x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.float32)]


@layer("argSort")
def arg_sort(p, inputs, ctx: LayerContext):
    x = inputs[0]
    order = np.argsort(-x if p.descending else x, axis=int(p.axis), kind="stable")
    return order.astype(np.float32)


@layer("cumSum")
def cum_sum(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axis = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 else int(p.axis)
    if p.reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis)
    if p.excludeFinalSum:
        y = y - x
    return np.flip(y, axis) if p.reverse else y


@layer("oneHot")
def one_hot(p, inputs, ctx: LayerContext):
    x = _int(inputs[0])
    depth = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 else int(p.oneHotVectorSize)
    hot = x[..., None] == np.arange(depth)
    y = np.where(hot, np.float32(p.onValue), np.float32(p.offValue)).astype(np.float32)
    axis = int(p.axis)
    return np.moveaxis(y, -1, axis)


@layer("reverseSeq")
def reverse_seq(p, inputs, ctx: LayerContext):
    x, lengths = inputs
    batch_axis, seq_axis = int(p.batchAxis) % x.ndim, int(p.sequenceAxis) % x.ndim
    out = x.copy()
    for b, n in enumerate(_int(lengths).reshape(-1)):
        src = [slice(None)] * x.ndim
        src[batch_axis] = b
        src[seq_axis] = slice(0, int(n))
        sub = x[tuple(src)]
        out[tuple(src)] = np.flip(sub, axis=seq_axis - (1 if batch_axis < seq_axis else 0))
    return out


@layer("slidingWindows")
def sliding_windows(p, inputs, ctx: LayerContext):
    x = inputs[0]
    axis = int(p.axis) % x.ndim
    win = np.lib.stride_tricks.sliding_window_view(x, int(p.windowSize), axis=axis)
    win = np.take(win, np.arange(0, win.shape[axis], int(p.step) or 1), axis=axis)
    return np.ascontiguousarray(np.moveaxis(win, -1, axis + 1))


def _band(x: np.ndarray, lower: int, upper: int) -> np.ndarray:
    m, n = x.shape[-2:]
    rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
    keep = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    return np.where(keep, x, 0).astype(x.dtype)


@layer("matrixBandPart")
def matrix_band_part(p, inputs, ctx: LayerContext):
    return _band(inputs[0], int(p.numLower), int(p.numUpper))


@layer("lowerTriangular")
def lower_triangular(p, inputs, ctx: LayerContext):
    return np.tril(inputs[0], int(p.k))


@layer("upperTriangular")
def upper_triangular(p, inputs, ctx: LayerContext):
    return np.triu(inputs[0], int(p.k))
