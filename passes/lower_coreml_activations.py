"""lower_coreml_activations: activations NeuralNetwork has no layer for, spelled with ones it has.

Core ML lowering (the Core ML target runs it after the standard pipeline). The
``ActivationParams`` variants (kcc.formats.coreml_layers.ACTIVATIONS) cover
relu, leaky_relu, elu, sigmoid, tanh, hard_sigmoid, ...; these IR ops have none
and become the products the old emitter wrote as several layers, now visible
to ``--dump-ir`` and ``--verify-each``. Every rule keeps the specification-1
form (so an activation never forces the ND layout). Constants come from the
op declarations (kcc.ops.activation).

=================  ==========================================  ========================================
IR op              fires because                               becomes
=================  ==========================================  ========================================
selu               no SELU variant (ELU and linear exist)      mul(elu(x, alpha=SELU_ALPHA), SELU_SCALE)
silu               no SiLU variant                             mul(x, sigmoid(x))
hard_silu          no hard-swish variant                       mul(x, hard_sigmoid(x))
mish               no mish variant                             mul(x, tanh(softplus(x)))
clip               no clip layer before spec 4 (ReLU and       relu / max(x, lo), then neg(max(neg(y), -hi))
                   unary THRESHOLD = max(x, alpha) exist)
log_softmax        no log-softmax layer                        log(softmax(x))
prelu              ActivationPReLU's alpha is per channel      relu(x) + relu(neg(x)) * (-slope)
                   (axis -3) or one value; this slope varies
                   along other axes
=================  ==========================================  ========================================

Before::

    %y: f32[N,10] = selu(%x)

After::

    %elu: f32[N,10] = elu(%x) {alpha=1.67326}
    %y: f32[N,10] = mul(%elu, %scale)

Each rule's check fires unless kcc.formats.coreml_layers maps the op to a
layer (``layer_for``): a row added there is all it takes to stop a lowering.

Not lowered: a prelu whose slope is one value or per channel (ActivationPReLU
holds it), a prelu with a computed slope (the emitter reports it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kcc.formats.coreml_layers import layer_for
from kcc.ops.activation import SELU_ALPHA, SELU_SCALE
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _f32(op, x, value: float):
    return op.const(np.asarray(value, dtype=np.float32))


def _selu(op, x, root):
    return op.mul(op.elu(x, alpha=SELU_ALPHA), _f32(op, x, SELU_SCALE))


def _silu(op, x, root):
    return op.mul(x, op.sigmoid(x))


def _hard_silu(op, x, root):
    return op.mul(x, op.hard_sigmoid(x))   # the op's declared defaults: alpha 1/6, beta 1/2


def _mish(op, x, root):
    return op.mul(x, op.tanh(op.softplus(x)))


def _log_softmax(op, x, root):
    return op.log(op.softmax(x, axis=root.attrs["axis"]))


def _clip(op, x, root):
    """max(x, lo) (ReLU when lo is 0), then min(y, hi) as -max(-y, -hi)."""
    lo, hi = root.attrs["min"], root.attrs["max"]
    y = x
    if math.isfinite(lo):
        y = op.relu(y) if lo == 0.0 else op.max(y, _f32(op, x, lo))
    if math.isfinite(hi):
        y = op.neg(op.max(op.neg(y), _f32(op, x, -hi)))
    if y is x:
        y = op.identity(x)
    return y


def _check_clip(graph, x, root):
    """Fires for float tensors: the clip layer needs specification 4; ReLU and THRESHOLD keep specification 1."""
    if not x.dtype.startswith("f"):
        return f"clip of {x.dtype}: the lowering is for float tensors"
    return _no_layer(graph, x, root)


def prelu_slope_fits_layer(slope: np.ndarray, rank: int) -> bool:
    """ActivationPReLU holds the slope: one value, or one per channel (IR axis 1, rank >= 2)."""
    s = np.asarray(slope)
    s = s.reshape((1,) * max(rank - s.ndim, 0) + s.shape)
    if s.size == 1:
        return True
    return s.ndim >= 2 and s.shape[0] == 1 and all(d == 1 for d in s.shape[2:])


def _prelu(op, x, slope, root):
    s = np.asarray(slope.const, dtype=np.float32)
    negative_part = op.relu(op.neg(x))                           # -min(x, 0)
    return op.add(op.relu(x), op.mul(negative_part, op.const(-s)))


def _check_prelu(graph, x, slope, root):
    if not slope.is_const:
        return "the slope is computed (no Core ML form; the emitter reports it)"
    if prelu_slope_fits_layer(slope.const, x.rank):
        return "the slope is one value or per channel: ActivationPReLU holds it"
    return None


def _no_layer(graph, x, root):
    """Fires unless the Core ML table (kcc.formats.coreml_layers) has a layer for the op."""
    layer = layer_for(root.op)
    return f"Core ML has the {layer} layer for {root.op}" if layer else None


RULES = [
    RewriteRule("selu", lambda op, x: op.selu(x, _capture="root"), _selu, _no_layer),
    RewriteRule("silu", lambda op, x: op.silu(x, _capture="root"), _silu, _no_layer),
    RewriteRule("hard_silu", lambda op, x: op.hard_silu(x, _capture="root"), _hard_silu, _no_layer),
    RewriteRule("mish", lambda op, x: op.mish(x, _capture="root"), _mish, _no_layer),
    RewriteRule("log_softmax", lambda op, x: op.log_softmax(x, _capture="root"), _log_softmax, _no_layer),
    RewriteRule("clip", lambda op, x: op.clip(x, _capture="root"), _clip, _check_clip),
    RewriteRule("prelu", lambda op, x, slope: op.prelu(x, slope, _capture="root"), _prelu, _check_prelu),
]


@register_pass
@dataclass
class LowerCoremlActivations(RewritePass):
    name = "lower_coreml_activations"
    # The standard fusions first (they would undo these rules); the round rule
    # of lower_coreml_math writes a clip that this pass lowers.
    after = ("fuse_clip", "fuse_silu", "fuse_mish", "fuse_hard_silu", "fuse_activation", "lower_coreml_math")
    rules = RULES
