"""Spatial layers on the last three axes [..., C, H, W]: convolution (also grouped,
dilated and deconvolution), pooling, padding, crop, upsample, resizeBilinear,
cropResize and reorganizeData.

Leading axes (rank-5 [Seq, Batch] or an ND batch) are folded into one batch axis
and restored afterwards, as the proto describes ("the leading dimensions ... are
all treated as batch").
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kcc.coreml.registry import LayerContext, layer


def _fold(x: np.ndarray, ctx: LayerContext, min_rank: int = 3):
    if x.ndim < min_rank:
        raise ctx.error(f"needs an input of rank >= {min_rank}, got shape {list(x.shape)}")
    lead = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), lead


def _pair(values, default: int) -> tuple[int, int]:
    vals = [int(v) for v in values]
    return (vals[0], vals[1]) if len(vals) == 2 else (default, default)


def _same_pads(size: int, kernel: int, stride: int, top_left_heavy: bool) -> tuple[int, int, int]:
    """Output size and (start, end) padding of SamePadding for one axis."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + kernel - size)
    small = total // 2
    start, end = (total - small, small) if top_left_heavy else (small, total - small)
    return out, start, end


def _border(amounts) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a ``BorderAmounts`` message (missing = 0)."""
    edges = list(amounts.borderAmounts)
    top, bottom = (edges[0].startEdgeSize, edges[0].endEdgeSize) if len(edges) > 0 else (0, 0)
    left, right = (edges[1].startEdgeSize, edges[1].endEdgeSize) if len(edges) > 1 else (0, 0)
    return int(top), int(bottom), int(left), int(right)


def _window_pads(p, h: int, w: int, keff: tuple[int, int], stride: tuple[int, int]):
    """Padding (top, bottom, left, right) of a convolution's valid/same oneof."""
    if p.WhichOneof("ConvolutionPaddingType") == "same":
        heavy = p.same.asymmetryMode == type(p.same).TOP_LEFT_HEAVY
        _, t, b = _same_pads(h, keff[0], stride[0], heavy)
        _, l, r = _same_pads(w, keff[1], stride[1], heavy)
        return t, b, l, r
    return _border(p.valid.paddingAmounts)


# ---------------------------------------------------------------- convolution

@layer("convolution")
def convolution(p, inputs, ctx: LayerContext):
    x, lead = _fold(inputs[0], ctx, 3)
    n, c, h, w = x.shape
    groups = int(p.nGroups) or 1
    kh, kw = _pair(p.kernelSize, 3)
    stride = _pair(p.stride, 1)
    cout = int(p.outputChannels)
    if p.isDeconvolution:
        y = _deconvolution(p, x, ctx, groups, (kh, kw), stride, cout)
    else:
        if len(inputs) > 1:
            weights = inputs[1].reshape(cout, c // groups, kh, kw)
        else:
            weights = ctx.weight(p.weights, (cout, int(p.kernelChannels), kh, kw))
        if weights.shape[1] * groups != c:
            raise ctx.error(f"expects {weights.shape[1] * groups} input channels, got {c}")
        dil = _pair(p.dilationFactor, 1)
        y = _conv2d(x, weights, groups, stride, dil, _window_pads(
            p, h, w, ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1), stride))
    if p.hasBias:
        y = y + ctx.weight(p.bias, (cout,), "bias").reshape(1, -1, 1, 1)
    return y.reshape(lead + y.shape[1:])


def _conv2d(x, weights, groups, stride, dil, pads):
    t, b, l, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    n, c, h, w = x.shape
    cout, cg, kh, kw = weights.shape
    keh, kew = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    win = sliding_window_view(x, (keh, kew), axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1], ::dil[0], ::dil[1]]  # [N, C, Ho, Wo, kh, kw]
    ho, wo = win.shape[2], win.shape[3]
    # [G, N*Ho*Wo, Cg*kh*kw] @ [G, Cg*kh*kw, Cout/G]
    cols = win.reshape(n, groups, cg, ho, wo, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(groups, n * ho * wo, cg * kh * kw)
    kern = weights.reshape(groups, cout // groups, cg * kh * kw).transpose(0, 2, 1)
    y = np.matmul(cols, kern)  # [G, N*Ho*Wo, Cout/G]
    y = y.reshape(groups, n, ho, wo, cout // groups).transpose(1, 0, 4, 2, 3)
    return np.ascontiguousarray(y.reshape(n, cout, ho, wo))


def _deconvolution(p, x, ctx, groups, kernel, stride, cout):
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    weights = ctx.weight(p.weights, (int(p.kernelChannels), cout // groups, kh, kw))
    if weights.shape[0] != c:
        raise ctx.error(f"expects {weights.shape[0]} input channels, got {c}")
    cg, og = c // groups, cout // groups
    # contrib[n, g, o, i, j, h, w] = sum_c x[n, g, c, h, w] * W[g, c, o, i, j]
    xg = x.reshape(n, groups, cg, h * w)
    wg = weights.reshape(groups, cg, og * kh * kw)
    contrib = np.einsum("ngcp,gck->ngkp", xg, wg).reshape(n, groups * og, kh, kw, h, w)
    full_h, full_w = (h - 1) * sh + kh, (w - 1) * sw + kw
    full = np.zeros((n, cout, full_h, full_w), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + sh * (h - 1) + 1:sh, j:j + sw * (w - 1) + 1:sw] += contrib[:, :, i, j]
    same = p.WhichOneof("ConvolutionPaddingType") == "same"
    heavy = same and p.same.asymmetryMode == type(p.same).TOP_LEFT_HEAVY
    if len(p.outputShape) == 2:
        out_h, out_w = int(p.outputShape[0]), int(p.outputShape[1])
        if same:
            top, left = _split_crop(full_h - out_h, heavy), _split_crop(full_w - out_w, heavy)
        else:
            top, _, left, _ = _border(p.valid.paddingAmounts)
    elif same:
        out_h, out_w = h * sh, w * sw
        top, left = _split_crop(full_h - out_h, heavy), _split_crop(full_w - out_w, heavy)
    else:
        top, bottom, left, right = _border(p.valid.paddingAmounts)
        out_h, out_w = full_h - top - bottom, full_w - left - right
    return _window(full, top, out_h, left, out_w)


def _split_crop(total: int, top_left_heavy: bool) -> int:
    """The leading share of a total crop, as SamePadding splits padding."""
    small = max(total, 0) // 2
    return max(total, 0) - small if top_left_heavy else small


def _window(x, top, out_h, left, out_w):
    """x[..., top:top+out_h, left:left+out_w], zero-filled where it runs past the end."""
    y = x[..., top:top + out_h, left:left + out_w]
    ph, pw = out_h - y.shape[-2], out_w - y.shape[-1]
    if ph or pw:
        y = np.pad(y, [(0, 0)] * (y.ndim - 2) + [(0, ph), (0, pw)])
    return y


# -------------------------------------------------------------------- pooling

_POOL_GLOBAL = {
    "MAX": lambda x: np.max(x, axis=(-2, -1), keepdims=True),
    "AVERAGE": lambda x: np.mean(x, axis=(-2, -1), keepdims=True),
    "L2": lambda x: np.sqrt(np.sum(x * x, axis=(-2, -1), keepdims=True)),
}


@layer("pooling")
def pooling(p, inputs, ctx: LayerContext):
    x, lead = _fold(inputs[0], ctx, 3)
    kind = type(p).PoolingType.Name(p.type)
    if p.globalPooling:
        y = _POOL_GLOBAL[kind](x)
        return y.reshape(lead + y.shape[1:])
    n, c, h, w = x.shape
    k = _pair(p.kernelSize, 3)
    s = _pair(p.stride, 1)
    padding = p.WhichOneof("PoolingPaddingType")
    axes = []
    for size, kk, ss, i in ((h, k[0], s[0], 0), (w, k[1], s[1], 1)):
        if padding == "same":
            heavy = p.same.asymmetryMode == type(p.same).TOP_LEFT_HEAVY
            out, start, end = _same_pads(size, kk, ss, heavy)
        elif padding == "includeLastPixel":
            amounts = list(p.includeLastPixel.paddingAmounts) or [0, 0]
            start = end = int(amounts[i])
            out = -(-(size + 2 * start - kk) // ss) + 1
            if start > 0 and (out - 1) * ss >= size + start:
                out -= 1
        else:
            t, b, l, r = _border(p.valid.paddingAmounts)
            start, end = (t, b) if i == 0 else (l, r)
            out = (size + start + end - kk) // ss + 1
        axes.append((size, kk, ss, start, end, out))
    return _pool(x, kind, axes, p.avgPoolExcludePadding).reshape(lead + (c,) + (axes[0][5], axes[1][5]))


def _pool(x, kind, axes, exclude_padding):
    """Windowed pooling; cells outside the image never win a max and never add to a sum."""
    (h, kh, sh, th, bh, oh), (w, kw, sw, tw, bw, ow) = axes
    span_h, span_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    fill = -np.inf if kind == "MAX" else 0.0
    xp = np.full(x.shape[:2] + (span_h, span_w), fill, dtype=np.float32)
    # rows/cols of x that land inside the [-top, span-top) window of the padded grid
    rh, rw = min(h, span_h - th), min(w, span_w - tw)
    xp[:, :, th:th + rh, tw:tw + rw] = x[:, :, :rh, :rw] if kind != "L2" else np.square(x[:, :, :rh, :rw])
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    if kind == "MAX":
        return win.max(axis=(-2, -1))
    total = win.sum(axis=(-2, -1))
    if kind == "L2":
        return np.sqrt(total)
    count_h = _count(h, kh, sh, th, bh, oh, exclude_padding)
    count_w = _count(w, kw, sw, tw, bw, ow, exclude_padding)
    return total / np.outer(count_h, count_w).astype(np.float32)


def _count(size, k, s, start, end, out, exclude_padding):
    """Per output position, how many cells of its window the average divides by."""
    idx = np.arange((out - 1) * s + k) - start
    valid = (idx >= 0) & (idx < size) if exclude_padding else (idx >= -start) & (idx < size + end)
    return np.maximum(sliding_window_view(valid, k)[::s].sum(axis=-1), 1)


# ------------------------------------------------------------ padding / crop

_PAD_MODES = {"constant": "constant", "reflection": "reflect", "replication": "edge"}


@layer("padding")
def padding(p, inputs, ctx: LayerContext):
    x = inputs[0]
    t, b, l, r = _border(p.paddingAmounts)
    widths = [(0, 0)] * (x.ndim - 2) + [(t, b), (l, r)]
    kind = p.WhichOneof("PaddingType") or "constant"
    if kind == "constant":
        return np.pad(x, widths, mode="constant", constant_values=p.constant.value)
    return np.pad(x, widths, mode=_PAD_MODES[kind])


@layer("crop")
def crop(p, inputs, ctx: LayerContext):
    x = inputs[0]
    h, w = x.shape[-2:]
    if len(inputs) > 1:
        oh, ow = _pair(p.offset, 0)
        rh, rw = inputs[1].shape[-2:]
        return x[..., oh:oh + rh, ow:ow + rw]
    t, b, l, r = _border(p.cropAmounts)
    return x[..., t:h - b, l:w - r]


# ------------------------------------------------------- resampling layers

def _interp(x: np.ndarray, grid: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``x`` at fractional positions ``grid`` along ``axis``."""
    size = x.shape[axis]
    grid = np.clip(grid, 0, size - 1)
    i0 = np.floor(grid).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    frac = (grid - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = frac.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - frac) + np.take(x, i1, axis=axis) * frac


def _upsample_grid(x_in: int, x_out: int, mode: str) -> np.ndarray:
    i = np.arange(x_out, dtype=np.float64)
    if mode == "ALIGN_CORNERS_FALSE":
        spacing = x_in / x_out
        return i * spacing + 0.5 * spacing - 0.5
    if x_out == 1:
        return np.zeros(1)
    spacing = (x_in - 1) / (x_out - 1) if mode == "ALIGN_CORNERS_TRUE" else (x_in - x_in / x_out) / (x_out - 1)
    return i * spacing


@layer("upsample")
def upsample(p, inputs, ctx: LayerContext):
    x = inputs[0]
    h, w = x.shape[-2:]
    if len(p.fractionalScalingFactor) == 2:
        fh, fw = float(p.fractionalScalingFactor[0]), float(p.fractionalScalingFactor[1])
    else:
        fh, fw = _pair(p.scalingFactor, 1)
    out_h, out_w = int(math.floor(h * fh)), int(math.floor(w * fw))
    if p.mode == type(p).NN:
        rows = np.minimum(np.floor(np.arange(out_h) / fh).astype(np.int64), h - 1)
        cols = np.minimum(np.floor(np.arange(out_w) / fw).astype(np.int64), w - 1)
        return x[..., rows, :][..., cols]
    mode = type(p).LinearUpsampleMode.Name(p.linearUpsampleMode)
    y = _interp(x, _upsample_grid(h, out_h, mode), x.ndim - 2)
    return _interp(y, _upsample_grid(w, out_w, mode), x.ndim - 1)


def _sampling_grid(x_in: float, n: int, method: str, start: float = 0.0) -> np.ndarray:
    """Grid points of SamplingMode on the interval [start, start + x_in - 1]."""
    if method == "STRICT_ALIGN_ENDPOINTS_MODE":
        g = np.linspace(0, x_in - 1, n)
    elif method == "ALIGN_ENDPOINTS_MODE":
        g = np.full(1, (x_in - 1) / 2) if n == 1 else np.linspace(0, x_in - 1, n)
    elif method == "UPSAMPLE_MODE":
        g = np.minimum(x_in - 1, np.linspace(0, x_in - x_in / n, n))
    else:  # ROI_ALIGN_MODE
        spacing = max(1.0, x_in - 1) / n
        g = np.minimum(x_in - 1, np.linspace(0.5 * spacing, 0.5 * spacing + (n - 1) * spacing, n))
    return g + start


@layer("resizeBilinear")
def resize_bilinear(p, inputs, ctx: LayerContext):
    x = inputs[0]
    h, w = x.shape[-2:]
    out_h, out_w = _pair(p.targetSize, 1)
    method = type(p.mode).Method.Name(p.mode.samplingMethod)
    y = _interp(x, _sampling_grid(h, out_h, method), x.ndim - 2)
    return _interp(y, _sampling_grid(w, out_w, method), x.ndim - 1)


@layer("cropResize")
def crop_resize(p, inputs, ctx: LayerContext):
    x, rois = inputs
    if x.ndim != 5 or rois.ndim != 5:
        raise ctx.error("needs rank-5 inputs [1, Batch, C, H, W] and [N, 1, 4 or 5, 1, 1]")
    _, batch, c, h, w = x.shape
    out_h, out_w = _pair(p.targetSize, 1)
    method = type(p.mode).Method.Name(p.mode.samplingMethod)
    box_mode = type(p.boxIndicesMode).Coordinates.Name(p.boxIndicesMode.boxMode)
    scale = p.spatialScale or 1.0
    boxes = rois.reshape(rois.shape[0], -1)
    outs = []
    for box in boxes:
        images = x[0, int(box[0]):int(box[0]) + 1] if box.size == 5 else x[0]
        coords = box[-4:].astype(np.float64)
        if box_mode.endswith("WIDTH_FIRST"):
            coords = coords[[1, 0, 3, 2]]
        if box_mode.startswith("CENTER"):
            ch, cw, bh, bw = coords
            coords = np.array([ch - bh / 2, cw - bw / 2, ch + bh / 2, cw + bw / 2])
        if p.normalizedCoordinates:
            coords = coords * np.array([h - 1, w - 1, h - 1, w - 1])
        y0, x0, y1, x1 = coords * scale
        rows = _sampling_grid(y1 - y0 + 1, out_h, method, y0)
        cols = _sampling_grid(x1 - x0 + 1, out_w, method, x0)
        outs.append(_interp(_interp(images, rows, 2), cols, 3))
    return np.stack(outs)


# ------------------------------------------------------------ reorganizeData

@layer("reorganizeData")
def reorganize_data(p, inputs, ctx: LayerContext):
    x, lead = _fold(inputs[0], ctx, 3)
    n, c, h, w = x.shape
    bs = int(p.blockSize)
    mode = type(p).ReorganizationType.Name(p.mode)
    if mode == "SPACE_TO_DEPTH":
        y = x.reshape(n, c, h // bs, bs, w // bs, bs).transpose(0, 3, 5, 1, 2, 4)
        y = y.reshape(n, c * bs * bs, h // bs, w // bs)
    elif mode == "DEPTH_TO_SPACE":
        y = x.reshape(n, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
        y = y.reshape(n, c // (bs * bs), h * bs, w * bs)
    else:  # PIXEL_SHUFFLE
        y = x.reshape(n, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
        y = y.reshape(n, c // (bs * bs), h * bs, w * bs)
    return y.reshape(lead + y.shape[1:])
