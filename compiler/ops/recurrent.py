"""Recurrent ops: ``rnn`` (Elman), ``lstm``, ``gru`` and ``conv_lstm``, one direction each.

Layout: **time-major**. ``x`` is ``(T, N, F)`` (sequence, batch, features) and
the sequence output ``y`` is ``(T, N, H)``. This is the one place the IR departs
from "channels on axis 1", on purpose: both targets' recurrent layers are
time-major (ONNX ``RNN/LSTM/GRU`` with ``layout=0``, which onnxruntime requires;
Core ML's recurrent layers take ``[Seq, Batch, C, 1, 1]``), so the ops map 1:1
with no hidden data movement. The Keras frontend holds a sequence as
``(N, F, T)`` (IR layout) and writes the two explicit transposes around each
recurrent op: ``transpose(perm=(2, 0, 1))`` in and ``transpose(perm=(1, 2, 0))``
out. Between two stacked recurrent layers these compose to the identity and
``cancel_transposes`` removes them, so a stack of LSTMs moves no data.

Weights follow the ONNX operator spec for one direction (no leading
``num_directions`` axis), gates stacked along the rows:

==========  =======  ===========  ===========  =====================
op          gates    ``w``        ``r``        ``b`` (optional)
==========  =======  ===========  ===========  =====================
``rnn``     (1)      (H, F)       (H, H)       (2H,) = [Wb, Rb]
``lstm``    i o f c  (4H, F)      (4H, H)      (8H,) = [Wb, Rb]
``gru``     z r h    (3H, F)      (3H, H)      (6H,) = [Wb, Rb]
==========  =======  ===========  ===========  =====================

(Keras stores LSTM gates as i f c o and kernels transposed, ``(F, 4H)``; the
frontend reorders.) With ``f`` = ``recurrent_activation`` and ``g`` =
``activation``, per step (``x_t`` a row, ``@`` a matrix product, ``W_g`` the
rows of gate ``g``):

* rnn:  ``h = g(x_t @ W.T + h @ R.T + Wb + Rb)``
* lstm: ``i = f(x_t @ W_i.T + h @ R_i.T + Wb_i + Rb_i)``, likewise ``o``, ``f``
  (forget), ``c~ = g(... gate c ...)``; ``c = f*c + i*c~``; ``h = o * g(c)``
* gru:  ``z = f(x_t @ W_z.T + h @ R_z.T + Wb_z + Rb_z)``, likewise ``r``;
  ``reset_after=True`` (ONNX ``linear_before_reset=1``, Keras 3's default):
  ``h~ = g(x_t @ W_h.T + Wb_h + r * (h @ R_h.T + Rb_h))``;
  ``reset_after=False``: ``h~ = g(x_t @ W_h.T + Wb_h + (r * h) @ R_h.T + Rb_h)``;
  ``h = z * h + (1 - z) * h~``

Inputs ``h0``/``c0`` are the initial states ``(N, H)`` (zeros when absent).
Outputs: ``y`` ``(T, N, H)`` (every step's ``h``), the final ``h`` ``(N, H)``,
and for ``lstm`` the final ``c`` ``(N, H)``.

``direction="reverse"`` consumes the sequence from ``t = T-1`` down to 0 and
keeps each output **at the position of its input** (ONNX and Core ML
``reverseInput`` semantics): ``y[t]`` is the state after reading
``x[T-1], ..., x[t]``, and the final ``h`` is ``y[0]``. Keras's
``go_backwards=True`` returns that sequence reversed in time; the frontend adds
the reversal.

Mapping to Core ML's NeuralNetwork recurrent layers (time-major ``[T, N, C, 1, 1]``,
``reverseInput`` = ``direction="reverse"``, ``sequenceOutput`` = whether ``y`` is read):

* ``rnn`` -> ``simpleRecurrent``: ``weightMatrix = w``, ``recursionMatrix = r``,
  ``biasVector = Wb + Rb``.
* ``lstm`` -> ``uniDirectionalLSTM``: split the rows of ``w``/``r``/``b`` into
  blocks i, o, f, c; Core ML wants input/forget/blockInput(= c)/output gate
  matrices and one bias per gate (``Wb_g + Rb_g``); activations
  ``[recurrent_activation, activation, activation]``; no peepholes. Core ML clips
  every pre-activation to [-50, 50]; the IR op does not (equal for sigmoid/tanh,
  different only for unbounded activations such as relu past 50).
* ``gru`` -> ``gru`` only when ``reset_after=False`` (Core ML's GRU applies the
  reset gate before the recurrent product): update = z, reset = r, output = h,
  bias per gate ``Wb_g + Rb_g``. ``reset_after=True`` (Keras 3's default) has the
  recurrent bias of gate h inside ``r * (...)`` and needs a decomposition.
* ``conv_lstm`` has no Core ML layer.

Activations are IR unary op names applied with their default attributes, or
``linear``; ``hard_sigmoid`` is ``clip(hard_sigmoid_alpha * x + 1/2, 0, 1)``
(the attribute is 1/6 for Keras 3, 0.2 for Keras 2 files).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_BETA
from kcc.ops.conv import canonical_window
from kcc.ops.registry import Attr, OpDef, get_op, register_op

DIRECTIONS = ("forward", "reverse")
# Activations a recurrent op may use: identity plus IR unary ops whose defaults
# are the Keras meaning.
RECURRENT_ACTIVATIONS: tuple[str, ...] = (
    "linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softsign", "softplus", "elu", "selu",
    "leaky_relu", "silu", "gelu", "hard_silu", "mish", "exp")


def activation_attrs(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The IR attributes of activation ``name`` inside a recurrent op with attributes ``attrs``."""
    params = {"alpha": attrs["hard_sigmoid_alpha"], "beta": HARD_SIGMOID_BETA} if name == "hard_sigmoid" else {}
    return get_op(name).normalize_attrs(params, where=name)


def apply_named(name: str, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """Apply the activation ``name`` of a recurrent op with attributes ``attrs``."""
    if name == "linear":
        return x
    return get_op(name).run(activation_attrs(name, attrs), [x])[0].astype(x.dtype, copy=False)


class _Recurrent(OpDef):
    """Shared typing and the time loop; subclasses define ``gates`` and ``cell``."""

    gates: int = 1
    has_cell_state = False
    attrs = {
        "direction": Attr("str", "forward", DIRECTIONS),
        "activation": Attr("str", "tanh", RECURRENT_ACTIVATIONS),
        # Slope of every hard_sigmoid in the op: clip(alpha * x + 0.5, 0, 1); Keras 3
        # uses HARD_SIGMOID_ALPHA (1/6), Keras 2 (tf.keras) HARD_SIGMOID_ALPHA_KERAS2.
        "hard_sigmoid_alpha": Attr("float", HARD_SIGMOID_ALPHA),
    }

    def infer(self, attrs, x, w, r, b, h0, c0=None):
        if x.rank != 3:
            raise IRError(f"{self.name} takes a time-major (T, N, F) sequence, got {x.shape}")
        if w.rank != 2 or r.rank != 2:
            raise IRError(f"{self.name} weights must be 2-D, got w {w.shape} and r {r.shape}")
        hidden = r.shape[1]
        rows = self.gates * hidden if isinstance(hidden, int) else None
        if rows is not None and (w.shape[0] != rows or r.shape[0] != rows):
            raise IRError(f"{self.name} with hidden size {hidden} needs w ({rows}, F) and r ({rows}, {hidden}), "
                          f"got {w.shape} and {r.shape}")
        if isinstance(x.shape[2], int) and isinstance(w.shape[1], int) and x.shape[2] != w.shape[1]:
            raise IRError(f"{self.name} input has {x.shape[2]} features, w expects {w.shape[1]}")
        if b is not None and rows is not None and b.shape != (2 * rows,):
            raise IRError(f"{self.name} bias must be ({2 * rows},) = [Wb, Rb], got {b.shape}")
        for name, s in (("h0", h0), ("c0", c0)):
            if s is not None and (s.rank != 2 or s.shape[1] != hidden):
                raise IRError(f"{self.name} initial state {name} must be (N, {hidden}), got {s.shape}")
        n = x.shape[1]
        state = TensorType((n, hidden), x.dtype)
        outs = [TensorType((x.shape[0], n, hidden), x.dtype), state]
        return outs + [state] if self.has_cell_state else outs

    def cell(self, attrs: dict[str, Any], xw: np.ndarray, h: np.ndarray, c: np.ndarray | None,
             r: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def compute(self, attrs, x, w, r, b, h0, c0=None):
        steps, batch, _ = x.shape
        hidden = r.shape[1]
        rows = self.gates * hidden
        wb, rb = (b[:rows], b[rows:]) if b is not None else (np.zeros(rows, x.dtype), np.zeros(rows, x.dtype))
        h = np.zeros((batch, hidden), x.dtype) if h0 is None else h0.astype(x.dtype)
        c = None
        if self.has_cell_state:
            c = np.zeros((batch, hidden), x.dtype) if c0 is None else c0.astype(x.dtype)
        xw = np.einsum("tnf,gf->tng", x, w) + wb  # input projection of every step at once
        y = np.empty((steps, batch, hidden), x.dtype)
        order = range(steps - 1, -1, -1) if attrs["direction"] == "reverse" else range(steps)
        for t in order:
            h, c = self.cell(attrs, xw[t], h, c, r, rb)
            y[t] = h
        outs = [y, h.copy()]
        return tuple(outs + [c]) if self.has_cell_state else tuple(outs)


@register_op
class Rnn(_Recurrent):
    """Elman RNN (Keras SimpleRNN): ``h = activation(x_t W^T + h R^T + Wb + Rb)``. See the module doc."""

    name = "rnn"
    inputs = ("x", "w", "r", "b?", "h0?")

    def cell(self, attrs, xw, h, c, r, rb):
        return apply_named(attrs["activation"], xw + h @ r.T + rb, attrs), None


@register_op
class Lstm(_Recurrent):
    """LSTM, gates i o f c (ONNX order), no peepholes. See the module doc for the equations."""

    name = "lstm"
    inputs = ("x", "w", "r", "b?", "h0?", "c0?")
    gates = 4
    has_cell_state = True
    attrs = {**_Recurrent.attrs, "recurrent_activation": Attr("str", "sigmoid", RECURRENT_ACTIVATIONS)}

    def cell(self, attrs, xw, h, c, r, rb):
        f, g = attrs["recurrent_activation"], attrs["activation"]
        pre = xw + h @ r.T + rb
        i, o, fg, cc = np.split(pre, 4, axis=-1)
        c = apply_named(f, fg, attrs) * c + apply_named(f, i, attrs) * apply_named(g, cc, attrs)
        return apply_named(f, o, attrs) * apply_named(g, c, attrs), c


@register_op
class Gru(_Recurrent):
    """GRU, gates z r h (ONNX order); ``reset_after`` is ONNX's ``linear_before_reset``. See the module doc."""

    name = "gru"
    inputs = ("x", "w", "r", "b?", "h0?")
    gates = 3
    attrs = {**_Recurrent.attrs, "recurrent_activation": Attr("str", "sigmoid", RECURRENT_ACTIVATIONS),
             "reset_after": Attr("bool", True)}

    def cell(self, attrs, xw, h, c, r, rb):
        f, g = attrs["recurrent_activation"], attrs["activation"]
        xz, xr, xh = np.split(xw, 3, axis=-1)
        rz, rr, rh = np.split(r, 3, axis=0)
        bz, br, bh = np.split(rb, 3)
        z = apply_named(f, xz + h @ rz.T + bz, attrs)
        rg = apply_named(f, xr + h @ rr.T + br, attrs)
        if attrs["reset_after"]:
            hh = apply_named(g, xh + rg * (h @ rh.T + bh), attrs)
        else:
            hh = apply_named(g, xh + (rg * h) @ rh.T + bh, attrs)
        return z * h + (1 - z) * hh, None


@register_op
class ConvLstm(_Recurrent):
    """Convolutional LSTM (Keras ConvLSTM1D/2D/3D), time-major and channels-first per step.

    ``x`` (T, N, C, *S); ``w`` (4F, C, *K) and ``r`` (4F, F, *K) are conv kernels in
    the IR's OIHW layout with gates stacked i o f c along the output channels (as
    ``lstm``); ``b`` (4F,) is the input conv's bias (Keras has no recurrent bias).
    Per step, with ``conv`` the IR conv op::

        pre = conv(x_t, w, b) {strides, dilations, pads | auto_pad}   # the input conv
            + conv(h, r) {'same' padding, stride 1, no dilation}      # the recurrent conv
        i, o, f, c~ = split(pre, 4, axis=1); then the ``lstm`` equations.

    ``h0``/``c0`` and the final states are (N, F, *S'), ``y`` is (T, N, F, *S') with
    ``S'`` the input conv's output size. ``direction`` as for ``lstm``.
    """

    name = "conv_lstm"
    inputs = ("x", "w", "r", "b?", "h0?", "c0?")
    gates = 4
    has_cell_state = True
    attrs = {**Lstm.attrs, "strides": Attr("ints", ()), "dilations": Attr("ints", ()), "pads": Attr("ints", ()),
             "auto_pad": Attr("str", "none", ("none", "same"))}

    def canonicalize(self, attrs):
        return canonical_window(attrs)

    def _input_conv_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        keys = ("strides", "dilations", "pads", "auto_pad")
        return get_op("conv").normalize_attrs({k: attrs[k] for k in keys}, where=self.name)

    @staticmethod
    def _recurrent_conv_attrs(r_shape) -> dict[str, Any]:
        kernel = [int(k) for k in r_shape[2:]]
        # TensorFlow 'same' at stride 1: k - 1 padding, the extra one at the end.
        pads = tuple((k - 1) // 2 for k in kernel) + tuple(k - 1 - (k - 1) // 2 for k in kernel)
        return get_op("conv").normalize_attrs({"pads": pads}, where="conv_lstm")

    def infer(self, attrs, x, w, r, b, h0, c0):
        if x.rank < 4 or w.rank != x.rank - 1 or r.rank != w.rank:
            raise IRError(f"conv_lstm needs x (T, N, C, *S) and kernels (4F, C, *K), got {x.shape}, {w.shape}, "
                          f"{r.shape}")
        filters = r.shape[1]
        if w.shape[0] != 4 * filters or r.shape[0] != 4 * filters:
            raise IRError(f"conv_lstm with {filters} filters needs 4*{filters} kernel outputs, got {w.shape} "
                          f"and {r.shape}")
        if b is not None and b.shape != (4 * filters,):
            raise IRError(f"conv_lstm bias must be ({4 * filters},), got {b.shape}")
        gates = get_op("conv").infer(self._input_conv_attrs(attrs), TensorType(x.shape[1:], x.dtype), w, b)
        step = TensorType((x.shape[1], filters) + gates.shape[2:], x.dtype)
        for name, s in (("h0", h0), ("c0", c0)):
            if s is not None and s.shape[1:] != step.shape[1:]:
                raise IRError(f"conv_lstm initial state {name} must be {step.shape}, got {s.shape}")
        return [TensorType((x.shape[0],) + step.shape, x.dtype), step, step]

    def compute(self, attrs, x, w, r, b, h0, c0):
        conv = get_op("conv")
        steps, batch = x.shape[:2]
        # The input conv of every step at once, steps folded into the batch.
        xw = conv.compute(self._input_conv_attrs(attrs), x.reshape((steps * batch,) + x.shape[2:]), w, b)
        xw = xw.reshape((steps, batch) + xw.shape[1:])
        rattrs = self._recurrent_conv_attrs(r.shape)
        h = np.zeros(xw.shape[1:2] + (r.shape[1],) + xw.shape[3:], x.dtype) if h0 is None else h0.astype(x.dtype)
        c = np.zeros_like(h) if c0 is None else c0.astype(x.dtype)
        f, g = attrs["recurrent_activation"], attrs["activation"]
        y = np.empty((steps,) + h.shape, x.dtype)
        order = range(steps - 1, -1, -1) if attrs["direction"] == "reverse" else range(steps)
        for t in order:
            pre = xw[t] + conv.compute(rattrs, h, r, None)
            i, o, fg, cc = np.split(pre, 4, axis=1)
            c = apply_named(f, fg, attrs) * c + apply_named(f, i, attrs) * apply_named(g, cc, attrs)
            h = apply_named(f, o, attrs) * apply_named(g, c, attrs)
            y[t] = h
        return y, h.copy(), c
