"""lower_onnx_attention: attention below ONNX opset 23 (no Attention op) -> its formula.

At opset 23 and later the op stays whole and the emitter writes ONNX
``Attention`` (4-D form, the bias as a float ``attn_mask``). Below, it becomes
mul/matmul/add/softmax/matmul (passes/_attention_rules.py), grouped key/value
heads first repeated to the query heads.

Before::

    %y: f32[N,4,T,8] = attention(%q, %k, %v, %bias) {scale=0.3536}

After (opset < 23)::

    %qs = mul(%q, %scale)
    %kt = transpose(%k) {perm=(0, 1, 3, 2)}
    %s = matmul(%qs, %kt)
    %sb = add(%s, %bias)
    %p = softmax(%sb) {axis=3}
    %y = matmul(%p, %v)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kcc.passes._attention_rules import attention_rules
from kcc.passes._onnx_lowering import OnnxLoweringPass, native_reason
from kcc.passes.base import register_pass
from kcc.pattern import RewriteRule


@lru_cache(maxsize=None)
def _rules(opset: int) -> list[RewriteRule]:
    def check(graph, q, k, v, root, bias=None):
        return native_reason("attention", opset)
    return attention_rules(check)


@register_pass
@dataclass
class LowerOnnxAttention(OnnxLoweringPass):
    name = "lower_onnx_attention"
    rules_for = staticmethod(_rules)
