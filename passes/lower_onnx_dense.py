"""lower_onnx_dense: a dense on a rank > 2 input -> a 1x1 conv (ONNX Gemm takes rank-2 inputs only).

The IR's dense contracts axis 1 (the features, channels-first), which is what
a 1x1 Conv computes, with no Transpose around it. The weights (in, out) become
(out, in, 1, ...): a new constant, or transpose + reshape nodes when they are
computed.

Before::

    %y: f32[N,6,5] = dense(%x, %w, %b)          // x: f32[N,4,5], w: f32[4,6]

After::

    %y: f32[N,6,5] = conv(%x, %w_1x1, %b)       // w_1x1: f32[6,4,1]

Not rewritten: rank-2 input (that is ONNX Gemm, one to one). A Keras Dense on a
sequence held in Keras order never gets here: sink_transposes made it a
``matmul`` (+ ``add``) on the last axis, ONNX MatMul and Add.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kcc.passes._onnx_lowering import OnnxLoweringPass, optional_inputs
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def _check(graph, x, root, **_):
    if x.rank == 2:
        return "a rank-2 dense is ONNX Gemm"
    return None


def _rewrite(op, x, w, root, b=None):
    ones = (1,) * (x.rank - 2)
    kernel_shape = tuple(w.shape[::-1]) + ones
    if w.is_const:
        wk = op.const(np.ascontiguousarray(w.const.T).reshape(kernel_shape), name=f"{w.name}_1x1")
    else:
        wk = op.reshape(op.transpose(w, perm=(1, 0)), shape=kernel_shape)
    return op.conv(x, wk, b, activation=root.attrs["activation"])


def _rule(with_bias: bool) -> RewriteRule:
    if with_bias:
        def pattern(op, x, w, b):
            return op.dense(x, w, b, _capture="root")
    else:
        def pattern(op, x, w):
            return op.dense(x, w, None, _capture="root")
    return RewriteRule(f"dense_{'bias' if with_bias else 'nobias'}_as_conv", pattern, _rewrite, _check)


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    return [_rule(bias) for (bias,) in optional_inputs(1)]


@register_pass
@dataclass
class LowerOnnxDense(OnnxLoweringPass):
    name = "lower_onnx_dense"
    after = ("fold_batchnorm", "fold_channel_affine", "fold_layout_reshape")
    rules_for = staticmethod(_rules)
