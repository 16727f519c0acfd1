"""fold_pad_window: a zero ``pad`` of the spatial axes folds into the next conv's (or max_pool's) own padding.

Keras writes strided 'same' convolutions and pooling stems as ``ZeroPadding2D``
then a 'valid' window (ResNet, KerasHub backbones, MobileNet). A conv pads with
zeros itself, so the pad's amounts add to its ``pads`` exactly. A max_pool pads
with -inf, which equals a zero pad only when no input value is negative and
every window keeps at least one real element; the rule fires when the pad's
input comes from an op whose outputs are never negative (relu, relu6/clip with
a non-negative minimum, sigmoid, softmax, exp, ...) and each total padding is
smaller than the kernel.

Before::

    %relu: f32[N,8,13,11] = relu(%x)
    %pad: f32[N,8,15,13] = pad(%relu) {pads=(0, 0, 1, 1, 0, 0, 1, 1)}
    %pool: f32[N,8,7,6] = max_pool(%pad) {kernel=(3, 3), strides=(2, 2)}

After::

    %relu: f32[N,8,13,11] = relu(%x)
    %pool_1: f32[N,8,7,6] = max_pool(%relu) {kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)}

One node less on every target (onnxruntime fuses a conv's Pad itself, but not
the -0.0 pad ``lower_onnx_pad_max_pool`` writes before a max_pool, and that Pad
breaks its NCHWc chain). Not folded: a pad of the batch or channel axes, a
non-constant mode or a non-zero value, a window with ``auto_pad="same"``, an
avg_pool (its divisor would change), a max_pool whose input may be negative,
a pad read elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kcc.ir import Graph, Node, Value
from kcc.passes.base import RewritePass, register_pass
from kcc.pattern import RewriteRule

# Ops whose outputs are >= 0 for every input.
_NON_NEGATIVE = {"relu", "sigmoid", "hard_sigmoid", "softmax", "exp", "abs", "square", "softplus", "sqrt"}


def _non_negative(graph: Graph, x: Value) -> bool:
    node = graph.producer(x)
    if node is None:
        return False
    if node.op == "clip":
        return node.attrs["min"] >= 0
    if node.op in ("conv", "dense"):
        return node.attrs.get("activation") in _NON_NEGATIVE
    return node.op in _NON_NEGATIVE


def _spatial_pads(pad: Node, rank: int) -> tuple[int, ...] | None:
    """The pad's spatial begins then ends, or None when it pads the batch or channel axis."""
    p = pad.attrs["pads"]
    if any(p[i] or p[i + rank] for i in (0, 1)):
        return None
    return tuple(p[2:rank]) + tuple(p[rank + 2:])


def _summed(window: Node, extra: tuple[int, ...]) -> tuple[int, ...]:
    own = window.attrs["pads"] or (0,) * len(extra)
    return tuple(a + b for a, b in zip(own, extra))


def _check(graph: Graph, x: Value, pad: Node, window: Node, **_: Value) -> str | None:
    if pad.attrs["mode"] != "constant" or pad.attrs["value"] != 0.0 or math.copysign(1.0, pad.attrs["value"]) < 0:
        return "the pad is not a +0.0 constant pad"
    if window.attrs["auto_pad"] != "none":
        return f"the {window.op} pads 'same' at run time"
    extra = _spatial_pads(pad, x.rank)
    if extra is None:
        return "the pad pads the batch or channel axis"
    padded = pad.outputs[0].shape
    if any(d == "?" and s != "?" for d, s in zip(padded, x.shape)):
        # x:[N,6,T] pads to [N,6,?]: the window's output would change type.
        return "the pad turns a named dim into an unknown one"
    if window.op == "max_pool":
        if not _non_negative(graph, x):
            return "the max_pool's input may be negative (a zero pad is not its -inf padding)"
        kernel, total = window.attrs["kernel"], _summed(window, extra)
        n = len(kernel)
        if any(total[i] >= kernel[i] or total[i + n] >= kernel[i] for i in range(n)):
            return "a window would see padding only"
    return None


def _conv(op, x, w, b, pad, window):
    attrs = {**window.attrs, "pads": _summed(window, _spatial_pads(pad, x.rank))}
    return op.conv(x, w, b, **attrs)


def _max_pool(op, x, pad, window):
    return op.max_pool(x, **{**window.attrs, "pads": _summed(window, _spatial_pads(pad, x.rank))})


RULES = [
    RewriteRule("pad_conv", lambda op, x, w, b: op.conv(op.pad(x, _capture="pad"), w, b, _capture="window"),
                _conv, _check),
    RewriteRule("pad_conv_no_bias",
                lambda op, x, w: op.conv(op.pad(x, _capture="pad"), w, None, _capture="window"),
                lambda op, x, w, pad, window: _conv(op, x, w, None, pad, window), _check),
    RewriteRule("pad_max_pool", lambda op, x: op.max_pool(op.pad(x, _capture="pad"), _capture="window"),
                _max_pool, _check),
]


@register_pass
@dataclass
class FoldPadWindow(RewritePass):
    name = "fold_pad_window"
    after = ("fold_batchnorm",)
    rules = RULES
