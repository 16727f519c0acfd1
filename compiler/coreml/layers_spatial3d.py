"""Volumetric layers on the last four axes [..., C, D, H, W]: convolution3d (also
grouped, dilated and its deconvolution form), pooling3d and globalPooling3d.

Semantics follow NeuralNetwork.proto (specification 5):

* padding types CUSTOM (explicit front/back, top/bottom, left/right amounts), VALID
  (none; a trailing partial window is dropped) and SAME (output ``ceil(in / stride)``,
  the odd cell of padding on the back/bottom/right side);
* deconvolution weights are stored ``[inputChannels, outputChannels / nGroups, kD, kH,
  kW]`` -- the layout coremltools' builder writes (it transposes its documented
  argument order before storing) and the one kcc's emitter writes; the proto's
  comment names the two channel axes the other way round;
* for a deconvolution, the padding amounts crop the full result (front/top/left at
  the start) and ``outputShape``, when set, fixes the output size;
* pooled cells outside the input never win a max and never add to an average;
  ``countExcludePadding`` decides whether padded cells count in the divisor.

Leading axes beyond [Batch, C, D, H, W] are folded into the batch axis.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kcc.coreml.registry import LayerContext, layer

_SPATIAL = (2, 3, 4)
# (start, end) custom-padding field names per spatial axis, depth first
_CUSTOM_FIELDS = (("customPaddingFront", "customPaddingBack"),
                  ("customPaddingTop", "customPaddingBottom"),
                  ("customPaddingLeft", "customPaddingRight"))


def _fold(x: np.ndarray, ctx: LayerContext):
    if x.ndim < 4:
        raise ctx.error(f"needs an input of rank >= 4 [C, D, H, W], got shape {list(x.shape)}")
    return x.reshape((-1,) + x.shape[-4:]), x.shape[:-4]


def _padding_type(p) -> str:
    """Name of the layer's ``paddingType`` enum value (CUSTOM, VALID or SAME)."""
    enum = p.DESCRIPTOR.fields_by_name["paddingType"].enum_type
    return enum.values_by_number[p.paddingType].name


def _window_pads(p, sizes, kernels, strides) -> list[tuple[int, int]]:
    """(start, end) padding per spatial axis of a forward window (conv or pool).

    ``kernels`` are effective (dilated) kernel extents.
    """
    kind = _padding_type(p)
    pads = []
    for axis, (size, k, s) in enumerate(zip(sizes, kernels, strides)):
        if kind == "SAME":
            out = -(-size // s)
            total = max(0, (out - 1) * s + k - size)
            pads.append((total // 2, total - total // 2))
        elif kind == "CUSTOM":
            start, end = _CUSTOM_FIELDS[axis]
            pads.append((int(getattr(p, start)), int(getattr(p, end))))
        else:  # VALID
            pads.append((0, 0))
    return pads


def _triple(p, prefix: str, default: int = 1) -> tuple[int, int, int]:
    return tuple(int(getattr(p, f"{prefix}{axis}")) or default for axis in ("Depth", "Height", "Width"))


# ---------------------------------------------------------------- convolution3d

@layer("convolution3d")
def convolution3d(p, inputs, ctx: LayerContext):
    x, lead = _fold(inputs[0], ctx)
    c = x.shape[1]
    groups = int(p.nGroups) or 1
    kernel = _triple(p, "kernel")
    stride = _triple(p, "stride")
    dil = _triple(p, "dilation")
    cout = int(p.outputChannels)
    if cout % groups or c % groups:
        raise ctx.error(f"nGroups={groups} must divide the input ({c}) and output ({cout}) channels")
    if p.isDeconvolution:
        weights = ctx.weight(p.weights, (c, cout // groups) + kernel)
        y = _deconv3d(p, x, weights, groups, stride, dil, ctx)
    else:
        weights = ctx.weight(p.weights, (cout, c // groups) + kernel)
        y = _conv3d(p, x, weights, groups, stride, dil)
    if p.hasBias:
        y = y + ctx.weight(p.bias, (cout,), "bias").reshape(1, -1, 1, 1, 1)
    y = np.ascontiguousarray(y, dtype=np.float32)
    return y.reshape(lead + y.shape[1:])


def _conv3d(p, x, weights, groups, stride, dil):
    """Cross-correlation: sliding windows of the padded input contracted with the kernel."""
    n, c = x.shape[:2]
    cout, cg = weights.shape[:2]
    kernel = weights.shape[2:]
    keff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dil))
    pads = _window_pads(p, x.shape[2:], keff, stride)
    x = np.pad(x, [(0, 0), (0, 0)] + pads)
    win = sliding_window_view(x, keff, axis=_SPATIAL)
    win = win[:, :, ::stride[0], ::stride[1], ::stride[2], ::dil[0], ::dil[1], ::dil[2]]
    out = win.shape[2:5]
    win = win.reshape((n, groups, cg) + out + kernel)
    kern = weights.reshape((groups, cout // groups, cg) + kernel)
    y = np.einsum("ngcdhwijk,gocijk->ngodhw", win, kern, optimize=True)
    return y.reshape((n, cout) + out)


def _deconv3d(p, x, weights, groups, stride, dil, ctx):
    """Transposed convolution: each input cell scatters ``x * W`` into the full output,
    which the padding / ``outputShape`` then crops."""
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    og = weights.shape[1]
    kernel = weights.shape[2:]
    xg = x.reshape((n, groups, c // groups) + sizes)
    wg = weights.reshape((groups, c // groups, og) + kernel)
    # contrib[n, g, o, i, j, k, d, h, w] = sum_c x[n, g, c, d, h, w] * W[g, c, o, i, j, k]
    contrib = np.einsum("ngcdhw,gcoijk->ngoijkdhw", xg, wg, optimize=True)
    contrib = contrib.reshape((n, groups * og) + kernel + sizes)
    full = tuple((size - 1) * s + (k - 1) * d + 1 for size, s, k, d in zip(sizes, stride, kernel, dil))
    y = np.zeros((n, groups * og) + full, dtype=np.float32)
    for i, j, k in itertools.product(*(range(kk) for kk in kernel)):
        offs = (i * dil[0], j * dil[1], k * dil[2])
        y[(slice(None), slice(None)) + tuple(
            slice(o, o + s * (size - 1) + 1, s) for o, s, size in zip(offs, stride, sizes))] += contrib[:, :, i, j, k]
    return _crop_deconv(p, y, sizes, stride, full, ctx)


def _crop_deconv(p, y, sizes, stride, full, ctx):
    """Crop the full deconvolution result to the output the padding type / outputShape ask for."""
    kind = _padding_type(p)
    if len(p.outputShape) not in (0, 3):
        raise ctx.error(f"outputShape must have 3 values [D, H, W], got {list(p.outputShape)}")
    given = [int(v) for v in p.outputShape]
    window = []
    for axis, (size, s, f) in enumerate(zip(sizes, stride, full)):
        if kind == "CUSTOM":
            start_f, end_f = _CUSTOM_FIELDS[axis]
            start, end = int(getattr(p, start_f)), int(getattr(p, end_f))
            out = given[axis] if given else f - start - end
        elif kind == "SAME":
            out = given[axis] if given else size * s
            start = max(f - out, 0) // 2
        else:  # VALID
            start, out = 0, (given[axis] if given else f)
        if out <= 0:
            raise ctx.error(f"output size {out} on spatial axis {axis} is not positive")
        window.append((start, out))
    cut = y[(slice(None), slice(None)) + tuple(slice(st, st + o) for st, o in window)]
    short = [(0, 0), (0, 0)] + [(0, o - have) for (_, o), have in zip(window, cut.shape[2:])]
    return np.pad(cut, short) if any(b for _, b in short) else cut


# -------------------------------------------------------------------- pooling3d

@layer("pooling3d")
def pooling3d(p, inputs, ctx: LayerContext):
    x, lead = _fold(inputs[0], ctx)
    kind = type(p).PoolingType3D.Name(p.type)
    kernel = _triple(p, "kernel")
    stride = _triple(p, "stride")
    sizes = x.shape[2:]
    pads = _window_pads(p, sizes, kernel, stride)
    outs = tuple((size + a + b - k) // s + 1 for size, (a, b), k, s in zip(sizes, pads, kernel, stride))
    if min(outs) <= 0:
        raise ctx.error(f"window {list(kernel)} does not fit the padded input {list(sizes)}")
    spans = tuple((o - 1) * s + k for o, s, k in zip(outs, stride, kernel))
    xp = np.full(x.shape[:2] + spans, -np.inf if kind == "MAX" else 0.0, dtype=np.float32)
    keep = tuple(min(size, span - a) for size, span, (a, _) in zip(sizes, spans, pads))
    xp[(slice(None), slice(None)) + tuple(slice(a, a + kk) for (a, _), kk in zip(pads, keep))] = \
        x[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in keep)]
    win = sliding_window_view(xp, kernel, axis=_SPATIAL)[:, :, ::stride[0], ::stride[1], ::stride[2]]
    if kind == "MAX":
        y = win.max(axis=(-3, -2, -1))
    else:
        counts = [_count(size, k, s, a, b, o, p.countExcludePadding)
                  for size, k, s, (a, b), o in zip(sizes, kernel, stride, pads, outs)]
        y = win.sum(axis=(-3, -2, -1)) / np.einsum("d,h,w->dhw", *counts).astype(np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    return y.reshape(lead + y.shape[1:])


def _count(size, k, s, start, end, out, exclude_padding) -> np.ndarray:
    """Per output position on one axis, how many cells of its window the average divides by."""
    idx = np.arange((out - 1) * s + k) - start
    valid = (idx >= 0) & (idx < size) if exclude_padding else (idx >= -start) & (idx < size + end)
    return np.maximum(sliding_window_view(valid, k)[::s].sum(axis=-1), 1)


# -------------------------------------------------------------- globalPooling3d

_GLOBAL = {
    "MAX": lambda x: np.max(x, axis=(-3, -2, -1), keepdims=True),
    "AVERAGE": lambda x: np.mean(x, axis=(-3, -2, -1), keepdims=True),
}


@layer("globalPooling3d")
def global_pooling3d(p, inputs, ctx: LayerContext):
    x = inputs[0]
    if x.ndim < 4:
        raise ctx.error(f"needs an input of rank >= 4 [C, D, H, W], got shape {list(x.shape)}")
    return _GLOBAL[type(p).GlobalPoolingType3D.Name(p.type)](x).astype(np.float32)
