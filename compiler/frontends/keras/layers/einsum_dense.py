"""EinsumDense: ``einsum(equation, x, kernel) + bias``, then the activation, as one batched matmul.

Keras accepts ``X,W->Y`` with an optional ``...`` at the start or the end of
``X`` and ``Y`` (keras/src/layers/core/einsum_dense.py). Every index of the
equation is one of:

* ``B`` shared: in ``X``, ``W`` and ``Y`` (a batch of independent products);
* ``F`` free input: in ``X`` and ``Y`` only (the batch, the sequence, the dims
  ``...`` stands for; these may be dynamic);
* ``K`` free kernel: in ``W`` and ``Y`` only (the new features, heads);
* ``C`` contracted: in ``X`` and ``W`` only;
* ``S`` summed: in ``X`` only (einsum sums it before anything else).

The layer is computed in Keras's order (the input goes through
``to_keras_layout``, the result through ``from_keras_layout``; the layout pass
cancels the round trips) as::

    x: transpose to (B, F, C), reshape to (B, F, prod C)
    kernel (a constant): transpose to (B, C, K), reshape to (B, 1.., prod C, prod K)
    y = matmul(x, kernel): (B, F, prod K); reshape to (B, F, K); transpose to Y's order
    y + bias (Keras's bias is aligned with Y's trailing axes), activation

The kernel gets ``len(F) - 1`` unit axes after ``B`` so the matmul broadcasts
over the free input dims without merging them: a dynamic batch and sequence
stay dims of their own, and every reshape is the static ``reshape`` op with 0
(copy the dim) at their places.
"""
from __future__ import annotations

import re
from math import prod
from typing import Sequence

import numpy as np

from kcc.frontends.keras.layers.common import activate
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value
from kcc.layout import keras_shape

_EQUATION = re.compile(r"^([a-zA-Z]*(?:\.\.\.)?[a-zA-Z]*),([a-zA-Z]+)->([a-zA-Z]*(?:\.\.\.)?[a-zA-Z]*)$")
_QUANTIZED = ("kernel_scale", "quantized_kernel", "kernel_zero")


def expand_equation(ctx: KerasLayerContext, equation: str, rank: int) -> tuple[str, str, str]:
    """``(x_spec, kernel_spec, out_spec)`` with ``...`` replaced by letters the equation does not use."""
    m = _EQUATION.match(equation.replace(" ", ""))
    if m is None:
        raise ctx.fail(f"equation {equation!r} is not of the form X,W->Y (with '...' at the start or end "
                       f"of X and Y), which is what Keras's EinsumDense accepts")
    xs, ks, ys = m.groups()
    if ("..." in xs) != ("..." in ys):
        raise ctx.fail(f"equation {equation!r}: '...' must appear in both the input and the output")
    if "..." in xs:
        n = rank - (len(xs) - 3)
        if n < 0:
            raise ctx.fail(f"equation {equation!r} names more axes than the input's rank {rank}")
        spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in equation][:n]
        xs, ys = xs.replace("...", "".join(spare)), ys.replace("...", "".join(spare))
    if len(xs) != rank:
        raise ctx.fail(f"equation {equation!r} names {len(xs)} input axes; the input has rank {rank}")
    for spec, what in ((xs, "input"), (ks, "kernel"), (ys, "output")):
        if len(set(spec)) != len(spec):
            raise ctx.fail(f"equation {equation!r}: a repeated index in the {what} ({spec!r}, a diagonal) "
                           f"is not supported")
    for c in ys:
        if c not in xs and c not in ks:
            raise ctx.fail(f"equation {equation!r}: output index {c!r} is in neither operand")
    for c in ks:
        if c not in xs and c not in ys:
            raise ctx.fail(f"equation {equation!r}: kernel index {c!r} is in neither the input nor the output")
    return xs, ks, ys


def _perm(src: str, dst: Sequence[str]) -> tuple[int, ...]:
    return tuple(src.index(c) for c in dst)


def _transpose(ctx: KerasLayerContext, v: Value, perm: tuple[int, ...]) -> Value:
    return v if perm == tuple(range(len(perm))) else ctx.op.transpose(v, perm=perm)


@keras_layer("EinsumDense")
def einsum_dense(ctx: KerasLayerContext, x: Value) -> Value:
    """See the module docstring: one matmul in Keras order between two layout transposes."""
    if any(ctx.has_weight(k) for k in _QUANTIZED):
        raise ctx.fail("a quantized EinsumDense (int8/int4/float8/GPTQ/AWQ) is not supported; convert the "
                       "float model (before layer.quantize(...))")
    xs, ks, ys = expand_equation(ctx, str(ctx.get("equation")), x.rank)
    kernel = ctx.weight("kernel").astype(np.float32)
    if kernel.ndim != len(ks):
        raise ctx.fail(f"kernel has shape {kernel.shape}, the equation's kernel {ks!r} has {len(ks)} axes")
    dims = dict(zip(xs, keras_shape(x)))
    for c, d in zip(ks, kernel.shape):
        if c in dims and isinstance(dims[c], int) and dims[c] != d:
            raise ctx.fail(f"index {c!r} is {dims[c]} in the input {keras_shape(x)} but {d} in the kernel "
                           f"{kernel.shape}")
    if xs[0] not in ys:
        raise ctx.fail(f"equation {ctx.get('equation')!r} contracts the batch axis; Keras's EinsumDense keeps it")

    y = ctx.to_keras_layout(x)
    summed = [c for c in xs if c not in ks and c not in ys]
    if summed:
        y = ctx.op.reduce_sum(y, axes=tuple(xs.index(c) for c in summed), keepdims=False)
        xs = "".join(c for c in xs if c not in summed)
    shared = [c for c in ys if c in xs and c in ks]
    free_x = [c for c in xs if c in ys and c not in ks]
    free_k = [c for c in ks if c in ys and c not in xs]
    contracted = [c for c in xs if c in ks and c not in ys]
    kdims = dict(zip(ks, kernel.shape))
    kept = len(shared) + len(free_x)                 # leading axes the reshapes copy (0)

    y = _transpose(ctx, y, _perm(xs, shared + free_x + contracted))
    if len(contracted) != 1:
        y = ctx.op.reshape(y, shape=(0,) * kept + (prod(kdims[c] for c in contracted),))
    w = np.transpose(kernel, _perm(ks, shared + contracted + free_k))
    w = w.reshape([kdims[c] for c in shared] + [1] * (len(free_x) - 1)
                  + [prod(kdims[c] for c in contracted), prod(kdims[c] for c in free_k)])
    # A rank-2 product is a Dense (Gemm / innerProduct); the rest are batched matmuls.
    y = ctx.op.dense(y, ctx.const(w, "kernel")) if y.rank == 2 and w.ndim == 2 else \
        ctx.op.matmul(y, ctx.const(w, "kernel"))
    if len(free_k) != 1:
        y = ctx.op.reshape(y, shape=(0,) * kept + tuple(kdims[c] for c in free_k))
    y = _transpose(ctx, y, _perm("".join(shared + free_x + free_k), ys))
    _check_output_shape(ctx, y)
    if ctx.get("bias_axes"):
        bias = ctx.weight("bias").astype(np.float32)
        y = ctx.op.add(y, ctx.const(bias.reshape((1,) * (y.rank - bias.ndim) + bias.shape), "bias"))
    return activate(ctx, ctx.from_keras_layout(y))


def _check_output_shape(ctx: KerasLayerContext, y: Value) -> None:
    """The config's ``output_shape`` (None = any) against the dims computed, for a file edited by hand."""
    want = ctx.get("output_shape")
    want = [want] if isinstance(want, int) else list(want or [])
    got = y.shape
    if not want or len(want) > len(got):
        return
    # Keras's output_shape omits the batch axis; with '...' at the end it also omits those trailing dims.
    for offset in range(1, len(got) - len(want) + 1):
        window = got[offset:offset + len(want)]
        if all(w is None or not isinstance(g, int) or w == g for w, g in zip(want, window)):
            return
    raise ctx.fail(f"its config's output_shape {tuple(want)} does not match the computed output {got[1:]}")
