"""lower_onnx_one_hot: one_hot with non-int64 indices -> a cast to int64 first.

onnxruntime implements ONNX OneHot for int64 indices (with float or int64
outputs), not int32 or int8 ones, so the emitted OneHot reads int64.

Before::

    %y: f32[N,5,4] = one_hot(%i) {depth=4, ...}       // i: i32[N,5]

After::

    %c: i64[N,5] = cast(%i) {to=i64}
    %y: f32[N,5,4] = one_hot(%c) {depth=4, ...}

Not rewritten: indices that are int64 already.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kcc.passes._onnx_lowering import OnnxLoweringPass
from kcc.pattern import RewriteRule
from kcc.passes.base import register_pass


def _check(graph, i, root):
    if i.dtype == "i64":
        return "the indices are int64, which onnxruntime's OneHot reads"
    return None


def _rewrite(op, i, root):
    return op.one_hot(op.cast(i, to="i64"), **root.attrs)


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    return [RewriteRule("one_hot_int64_indices", lambda op, i: op.one_hot(i, _capture="root"), _rewrite, _check)]


@register_pass
@dataclass
class LowerOnnxOneHot(OnnxLoweringPass):
    name = "lower_onnx_one_hot"
    rules_for = staticmethod(_rules)
