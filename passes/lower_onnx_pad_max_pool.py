"""lower_onnx_pad_max_pool: pad with -0.0, not +0.0, in front of a max_pool (ONNX target).

A zero ``pad`` then ``max_pool`` is ResNet*V2's stem (``ZeroPadding2D`` then
``MaxPooling2D``). Emitted as it stands, ONNX ``Pad`` (constant 0) then ``MaxPool``
is correct, but onnxruntime's default graph optimizations break it: its
``PadFusion`` (onnxruntime/core/optimizer/pad_fusion.cc) deletes a constant ``Pad``
whose value is zero and adds its pads to the next Conv/MaxPool's ``pads``. MaxPool
pads with -inf, so a window whose real values are all negative then yields their
maximum instead of the padded 0 (ResNet50V2's stem output moves by 0.1 of its
magnitude under onnxruntime 1.31). It fuses through a ``Cast`` between the two as well.

``PadFusion::SatisfyCondition`` refuses (keeps the Pad) when any byte of the
Pad's ``constant_value`` initializer is non-zero: it tests the raw bytes
(``DataAsByteSpan()``, "byte != 0"), not the number. -0.0 has its sign bit set, so it is not fused; and for a maximum it is the same
number as +0.0 (IEEE 754: -0.0 == +0.0): every output equals Keras's, only an
output that is exactly zero may carry the sign bit, which only 1/x or copysign
could observe. The Pad and the MaxPool are the same two nodes as before, so it
costs no extra work. Checked on onnxruntime 1.31 for opsets 17-21
(tests/layers/test_layers_zero_padding_pooling.py). The alternatives are worse:
a Pad ``axes`` input (PadFusion refuses a Pad with more than 3 inputs) needs
Pad-18, not opset 17; leaving ``pads`` off the MaxPool is fused anyway by
onnxruntime 1.31; asking MaxPool for its ``Indices`` output (also refused)
computes indices nobody reads.

Before::

    %zero_padding2d/pad: f32[N,4,12,15] = pad(%conv) {pads=(0, 0, 1, 2, 0, 0, 2, 1)}
    %max_pooling2d/max_pool: f32[N,4,5,7] = max_pool(%zero_padding2d/pad) {kernel=(3, 3), strides=(2, 2)}

After::

    %zero_padding2d/pad_1: f32[N,4,12,15] = pad(%conv) {pads=(0, 0, 1, 2, 0, 0, 2, 1), value=-0}
    %max_pooling2d/max_pool_1: f32[N,4,5,7] = max_pool(%zero_padding2d/pad_1) {kernel=(3, 3), strides=(2, 2)}

(and the same through a ``cast`` between the pad and the max_pool).

Not rewritten: a pad whose mode is not constant or whose value is not +0.0
(onnxruntime does not fuse those, and a non-zero value already differs from
MaxPool's padding on purpose); an integer tensor (no -0; onnxruntime may still
fuse it); a pad with another reader (not fused by onnxruntime; the pattern
matcher skips it); a pad before avg_pool or conv (their padding is zeros, so
fusing is exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kcc.builder import GraphBuilder
from kcc.passes.base import RewritePass, register_pass
from kcc.pattern import RewriteRule


def _check(graph, x, pad, pool, cast=None):
    if pad.attrs["mode"] != "constant":
        return f"the pad's mode is {pad.attrs['mode']!r}, which onnxruntime does not fuse"
    value = pad.attrs["value"]
    if value != 0.0 or math.copysign(1.0, value) < 0:
        return f"the pad's value is {value!r}, not +0.0, which onnxruntime does not fuse"
    if not x.dtype.startswith("f"):
        return f"the pad's input is {x.dtype}, which has no -0.0"
    return None


def _negative_zero_pad(op, x, pad):
    """The same pad, filling with -0.0; the new node keeps the pad's layer as origin."""
    at = GraphBuilder(op.graph, origin=pad.origin, name=pad.origin)
    return at.pad(x, **{**pad.attrs, "value": -0.0})


def _rewrite(op, x, pad, pool):
    return op.max_pool(_negative_zero_pad(op, x, pad), **pool.attrs)


def _pattern_cast(op, x):
    return op.max_pool(op.cast(op.pad(x, _capture="pad"), _capture="cast"), _capture="pool")


def _rewrite_cast(op, x, pad, cast, pool):
    return op.max_pool(op.cast(_negative_zero_pad(op, x, pad), **cast.attrs), **pool.attrs)


def _pattern(op, x):
    return op.max_pool(op.pad(x, _capture="pad"), _capture="pool")


RULES = [
    RewriteRule("negative_zero_pad_before_max_pool", _pattern, _rewrite, _check),
    RewriteRule("negative_zero_pad_before_cast_max_pool", _pattern_cast, _rewrite_cast, _check),
]


@register_pass
@dataclass
class LowerOnnxPadMaxPool(RewritePass):
    name = "lower_onnx_pad_max_pool"
    rules = RULES
