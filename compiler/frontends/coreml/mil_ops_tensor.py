"""MIL tensor ops -> IR: reshape, transpose, squeeze, expand_dims, concat, split,
stack, slicing, gather, pad, tile, cast, select, fill, shape, range_1d, classify.

Shape-valued operands (``shape``, ``reps``, ``begin`` ...) must be known at
conversion time; ``shape`` of a value with static dims folds to a constant, so
the shape arithmetic coremltools leaves behind folds away too.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.mil_registry import ClassLabel, MilOpContext, mil_op
from kcc.ir import DTYPES, Value
from kcc.training import Classifier

# MIL dtype names (cast's ``dtype`` operand) -> IR dtypes.
CAST_DTYPES = {"fp16": "f16", "fp32": "f32", "fp64": "f32", "int8": "i8", "uint8": "u8", "int16": "i32",
               "int32": "i32", "int64": "i64", "bool": "bool"}
_BIG = 2 ** 31 - 1


@mil_op("reshape")
def reshape(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    shape = ctx.ints("shape")
    return ctx.op.reshape(x, shape=shape)


@mil_op("transpose")
def transpose(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    perm = [p % x.rank for p in ctx.ints("perm")]
    return x if perm == list(range(x.rank)) else ctx.op.transpose(x, perm=perm)


@mil_op("squeeze")
def squeeze(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    if ctx.has("axes"):
        axes = [a % x.rank for a in ctx.ints("axes")]
    else:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    return ctx.op.squeeze(x, axes=axes) if axes else x


@mil_op("expand_dims")
def expand_dims(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    out_rank = x.rank + len(ctx.ints("axes"))
    return ctx.op.unsqueeze(x, axes=sorted(a % out_rank for a in ctx.ints("axes")))


@mil_op("flatten2d")
def flatten2d(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.flatten(x, axis=int(ctx.scalar("axis", 1)) % (x.rank + 1))


@mil_op("concat")
def concat(ctx: MilOpContext) -> Value:
    xs = ctx.values("values")
    axis = int(ctx.scalar("axis")) % xs[0].rank
    if bool(ctx.scalar("interleave", False)):
        raise ctx.fail("concat with interleave=True is not supported by kcc")
    return xs[0] if len(xs) == 1 else ctx.op.concat(*xs, axis=axis)


@mil_op("stack")
def stack(ctx: MilOpContext) -> Value:
    xs = ctx.values("values")
    axis = int(ctx.scalar("axis", 0)) % (xs[0].rank + 1)
    parts = [ctx.op.unsqueeze(x, axes=[axis]) for x in xs]
    return parts[0] if len(parts) == 1 else ctx.op.concat(*parts, axis=axis)


@mil_op("split")
def split(ctx: MilOpContext):
    x = ctx.value("x")
    axis = int(ctx.scalar("axis")) % x.rank
    if ctx.has("split_sizes"):
        sizes = ctx.ints("split_sizes")
    else:
        n = int(ctx.scalar("num_splits"))
        d = x.shape[axis]
        if not isinstance(d, int):
            raise ctx.fail("split into num_splits of an unknown dim; give the input a fixed shape")
        sizes = [-(-d // n)] * (n - 1)
        sizes.append(d - sum(sizes))
    outs = ctx.op.split(x, axis=axis, sizes=sizes)
    return outs if isinstance(outs, tuple) else (outs,)


def _mask(ctx: MilOpContext, param: str, rank: int) -> list[bool]:
    if not ctx.has(param):
        return [False] * rank
    return [bool(b) for b in np.asarray(ctx.const(param)).reshape(-1)]


@mil_op("slice_by_index")
def slice_by_index(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    r = x.rank
    begin, end = ctx.ints("begin"), ctx.ints("end")
    stride = ctx.ints("stride", [1] * r)
    bmask, emask, squeeze_mask = _mask(ctx, "begin_mask", r), _mask(ctx, "end_mask", r), _mask(ctx, "squeeze_mask", r)
    starts, ends, axes, steps = [], [], [], []
    for i in range(r):
        s, e, st = begin[i], end[i], stride[i]
        if bmask[i]:
            s = 0 if st > 0 else _BIG
        if emask[i]:
            e = _BIG if st > 0 else -_BIG
        if squeeze_mask[i]:
            e = s + 1 if s != -1 else _BIG
            st = 1
        if (s, e, st) in ((0, _BIG, 1),) or (isinstance(x.shape[i], int) and st == 1 and s == 0 and e >= x.shape[i]):
            continue
        starts.append(s), ends.append(e), axes.append(i), steps.append(st)
    y = ctx.op.slice(x, starts=starts, ends=ends, axes=axes, steps=steps) if axes else x
    sq = [i for i in range(r) if squeeze_mask[i]]
    return ctx.op.squeeze(y, axes=sq) if sq else y


@mil_op("slice_by_size")
def slice_by_size(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    begin, size = ctx.ints("begin"), ctx.ints("size")
    starts, ends, axes = [], [], []
    for i, (b, s) in enumerate(zip(begin, size)):
        e = _BIG if s == -1 else b + s
        if b == 0 and (s == -1 or s == x.shape[i]):
            continue
        starts.append(b), ends.append(e), axes.append(i)
    return ctx.op.slice(x, starts=starts, ends=ends, axes=axes) if axes else x


@mil_op("reverse")
def reverse(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    axes = [a % x.rank for a in ctx.ints("axes", list(range(x.rank)))]
    return ctx.op.slice(x, starts=[-1] * len(axes), ends=[-_BIG] * len(axes), axes=axes, steps=[-1] * len(axes))


def _indices(ctx: MilOpContext, param: str) -> Value:
    v = ctx.value(param)
    return v if v.dtype in ("i32", "i64") else ctx.op.cast(v, to="i32")


@mil_op("gather")
def gather(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    if int(ctx.scalar("batch_dims", 0)) != 0:
        raise ctx.fail("gather with batch_dims != 0 is not supported by kcc")
    return ctx.op.gather(x, _indices(ctx, "indices"), axis=int(ctx.scalar("axis", 0)) % x.rank)


@mil_op("gather_along_axis")
def gather_along_axis(ctx: MilOpContext) -> Value:
    """y[i0..., j, ...] = x[i0..., idx[i0..., j, ...], ...] as one flat gather (static shapes).

    The flat index is ``base + idx * stride(axis)``, ``base`` being the flat
    offset of every position with its ``axis`` coordinate zeroed.
    """
    x, idx = ctx.value("x"), _indices(ctx, "indices")
    axis = int(ctx.scalar("axis", 0)) % x.rank
    if not all(isinstance(d, int) for d in x.shape + idx.shape):
        raise ctx.fail("gather_along_axis needs static shapes; give the input a fixed shape")
    strides = np.cumprod((x.shape[1:] + (1,))[::-1])[::-1].astype(np.int64)
    grid = np.indices(idx.shape, dtype=np.int64)
    grid[axis] = 0
    base = np.tensordot(strides, grid, axes=1).astype(DTYPES[idx.dtype])
    size = ctx.like(x.shape[axis], idx)
    # Negative indices count from the end of the axis.
    wrapped = ctx.op.where(ctx.op.less(idx, ctx.like(0, idx)), ctx.op.add(idx, size), idx)
    flat_idx = ctx.op.add(ctx.op.mul(wrapped, ctx.like(int(strides[axis]), idx)), ctx.op.const(base))
    return ctx.op.gather(ctx.op.reshape(x, shape=[-1]), flat_idx, axis=0)


@mil_op("pad")
def pad(ctx: MilOpContext) -> Value:
    """MIL lists (begin, end) pairs for the last len(pad)/2 axes."""
    x = ctx.value("x")
    p = ctx.ints("pad")
    k = len(p) // 2
    begins = [0] * (x.rank - k) + p[0::2]
    ends = [0] * (x.rank - k) + p[1::2]
    mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(str(ctx.scalar("mode", "constant")))
    if mode is None:
        raise ctx.fail(f"pad mode {ctx.scalar('mode')!r} is not supported by kcc (constant, reflect, replicate)")
    if not any(begins + ends):
        return x
    return ctx.op.pad(x, pads=begins + ends, mode=mode, value=float(ctx.scalar("constant_val", 0.0)))


@mil_op("tile")
def tile(ctx: MilOpContext) -> Value:
    return ctx.op.tile(ctx.value("x"), repeats=ctx.ints("reps"))


@mil_op("cast")
def cast(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    name = str(ctx.scalar("dtype"))
    if name not in CAST_DTYPES:
        raise ctx.fail(f"cast to {name!r} is not supported by kcc")
    to = CAST_DTYPES[name]
    return x if to == x.dtype else ctx.op.cast(x, to=to)


@mil_op("select")
def select(ctx: MilOpContext) -> Value:
    cond = ctx.value("cond")
    if cond.dtype != "bool":
        cond = ctx.op.cast(cond, to="bool")
    return ctx.op.where(cond, ctx.value("a"), ctx.value("b"))


@mil_op("fill")
def fill(ctx: MilOpContext):
    shape = ctx.ints("shape")
    value = ctx.scalar("value", 0.0)
    want = ctx.out_type(0)
    dtype = DTYPES[want.dtype] if want is not None else np.float32
    return np.full(shape, value, dtype=dtype)


@mil_op("shape")
def shape(ctx: MilOpContext):
    x = ctx.value("x")
    if not all(isinstance(d, int) for d in x.shape):
        raise ctx.fail(f"shape of a value with unknown dims {list(x.shape)}: kcc needs static shapes here; "
                       f"give the inputs fixed shapes (input_name_shape_dict)")
    want = ctx.out_type(0)
    return np.asarray(x.shape, dtype=DTYPES[want.dtype] if want is not None else np.int32)


@mil_op("range_1d")
def range_1d(ctx: MilOpContext):
    start, end, step = ctx.scalar("start"), ctx.scalar("end"), ctx.scalar("step")
    want = ctx.out_type(0)
    return np.arange(start, end, step).astype(DTYPES[want.dtype] if want is not None else np.float32)


@mil_op("classify")
def classify(ctx: MilOpContext):
    """(label, probabilities): the label is resolved by the runtime; the probabilities stay a tensor."""
    probs = ctx.value("probabilities")
    labels = ctx.const("classes")
    labels = [x.item() if hasattr(x, "item") else x for x in np.asarray(labels).reshape(-1)]
    label = ClassLabel(probs, labels)
    names = [o.name for o in ctx.operation.outputs]
    ctx.importer.classifier = Classifier(labels, label_output=names[0], probabilities_output=names[1])
    return label, probs


@mil_op("cumsum")
def cumsum(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    return ctx.op.cumsum(x, axis=int(ctx.scalar("axis", 0)) % x.rank, exclusive=bool(ctx.scalar("exclusive", False)),
                         reverse=bool(ctx.scalar("reverse", False)))


@mil_op("non_zero")
def non_zero(ctx: MilOpContext) -> Value:
    """The (count, rank) indices of the non-zero entries; the count is known only at run time."""
    idx = ctx.op.nonzero(ctx.value("x"))
    want = ctx.out_type(0)
    return ctx.op.cast(idx, to=want.dtype) if want is not None and want.dtype != idx.dtype else idx


@mil_op("one_hot")
def one_hot(ctx: MilOpContext) -> Value:
    idx = _indices(ctx, "indices")
    want = ctx.out_type(0)
    return ctx.op.one_hot(idx, depth=int(ctx.scalar("one_hot_vector_size")), axis=int(ctx.scalar("axis", -1)),
                          on_value=float(ctx.scalar("on_value", 1.0)), off_value=float(ctx.scalar("off_value", 0.0)),
                          dtype=want.dtype if want is not None else "f32")


def _static_nchw(ctx: MilOpContext, x: Value) -> tuple:
    if x.rank != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ctx.fail(f"needs a rank-4 input with static C, H, W, got {x.type}")
    return x.shape


@mil_op("depth_to_space")
def depth_to_space(ctx: MilOpContext) -> Value:
    """DCR order (TensorFlow's): (N, C, H, W) -> (N, C/b², H*b, W*b), block row-major over the channels."""
    x = ctx.value("x")
    n, c, h, w = _static_nchw(ctx, x)
    b = int(ctx.scalar("block_size"))
    y = ctx.op.reshape(x, shape=[0, b, b, c // (b * b), h, w])
    y = ctx.op.transpose(y, perm=[0, 3, 4, 1, 5, 2])
    return ctx.op.reshape(y, shape=[0, c // (b * b), h * b, w * b])


@mil_op("space_to_depth")
def space_to_depth(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    n, c, h, w = _static_nchw(ctx, x)
    b = int(ctx.scalar("block_size"))
    y = ctx.op.reshape(x, shape=[0, c, h // b, b, w // b, b])
    y = ctx.op.transpose(y, perm=[0, 3, 5, 1, 2, 4])
    return ctx.op.reshape(y, shape=[0, c * b * b, h // b, w // b])


@mil_op("pixel_shuffle")
def pixel_shuffle(ctx: MilOpContext) -> Value:
    """CRD order (PyTorch's): (N, C*r², H, W) -> (N, C, H*r, W*r)."""
    x = ctx.value("x")
    n, c, h, w = _static_nchw(ctx, x)
    r = int(ctx.scalar("upscale_factor"))
    y = ctx.op.reshape(x, shape=[0, c // (r * r), r, r, h, w])
    y = ctx.op.transpose(y, perm=[0, 1, 4, 2, 5, 3])
    return ctx.op.reshape(y, shape=[0, c // (r * r), h * r, w * r])


@mil_op("pixel_unshuffle")
def pixel_unshuffle(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    n, c, h, w = _static_nchw(ctx, x)
    r = int(ctx.scalar("downscale_factor"))
    y = ctx.op.reshape(x, shape=[0, c, h // r, r, w // r, r])
    y = ctx.op.transpose(y, perm=[0, 1, 3, 5, 2, 4])
    return ctx.op.reshape(y, shape=[0, c * r * r, h // r, w // r])


@mil_op("band_part")
def band_part(ctx: MilOpContext) -> Value:
    """Keep the band lower <= (j - i) <= upper of the last two axes (negative = unbounded): a constant mask."""
    x = ctx.value("x")
    rows, cols = x.shape[-2], x.shape[-1]
    if not (isinstance(rows, int) and isinstance(cols, int)):
        raise ctx.fail("band_part needs static sizes on the last two axes")
    lower, upper = int(ctx.scalar("lower", -1)), int(ctx.scalar("upper", -1))
    i, j = np.indices((rows, cols))
    keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
    return ctx.op.where(ctx.op.const(keep), x, ctx.like(0, x))


@mil_op("crop")
def crop(ctx: MilOpContext) -> Value:
    x = ctx.value("x")
    top, bottom = ctx.ints("crop_height", [0, 0])
    left, right = ctx.ints("crop_width", [0, 0])
    h, w = x.shape[-2], x.shape[-1]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise ctx.fail("crop needs static height and width")
    return ctx.op.slice(x, starts=[top, left], ends=[h - bottom, w - right], axes=[x.rank - 2, x.rank - 1])
