"""lower_coreml_recurrent: recurrent ops with no NeuralNetwork layer, unrolled over a static time axis.

Core ML lowering (after the standard pipeline). NeuralNetwork's ``gru`` layer
applies the reset gate before the recurrence matrix (Keras's
``reset_after=False``), and there is no convolutional LSTM layer. A
``gru(reset_after=True)`` (Keras 3's default) and a ``conv_lstm`` are written
out step by step in IR ops, exactly the equations of kcc.ops.recurrent::

    per step t (in reading order; reverse reads T-1 .. 0):
      gru:       xw = dense(x_t, W.T, Wb); hr = dense(h, R.T, Rb)
                 z = f(xw_z + hr_z); r = f(xw_r + hr_r); h~ = g(xw_h + r * hr_h)
                 h = (h - h~) * z + h~
      conv_lstm: pre = conv(x_t, W, b) + conv(h, R)   (no recurrent conv while h is 0)
                 i, o, f, c~ = split(pre); c = f(f) * c + f(i) * g(c~); h = f(o) * g(c)
    y = concat(unsqueeze(h_0), ..., unsqueeze(h_T-1), axis=0)

``x_t`` is ``squeeze(slice(x, t), axis 0)``. The unrolled ops need the ND
layout (slices on the time axis); the layout analysis sees that.

Before::

    %y: f32[3,N,4], %h: f32[N,4] = gru(%x, %w, %r, %b) {reset_after=true}

After: 3 steps of dense/split/add/sigmoid/tanh/mul/sub, then
``%y = concat(%y0, %y1, %y2) {axis=0}``.

Not lowered: a time axis that is not static, computed weights (the emitter
reports both), a GRU with ``reset_after=False`` (the ``gru`` layer), rnn and
lstm (``simpleRecurrent``, ``uniDirectionalLSTM``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kcc.ops.recurrent import activation_attrs
from kcc.ops.registry import get_op
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _act(op, attrs: dict[str, Any], name: str, x):
    if name == "linear":
        return x
    return getattr(op, name)(x, **activation_attrs(name, attrs))


def _step_input(op, x, t: int):
    return op.squeeze(op.slice(x, starts=(t,), ends=(t + 1,), axes=(0,)), axes=(0,))


def _stack(op, ys: list):
    return op.concat(*[op.unsqueeze(y, axes=(0,)) for y in ys], axis=0)


def _order(attrs: dict[str, Any], steps: int) -> range:
    return range(steps - 1, -1, -1) if attrs["direction"] == "reverse" else range(steps)


def _gru(op, x, w, r, root, b=None, h0=None):
    attrs = root.attrs
    hidden = int(r.shape[1])
    f, g = attrs["recurrent_activation"], attrs["activation"]
    bias = np.zeros(6 * hidden, np.float32) if b is None else np.asarray(b.const, np.float32)
    wt = op.const(np.ascontiguousarray(np.asarray(w.const, np.float32).T))
    rt = op.const(np.ascontiguousarray(np.asarray(r.const, np.float32).T))
    wb, rb = op.const(bias[:3 * hidden]), op.const(bias[3 * hidden:])
    h = h0 if h0 is not None else op.const(np.zeros((1, hidden), np.float32))
    ys: dict[int, Any] = {}
    for t in _order(attrs, int(x.shape[0])):
        xz, xr, xh = op.split(op.dense(_step_input(op, x, t), wt, wb), axis=1, sizes=(hidden,) * 3)
        hz, hr, hh = op.split(op.dense(h, rt, rb), axis=1, sizes=(hidden,) * 3)
        z = _act(op, attrs, f, op.add(xz, hz))
        rg = _act(op, attrs, f, op.add(xr, hr))
        candidate = _act(op, attrs, g, op.add(xh, op.mul(rg, hh)))
        h = ys[t] = op.add(op.mul(op.sub(h, candidate), z), candidate)
    return _stack(op, [ys[t] for t in sorted(ys)]), h


def _conv_lstm(op, x, w, r, root, b=None, h0=None, c0=None):
    attrs = root.attrs
    decl = get_op("conv_lstm")
    f, g = attrs["recurrent_activation"], attrs["activation"]
    filters = int(r.shape[1])
    input_conv = {k: v for k, v in decl._input_conv_attrs(attrs).items() if k != "activation"}
    recurrent_conv = {k: v for k, v in decl._recurrent_conv_attrs(r.shape).items() if k != "activation"}
    h, c = h0, c0
    ys: dict[int, Any] = {}
    for t in _order(attrs, int(x.shape[0])):
        pre = op.conv(_step_input(op, x, t), w, b, **input_conv)
        if h is not None:
            pre = op.add(pre, op.conv(h, r, None, **recurrent_conv))
        i, o, fg, cc = op.split(pre, axis=1, sizes=(filters,) * 4)
        ig = op.mul(_act(op, attrs, f, i), _act(op, attrs, g, cc))
        c = ig if c is None else op.add(op.mul(_act(op, attrs, f, fg), c), ig)
        h = ys[t] = op.mul(_act(op, attrs, f, o), _act(op, attrs, g, c))
    return _stack(op, [ys[t] for t in sorted(ys)]), h, c


def _check(graph, x, w, r, root, b=None, h0=None, c0=None) -> str | None:
    if root.op == "gru" and not root.attrs["reset_after"]:
        return "reset_after=False: the gru layer computes it"
    if not isinstance(x.shape[0], int):
        return f"the time axis of {x.type} is not static"
    for v in (w, r, b):
        if v is not None and not v.is_const:
            return "the weights are computed"
    return None


def _pattern(op_name: str, present: tuple[str, ...], slots: tuple[str, ...]) -> Callable:
    """A pattern function over the present optional inputs (the others must be absent)."""
    def pattern(op, *values):
        bound = dict(zip(present, values))
        return getattr(op, op_name)(*[bound.get(s) for s in slots], _capture="root")
    params = [inspect.Parameter("op", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in present]
    pattern.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return pattern


def _rules(op_name: str, slots: tuple[str, ...], rewrite: Callable) -> list[RewriteRule]:
    required, optional = slots[:3], slots[3:]
    rules = []
    for mask in range(2 ** len(optional)):
        present = required + tuple(s for i, s in enumerate(optional) if mask >> i & 1)
        name = f"unroll_{op_name}" + "".join(f"_{s}" for s in present[3:])
        rules.append(RewriteRule(name, _pattern(op_name, present, slots), rewrite, _check))
    return rules


RULES = _rules("gru", ("x", "w", "r", "b", "h0"), _gru) + \
    _rules("conv_lstm", ("x", "w", "r", "b", "h0", "c0"), _conv_lstm)


@register_pass
@dataclass
class LowerCoremlRecurrent(RewritePass):
    name = "lower_coreml_recurrent"
    rules = RULES
