"""lower_attention: attention -> its formula, for targets with no fused attention (Core ML NeuralNetwork, Keras).

The formula is passes/_attention_rules.py's (the ONNX target lowers only below
opset 23, with lower_onnx_attention). Every attention node is rewritten.

Before::

    %y: f32[1,4,T,8] = attention(%q, %k, %v, %bias) {scale=0.3536}

After::

    %y = matmul(softmax(add(matmul(mul(%q, %scale), transpose(%k)), %bias)), %v)
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._attention_rules import attention_rules
from kcc.passes.base import RewritePass, register_pass


def _always(graph, q, k, v, root, bias=None):
    return None


@register_pass
@dataclass
class LowerAttention(RewritePass):
    name = "lower_attention"
    rules = attention_rules(_always)
