"""NeuralNetwork ``resizeBilinear`` and ``cropResize`` (specification 3): bilinear resampling on a grid of
``SamplingMode``.

NeuralNetwork.proto's ``SamplingMode`` puts the N output points of an axis of
size X at (``linspace(start, end, N)``):

* STRICT_ALIGN_ENDPOINTS_MODE: 0 .. X-1;
* ALIGN_ENDPOINTS_MODE: the same, except N == 1 samples the middle (X-1)/2;
* UPSAMPLE_MODE: 0 .. X - X/N, capped at X-1;
* ROI_ALIGN_MODE: spacing ``max(1, X-1)/N``, from half a spacing on, capped at X-1.

The IR's ``resize`` has none of these grids, so each axis is interpolated
directly: for grid point g, ``i0 = floor(g)``, ``i1 = min(i0 + 1, X-1)``,
``y = x[i0] * (1 - f) + x[i1] * f`` with ``f = g - i0``; with a static X the
indices and weights are constants (two ``gather``s, two ``mul``s and an ``add``
per axis).
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.frontends.coreml.nn_indexing import flat_along
from kcc.ir import Value

SAMPLING_METHODS = ("STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE", "UPSAMPLE_MODE", "ROI_ALIGN_MODE")


def sampling_grid(size: int, n: int, method: str) -> np.ndarray:
    """The ``n`` grid points (float64) of ``method`` on an axis of ``size`` samples."""
    if method == "STRICT_ALIGN_ENDPOINTS_MODE":
        return np.linspace(0, size - 1, n)
    if method == "ALIGN_ENDPOINTS_MODE":
        return np.full(1, (size - 1) / 2) if n == 1 else np.linspace(0, size - 1, n)
    if method == "UPSAMPLE_MODE":
        return np.minimum(size - 1, np.linspace(0, size - size / n, n))
    spacing = max(1.0, size - 1) / n
    return np.minimum(size - 1, np.linspace(0.5 * spacing, 0.5 * spacing + (n - 1) * spacing, n))


def interpolate(ctx: NNLayerContext, x: Value, axis: int, grid: np.ndarray) -> Value:
    """``x`` linearly interpolated at the static points ``grid`` along ``axis``."""
    size = x.shape[axis]
    grid = np.clip(grid, 0, size - 1)
    i0 = np.floor(grid).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    frac = (grid - i0).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(x.rank)])
    lo = ctx.node("gather", [x, ctx.const(i0, "i0")], {"axis": axis})
    hi = ctx.node("gather", [x, ctx.const(i1, "i1")], {"axis": axis})
    return ctx.node("add", [ctx.node("mul", [lo, ctx.const(1 - frac, "w0")]),
                            ctx.node("mul", [hi, ctx.const(frac, "w1")])])


@nn_layer("resizeBilinear")
def _resize_bilinear(ctx: NNLayerContext) -> Value:
    p = ctx.params
    x = ctx.x if ctx.nd else ctx.as4(ctx.x)
    if x.rank < 2 or not all(isinstance(d, int) for d in x.shape[-2:]):
        raise ctx.unsupported(f"resizeBilinear of a blob of shape {list(x.shape)} (it needs a static H and W)")
    out_h, out_w = (list(p.targetSize) + [1, 1])[:2] if len(p.targetSize) else (1, 1)
    method = SAMPLING_METHODS[int(p.mode.samplingMethod)]
    h, w = x.shape[-2:]
    y = interpolate(ctx, x, x.rank - 2, sampling_grid(h, int(out_h), method))
    return interpolate(ctx, y, x.rank - 1, sampling_grid(w, int(out_w), method))


# ------------------------------------------------------------ cropResize
# BoxCoordinatesMode: the column order of (y0, x0, y1, x1) or (center y, center x, height, width).
_BOX_COLUMNS = {0: (0, 1, 2, 3), 1: (1, 0, 3, 2), 2: (0, 1, 2, 3), 3: (1, 0, 3, 2)}


@nn_layer("cropResize")
def _crop_resize(ctx: NNLayerContext) -> Value:
    """Each box of ``rois`` cut from the feature map and resampled to ``targetSize`` (bilinear).

    Inputs (ND blobs, static shapes): ``x`` ``[1, B, C, H, W]``, ``rois`` ``[N, 1, 4 or 5, 1, 1]`` (a
    first column is the box's batch index); output ``[N, B or 1, C, H_out, W_out]``. The boxes are
    run-time values, so the grid is computed in the graph: per axis, the box's start and extent
    ``X = end - start + 1`` give the SamplingMode points ``start + g(X)``, clipped to the map;
    then ``i0``, ``i1`` and the fraction as in :func:`interpolate`, gathered per box.
    """
    ctx.nd_only()
    p = ctx.params
    x, rois = ctx.inputs[:2]
    if x.rank != 5 or rois.rank != 5 or not all(isinstance(d, int) for d in (*x.shape, *rois.shape)) \
            or x.shape[0] != 1 or rois.shape[2] not in (4, 5):
        raise ctx.error(f"needs static inputs [1, Batch, C, H, W] and [N, 1, 4 or 5, 1, 1], got "
                        f"{list(x.shape)} and {list(rois.shape)}")
    n, k = rois.shape[0], rois.shape[2]
    _, batch, c, h, w = x.shape
    out_h, out_w = (int(d) for d in (list(p.targetSize) + [1, 1])[:2]) if len(p.targetSize) else (1, 1)
    method = SAMPLING_METHODS[int(p.mode.samplingMethod)]
    mode = int(p.boxIndicesMode.boxMode)
    boxes = ctx.node("reshape", [rois], {"shape": (n, k)})
    cols = ctx.node("gather", [boxes, ctx.const(np.asarray(_BOX_COLUMNS[mode], np.int64) + (k - 4), "cols")],
                    {"axis": 1})                                                     # (N, 4)
    if mode >= 2:   # center and size -> corners
        center = ctx.node("slice", [cols], {"starts": (0,), "ends": (2,), "axes": (1,), "steps": (1,)})
        half = ctx.node("mul", [ctx.node("slice", [cols], {"starts": (2,), "ends": (4,), "axes": (1,),
                                                           "steps": (1,)}), ctx.const(np.float32(0.5), "half")])
        cols = ctx.node("concat", [ctx.node("sub", [center, half]), ctx.node("add", [center, half])], {"axis": 1})
    scale = np.float32(p.spatialScale or 1.0) * (np.asarray([h - 1, w - 1, h - 1, w - 1], np.float32)
                                                  if p.normalizedCoordinates else np.ones(4, np.float32))
    cols = ctx.node("mul", [cols, ctx.const(scale.reshape(1, 4), "scale")])
    if k == 5:   # one image per box: [N, 1, C, H, W]
        index = ctx.node("cast", [ctx.node("slice", [boxes], {"starts": (0,), "ends": (1,), "axes": (1,),
                                                               "steps": (1,)})], {"to": "i64"})  # (N, 1)
        images = ctx.node("transpose", [ctx.node("gather", [x, index], {"axis": 1})], {"perm": (1, 2, 0, 3, 4, 5)})
        images = ctx.node("squeeze", [images], {"axes": (2,)})
    else:        # every image for every box: [N, B, C, H, W]
        images = ctx.node("tile", [x], {"repeats": (n, 1, 1, 1, 1)})
    y = _box_axis(ctx, images, cols, 0, out_h, method, 3)
    return _box_axis(ctx, y, cols, 1, out_w, method, 4)


def _box_axis(ctx: NNLayerContext, images: Value, cols: Value, which: int, out: int, method: str,
              axis: int) -> Value:
    """``images`` resampled along ``axis`` at each box's grid (box corners ``cols[:, which]``, ``[:, which + 2]``)."""
    def column(j: int) -> Value:
        return ctx.node("slice", [cols], {"starts": (j,), "ends": (j + 1,), "axes": (1,), "steps": (1,)})  # (N, 1)

    def c(v: float) -> Value:
        return ctx.const(np.float32(v), "c")

    start, end = column(which), column(which + 2)
    span = ctx.node("sub", [end, start])                                   # X - 1
    t = np.arange(out, dtype=np.float32).reshape(1, out)
    if method in ("STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE"):
        if out == 1:
            offset = ctx.node("mul", [span, c(0.5 if method == "ALIGN_ENDPOINTS_MODE" else 0.0)])
        else:
            offset = ctx.node("mul", [span, ctx.const(t / (out - 1), "steps")])
    elif method == "UPSAMPLE_MODE":
        extent = ctx.node("add", [span, c(1.0)])                          # X
        step = ctx.node("mul", [extent, c((1 - 1 / out) / (out - 1) if out > 1 else 0.0)])
        offset = ctx.node("min", [span, ctx.node("mul", [step, ctx.const(t, "t")])])
    else:   # ROI_ALIGN_MODE
        spacing = ctx.node("mul", [ctx.node("max", [span, c(1.0)]), c(1.0 / out)])
        offset = ctx.node("min", [span, ctx.node("mul", [spacing, ctx.const(t + 0.5, "t")])])
    size = images.shape[axis]
    grid = ctx.node("clip", [ctx.node("add", [start, offset])], {"min": 0.0, "max": float(size - 1)})  # (N, out)
    lower = ctx.node("floor", [grid])
    frac = ctx.node("sub", [grid, lower])
    i0 = ctx.node("cast", [lower], {"to": "i64"})
    i1 = ctx.node("min", [ctx.node("add", [i0, ctx.const(np.int64(1), "one")]), ctx.const(np.int64(size - 1), "last")])
    shape = [1] * images.rank
    shape[0], shape[axis] = images.shape[0], out
    target = list(images.shape)
    target[axis] = out
    zeros = ctx.const(np.zeros(target, np.int64), "zeros")
    flat = ctx.node("reshape", [images], {"shape": (-1,)})

    def take(index: Value) -> Value:
        full = ctx.node("add", [ctx.node("reshape", [index], {"shape": tuple(shape)}), zeros])
        return ctx.node("gather", [flat, flat_along(ctx, images, full, axis)], {"axis": 0})

    f = ctx.node("reshape", [frac], {"shape": tuple(shape)})
    lo = ctx.node("mul", [take(i0), ctx.node("sub", [c(1.0), f])])
    return ctx.node("add", [lo, ctx.node("mul", [take(i1), f])])
