"""Recurrent ops: ``rnn`` (Elman), ``lstm`` and ``gru``, one direction each.

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

Activations are IR unary op names applied with their default attributes
(``hard_sigmoid`` is Keras 3's ``clip(x/6 + 1/2, 0, 1)``), or ``linear``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import IRError
from kcc.ir import TensorType
from kcc.ops.registry import Attr, OpDef, get_op, register_op

DIRECTIONS = ("forward", "reverse")
# Activations a recurrent op may use: identity plus IR unary ops whose defaults
# are the Keras meaning.
RECURRENT_ACTIVATIONS: tuple[str, ...] = (
    "linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softsign", "softplus", "elu", "selu",
    "leaky_relu", "silu", "gelu", "hard_silu", "mish", "exp")


def apply_named(name: str, x: np.ndarray) -> np.ndarray:
    """Apply the activation ``name`` with its op's default attributes."""
    if name == "linear":
        return x
    opdef = get_op(name)
    return opdef.run(opdef.normalize_attrs({}, where=name), [x])[0].astype(x.dtype, copy=False)


class _Recurrent(OpDef):
    """Shared typing and the time loop; subclasses define ``gates`` and ``cell``."""

    gates: int = 1
    has_cell_state = False
    attrs = {
        "direction": Attr("str", "forward", DIRECTIONS),
        "activation": Attr("str", "tanh", RECURRENT_ACTIVATIONS),
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
        return apply_named(attrs["activation"], xw + h @ r.T + rb), None


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
        c = apply_named(f, fg) * c + apply_named(f, i) * apply_named(g, cc)
        return apply_named(f, o) * apply_named(g, c), c


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
        z = apply_named(f, xz + h @ rz.T + bz)
        rg = apply_named(f, xr + h @ rr.T + br)
        if attrs["reset_after"]:
            hh = apply_named(g, xh + rg * (h @ rh.T + bh))
        else:
            hh = apply_named(g, xh + (rg * h) @ rh.T + bh)
        return z * h + (1 - z) * hh, None
