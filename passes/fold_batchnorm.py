"""fold_batchnorm: fold an inference BatchNorm into the conv, dense or conv_transpose before it.

With s = scale / sqrt(var + eps) per output channel:
w' = w * s (on the output-channel axis), b' = (b - mean) * s + bias.
Depthwise convolutions are ``conv`` with ``group`` = channels and fold the same
way; ``conv_transpose`` weights are (C, O/group, *K) and scale along their
output-channel axis within each group (see passes/_match.py).

Before::

    %conv: f32[N,32,26,26] = conv(%x, %w, %b)
    %bn: f32[N,32,26,26] = batch_norm(%conv, %gamma, %beta, %mean, %var) {epsilon=0.001}

After::

    %conv_1: f32[N,32,26,26] = conv(%x, %w_1, %conv_bias)

Not folded (the batch_norm stays, for the target's own BatchNormalization):
the producer has a fused activation (the norm would apply after it), its
weights or the norm's parameters are not constant, the producer's output has
another reader, or there is no such producer (a batch_norm on an input, after
a pooling, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ir import Graph
from kcc.passes.base import Pass, register_pass
from kcc.passes._batchnorm_rules import batchnorm_rules
from kcc.pattern import apply_rules


@register_pass
@dataclass
class FoldBatchNorm(Pass):
    name = "fold_batchnorm"
    after = ("fold_identity",)

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, batchnorm_rules())
