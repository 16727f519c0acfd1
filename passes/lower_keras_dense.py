"""lower_keras_dense: matmul by a constant matrix (plus a constant bias) -> dense, Keras's Dense layer.

ONNX files from PyTorch and tf2onnx often spell a Dense as MatMul + Add; as a
``dense`` node it becomes one trainable Keras ``Dense`` layer with its bias
instead of a ``keras.ops.matmul`` on a frozen constant.

Before::

    %m: f32[N,10] = matmul(%x, %w)              // w: const f32[128,10]
    %y: f32[N,10] = add(%m, %b)                 // b: const f32[10]

After::

    %y: f32[N,10] = dense(%x, %w, %b)

Not rewritten: x of rank other than 2 (the IR's dense contracts axis 1, matmul
the last axis), a computed w, a bias that is not a constant vector of the
output width.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes.base import RewritePass, register_pass
from kcc.pattern import RewriteRule


def _check(graph, x, w, b=None, **_):
    if x.rank != 2:
        return f"matmul of a rank-{x.rank} input contracts its last axis, dense its axis 1"
    if not w.is_const or w.rank != 2:
        return "the weight matrix is not a constant"
    if b is not None and (not b.is_const or b.shape != (w.shape[1],)):
        return f"the addend {b.shape} is not a constant bias of width {w.shape[1]}"
    return None


def _with_bias(op, x, w, b):
    return op.add(op.matmul(x, w), b)


def _no_bias(op, x, w):
    return op.matmul(x, w)


def _dense_add(op, x, w, b):
    return op.add(op.dense(x, w, None, _capture="root"), b)


def _check_bias(graph, x, w, b, root=None, **_):
    return _check(graph, x, w, b) or (None if root is None or root.attrs["activation"] == "linear"
                                      else "the dense carries an activation")


RULES = [
    RewriteRule("dense_add_bias", _dense_add, lambda op, x, w, b, root=None: op.dense(x, w, b), _check_bias),
    RewriteRule("matmul_add_as_dense", _with_bias, lambda op, x, w, b: op.dense(x, w, b), _check),
    RewriteRule("matmul_as_dense", _no_bias, lambda op, x, w: op.dense(x, w), _check),
]


@register_pass
@dataclass
class LowerKerasDense(RewritePass):
    name = "lower_keras_dense"
    after = ("fold_channel_affine",)
    rules = RULES
