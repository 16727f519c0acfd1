"""fold_flatten_transpose: fold the layout transpose before Flatten into Dense's weights.

Keras flattens channels-last tensors; the IR is channels-first, so the frontend
lowers Flatten as transpose-to-Keras-order then flatten. When the flattened
vector feeds a Dense with constant weights, permuting the weight rows gives the
same result without moving any data.

Before::

    %t: f32[N,5,5,64] = transpose(%pool) {perm=(0, 2, 3, 1)}
    %flat: f32[N,1600] = flatten(%t)
    %dense: f32[N,128] = dense(%flat, %w, %b)

After::

    %flat: f32[N,1600] = flatten(%pool)
    %dense: f32[N,128] = dense(%flat, %w', %b)     # %w' = %w with rows permuted

Not folded: the weights are not constant, the flattened value has another
reader, or the transpose moves the batch axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.ir import is_static
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _pattern(op, x, w, b):
    return op.dense(op.flatten(op.transpose(x, _capture="t"), axis=1), w, b, _capture="dense")


def _pattern_nobias(op, x, w):
    return op.dense(op.flatten(op.transpose(x, _capture="t"), axis=1), w, None, _capture="dense")


def _check(graph, x, w, t, dense, b=None):
    if not w.is_const:
        return "dense weights are not constant"
    if t.attrs["perm"][0] != 0:
        return "the transpose moves the batch axis"
    if not is_static(x.shape[1:]):
        return "the flattened dims are not static"
    return None


def _permuted_rows(x, w, t) -> np.ndarray:
    perm = t.attrs["perm"]
    inner = [p - 1 for p in perm[1:]]
    # Row k of w reads element idx[k] of flatten(x).
    idx = np.arange(int(np.prod(x.shape[1:]))).reshape(x.shape[1:]).transpose(inner).reshape(-1)
    out = np.empty_like(w.const)
    out[idx] = w.const
    return out


def _rewrite(op, x, w, t, dense, b=None):
    w2 = op.const(_permuted_rows(x, w, t), name=w.name)
    return op.dense(op.flatten(x, axis=1), w2, b, activation=dense.attrs["activation"])


RULES = [
    RewriteRule("flatten_transpose_dense", _pattern, _rewrite, _check),
    RewriteRule("flatten_transpose_dense_nobias", _pattern_nobias, _rewrite, _check),
]


@register_pass
@dataclass
class FoldFlattenTranspose(RewritePass):
    name = "fold_flatten_transpose"
    after = ("fold_identity",)
    rules = RULES
