"""Keras emitters for the recurrent ops: rnn -> SimpleRNN, lstm -> LSTM, gru -> GRU.

The IR's recurrent ops are time-major with ONNX's gate order; Keras's layers
are batch-major (the layout pass holds the sequence ``batch_major``, so no
Permute is needed around them) with their own gate order. Weight relayouts,
each stated once (``H`` units, rows of ``w``/``r`` stacked by gate):

* lstm: IR gates i o f c -> Keras i f c o; kernel ``w.T`` (F, 4H), recurrent
  ``r.T`` (H, 4H), one bias ``Wb + Rb``;
* gru: gates z r h in both; ``reset_after=True`` keeps both biases, Keras's
  ``(2, 3H)`` = [Wb, Rb]; otherwise one bias ``Wb + Rb``;
* rnn: kernel ``w.T``, recurrent ``r.T``, bias ``Wb + Rb``.

``direction="reverse"`` is Keras's ``go_backwards=True`` followed by a flip of
the time axis (the IR keeps each output at its input's position).
"""
from __future__ import annotations

import numpy as np

from kcc.backends.keras.context import KerasContext, keras_emitter
from kcc.ir import Node
from kcc.ops.activation import HARD_SIGMOID_ALPHA

_LAYERS = {"rnn": ("SimpleRNN", 1), "lstm": ("LSTM", 4), "gru": ("GRU", 3)}
# Rows of the IR's gate blocks in Keras's gate order.
_GATE_ORDER = {"rnn": (0,), "lstm": (0, 2, 3, 1), "gru": (0, 1, 2)}


def _activation(ctx: KerasContext, node: Node, key: str) -> str:
    name = node.attrs.get(key, "tanh")
    if name == "hard_sigmoid" and abs(node.attrs["hard_sigmoid_alpha"] - HARD_SIGMOID_ALPHA) > 1e-9:
        ctx.fail(node, f"hard_sigmoid with slope {node.attrs['hard_sigmoid_alpha']} (Keras 3's is 1/6)")
    return name


def _gates(m: np.ndarray, n: int, order: tuple[int, ...]) -> np.ndarray:
    blocks = np.split(m, n, axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _emit(ctx: KerasContext, node: Node) -> None:
    op = node.op
    cls, n = _LAYERS[op]
    x, y = node.inputs[0], node.outputs[0]
    w, r = ctx.weight(node, 1, "input kernel"), ctx.weight(node, 2, "recurrent kernel")
    b = ctx.weight(node, 3, "bias")
    units = r.shape[1]
    order = _GATE_ORDER[op]
    kernel, recurrent = _gates(w, n, order).T, _gates(r, n, order).T
    wb, rb = (np.zeros(n * units, np.float32),) * 2 if b is None else (b[:n * units], b[n * units:])
    wb, rb = _gates(wb, n, order), _gates(rb, n, order)
    kw = dict(activation=_activation(ctx, node, "activation"), return_sequences=True, return_state=True,
              go_backwards=node.attrs["direction"] == "reverse", name=ctx.name(), trainable=ctx.trainable)
    if op != "rnn":
        kw["recurrent_activation"] = _activation(ctx, node, "recurrent_activation")
    if op == "gru":
        kw["reset_after"] = node.attrs["reset_after"]
        bias = np.stack([wb, rb]) if node.attrs["reset_after"] else wb + rb
    else:
        bias = wb + rb
    layer = getattr(ctx.layers, cls)(units, **kw)
    # Initial states (N, H): absent or all-zero ones are Keras's default; computed ones are passed.
    given = [node.inputs[s] for s in range(4, len(node.inputs))]
    if any(v is not None and v.is_const and np.any(v.const) for v in given):
        ctx.fail(node, "a constant, non-zero initial state")
    live = [v for v in given if v is not None and not v.is_const]
    states = []
    if live:
        states = [ctx.get(v, ctx.ident(v)) if v is not None and not v.is_const
                  else ctx.ops.zeros_like(ctx.get(live[0], ctx.ident(live[0]))) for v in given]
    seq = ctx.get(x, (1, 0, 2))
    outs = layer(seq, initial_state=states) if states else layer(seq)
    layer.set_weights([kernel, recurrent, bias])
    ys = outs[0]
    if node.attrs["direction"] == "reverse":
        ys = ctx.ops.flip(ys, axis=1)
    ctx.put(y, ys, (1, 0, 2))
    for v, t in zip(node.outputs[1:], outs[1:]):
        ctx.put(v, t, ctx.ident(v))


for _op in _LAYERS:
    keras_emitter(_op)(_emit)
