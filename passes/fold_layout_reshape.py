"""fold_layout_reshape: a Keras Reshape that keeps the channel axis last needs no transposes.

The frontend lowers ``Reshape`` in Keras order (to_keras transpose, reshape,
to_ir transpose). When the reshape leaves the last Keras axis (the channels)
alone -- ``(N, H, W, C) -> (N, H*W, C)``, ``(N, C) -> (N, 1, 1, C)`` -- row-major
order within each channel is unchanged, so the same reshape on the IR layout
``(N, C, H, W) -> (N, C, H*W)`` gives the same tensor.

Before::

    %t1: f32[N,7,7,64] = transpose(%x) {perm=(0, 2, 3, 1)}
    %r: f32[N,49,64] = reshape(%t1) {shape=(0, 49, 64)}
    %t2: f32[N,64,49] = transpose(%r) {perm=(0, 2, 1)}

After::

    %t2: f32[N,64,49] = reshape(%x) {shape=(0, 64, 49)}

Also folds ``reshape(reshape(x))`` into one reshape, and runs cancel_transposes'
rules alongside (a transpose moving only size-1 axes is a reshape), so MobileNet's
``GlobalAveragePooling2D -> Reshape((1, 1, C))`` ends as a single reshape.
Not folded: the channel dim changes, is unknown, or the batch dim is not kept.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.layout import to_ir_perm, to_keras_perm
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass
from kcc.passes._transpose_rules import RULES as TRANSPOSE_RULES


def _spec(shape: tuple, like: tuple) -> tuple[int, ...] | None:
    """Reshape spec for target ``shape`` from an input of shape ``like`` (0 copies, at most one -1)."""
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, int):
            out.append(d)
        elif i < len(like) and like[i] == d and d != "?":
            out.append(0)
        else:
            out.append(-1)
    return tuple(out) if out.count(-1) <= 1 else None


def _pattern_trt(op, x):
    return op.transpose(op.reshape(op.transpose(x, _capture="t1"), _capture="r"), _capture="t2")


def _check_trt(graph, x, t1, r, t2):
    y = t2.output
    if t1.attrs["perm"] != to_keras_perm(x.rank) or t2.attrs["perm"] != to_ir_perm(y.rank):
        return "the transposes are not the Keras layout round trip"
    c = x.shape[1]
    if not isinstance(c, int) or y.shape[1] != c:
        return "the reshape changes (or cannot prove it keeps) the channel axis"
    if x.shape[0] != y.shape[0]:
        return "the batch dim is not kept"
    if _spec(y.shape, x.shape) is None:
        return "more than one unknown dim"
    return None


def _rewrite_trt(op, x, t1, r, t2):
    return op.reshape(x, shape=_spec(t2.output.shape, x.shape))


def _pattern_rr(op, x):
    return op.reshape(op.reshape(x), _capture="r")


def _check_rr(graph, x, r):
    return None if _spec(r.output.shape, x.shape) is not None else "more than one unknown dim"


def _rewrite_rr(op, x, r):
    return op.reshape(x, shape=_spec(r.output.shape, x.shape))


RULES = [
    RewriteRule("layout_reshape", _pattern_trt, _rewrite_trt, _check_trt),
    RewriteRule("reshape_reshape", _pattern_rr, _rewrite_rr, _check_rr),
]


@register_pass
@dataclass
class FoldLayoutReshape(RewritePass):
    name = "fold_layout_reshape"
    after = ("fold_identity",)
    rules = RULES + TRANSPOSE_RULES
