"""Linear maps: ``dense`` (contracting the channel axis) and ``matmul`` (numpy's batched product)."""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.activation import FUSABLE, apply_activation
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import broadcast


@register_op
class Dense(OpDef):
    """y = x . w + b contracting axis 1 (the channel axis); w: (in, out), b: (out,).

    For rank-2 x this is the usual matrix product; for rank > 2 (a Keras Dense
    on a sequence or image) axis 1 holds the features in the IR layout.
    """

    name = "dense"
    inputs = ("x", "w", "b?")
    attrs = {"activation": Attr("str", "linear", FUSABLE)}

    def infer(self, attrs, x, w, b):
        if x.rank < 2 or w.rank != 2:
            raise IRError(f"dense needs x of rank >= 2 and a 2-D w, got {x.shape} and {w.shape}")
        if isinstance(x.shape[1], int) and x.shape[1] != w.shape[0]:
            raise IRError(f"dense input has {x.shape[1]} features, weights expect {w.shape[0]}")
        if b is not None and b.shape != (w.shape[1],):
            raise IRError(f"bias shape {b.shape} != ({w.shape[1]},)")
        return TensorType((x.shape[0], w.shape[1]) + x.shape[2:], x.dtype)

    def compute(self, attrs, x, w, b):
        y = np.moveaxis(np.tensordot(x, w, axes=([1], [0])), -1, 1)
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * (x.ndim - 2))
        return apply_activation(attrs["activation"], y.astype(x.dtype, copy=False))


@register_op
class MatMul(OpDef):
    """numpy matmul: batched over leading dims, contracting a's last and b's second-to-last."""

    name = "matmul"
    inputs = ("a", "b")

    def infer(self, attrs, a, b):
        if a.rank < 2 or b.rank < 2:
            raise IRError(f"matmul needs rank >= 2 operands, got {a.shape} and {b.shape}")
        ka, kb = a.shape[-1], b.shape[-2]
        if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
            raise IRError(f"matmul inner dims differ: {a.shape} x {b.shape}")
        batch = broadcast(a.shape[:-2], b.shape[:-2])
        return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)

    def compute(self, attrs, a, b):
        return np.matmul(a, b)
