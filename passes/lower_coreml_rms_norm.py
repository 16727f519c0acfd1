"""lower_coreml_rms_norm: rms_norm -> its formula (NeuralNetwork has no RMS normalization layer).

Core ML lowering. ``layerNormalization`` and ``mvn`` subtract the mean, so no
layer computes ``x / sqrt(mean(x^2) + eps)``; the formula is written in IR
ops (passes/_rms_norm_rules.py), each one Core ML layer.

Before::

    %y: f32[N,6] = rms_norm(%x, %scale) {axes=(1,), epsilon=1e-06}

After::

    %sq = mul(%x, %x)
    %ms = reduce_mean(%sq) {axes=(1,), keepdims=True}
    %mse = add(%ms, %eps)
    %rms = sqrt(%mse)
    %n = div(%x, %rms)
    %y = mul(%n, %scale_b)        // scale reshaped to (1, 6)

Not rewritten: nothing (every rms_norm is lowered).
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes._rms_norm_rules import rms_norm_rules
from kcc.passes.base import RewritePass, register_pass


def _always(graph, x, root, scale=None):
    return None


@register_pass
@dataclass
class LowerCoremlRmsNorm(RewritePass):
    name = "lower_coreml_rms_norm"
    after = ("fuse_square",)
    rules = rms_norm_rules(_always)
