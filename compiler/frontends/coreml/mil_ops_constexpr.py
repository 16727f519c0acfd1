"""MIL ``constexpr_*`` ops: compressed weights decompressed at import.

Their operands are constants, so each handler returns a numpy array and the
weight enters the IR dense (the targets kcc emits have no such ops). Formulas
follow the op definitions in coremltools (iOS16 ``constexpr_ops``, iOS18
``compression``):

* ``constexpr_affine_dequantize``: ``(q - zero_point) * scale``, zero point and
  scale scalars or vectors along ``axis``;
* ``constexpr_blockwise_shift_scale`` (iOS18): ``scale * (data - offset)``, with
  scale/offset repeated blockwise to data's shape;
* ``constexpr_lut_to_dense``: iOS16 packs ``indices`` into bytes and has a flat
  ``lut``; iOS18 gives a uintN ``indices`` tensor and a per-block ``lut``
  ``(blocks..., palette, vector_size)``;
* ``constexpr_sparse_to_dense``: ``nonzero_data`` at the set bits of ``mask``
  (iOS16: packed bytes plus ``shape``; iOS18: a uint1 tensor);
* ``constexpr_cast``: a dtype change.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.blob import unpack_bits
from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.frontends.coreml.mil_ops_tensor import CAST_DTYPES
from kcc.ir import DTYPES


def _along(v: np.ndarray, axis: int, rank: int) -> np.ndarray:
    v = np.asarray(v)
    if v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[axis] = -1
    return v.reshape(shape)


@mil_op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(ctx: MilOpContext) -> np.ndarray:
    q = np.asarray(ctx.const("quantized_data"))
    zp, scale = np.asarray(ctx.const("zero_point")), np.asarray(ctx.const("scale"))
    axis = int(ctx.scalar("axis", 0)) % max(q.ndim, 1)
    out = (q.astype(np.float32) - _along(zp, axis, q.ndim).astype(np.float32)) * _along(scale, axis, q.ndim)
    return out.astype(scale.dtype)


def _blockwise(v: np.ndarray, shape: tuple[int, ...], ctx: MilOpContext, what: str) -> np.ndarray:
    if v.ndim != len(shape) or any(d % s for d, s in zip(shape, v.shape)):
        raise ctx.fail(f"{what} of shape {list(v.shape)} does not tile data of shape {list(shape)}")
    for axis, (d, s) in enumerate(zip(shape, v.shape)):
        if d != s:
            v = np.repeat(v, d // s, axis=axis)
    return v


@mil_op("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(ctx: MilOpContext) -> np.ndarray:
    data = np.asarray(ctx.const("data"))
    scale = np.asarray(ctx.const("scale"))
    out = data.astype(scale.dtype)
    if ctx.has("offset"):
        out = out - _blockwise(np.asarray(ctx.const("offset")).astype(scale.dtype), data.shape, ctx, "offset")
    return (_blockwise(scale, data.shape, ctx, "scale") * out).astype(scale.dtype)


@mil_op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(ctx: MilOpContext) -> np.ndarray:
    lut = np.asarray(ctx.const("lut"))
    indices = np.asarray(ctx.const("indices"))
    if ctx.has("shape"):  # iOS16: flat lut of 2**nbits entries, indices packed into bytes
        shape = tuple(ctx.ints("shape"))
        nbits = int(np.log2(lut.size))
        count = int(np.prod(shape))
        flat = unpack_bits(indices.reshape(-1).astype(np.uint8), nbits, count, signed=False)
        return lut.reshape(-1)[flat.astype(np.int64)].reshape(shape)
    # iOS18: lut (blocks..., palette, vector_size) with one block dim per indices dim.
    if lut.ndim != indices.ndim + 2:
        raise ctx.fail(f"lut of rank {lut.ndim} does not fit indices of rank {indices.ndim}")
    if lut.shape[-1] != 1:
        raise ctx.fail("vector palettization (lut vector_size > 1) is not supported by kcc")
    table = _blockwise(lut[..., 0], indices.shape + (lut.shape[-2],), ctx, "lut")
    return np.take_along_axis(table, indices.astype(np.int64)[..., None], axis=-1)[..., 0]


@mil_op("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(ctx: MilOpContext) -> np.ndarray:
    data = np.asarray(ctx.const("nonzero_data")).reshape(-1)
    mask = np.asarray(ctx.const("mask"))
    if ctx.has("shape"):  # iOS16: mask packed into bytes, least significant bit first
        shape = tuple(ctx.ints("shape"))
        bits = np.unpackbits(mask.reshape(-1).astype(np.uint8), bitorder="little")[: int(np.prod(shape))]
    else:
        shape, bits = mask.shape, mask.reshape(-1)
    where = np.flatnonzero(bits)
    if where.size != data.size:
        raise ctx.fail(f"mask has {where.size} set bits but nonzero_data holds {data.size} values")
    out = np.zeros(int(np.prod(shape)), dtype=data.dtype)
    out[where] = data
    return out.reshape(shape)


@mil_op("constexpr_cast")
def constexpr_cast(ctx: MilOpContext) -> np.ndarray:
    name = str(ctx.scalar("output_dtype"))
    if name not in CAST_DTYPES:
        raise ctx.fail(f"constexpr_cast to {name!r} is not supported by kcc")
    return np.asarray(ctx.const("source_val")).astype(DTYPES[CAST_DTYPES[name]])

