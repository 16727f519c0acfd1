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


@keras_emitter("conv_lstm")
def _conv_lstm(ctx: KerasContext, node: Node) -> None:
    """conv_lstm -> ConvLSTM1D/2D/3D: x (T, N, C, *S) is held (N, T, *S, C); kernels (4F, C, *K) -> (*K, C, 4F).

    Gates i o f c -> Keras's i f c o, as for lstm; Keras has no recurrent bias, nor does the IR op.
    The input conv's padding must be TensorFlow's 'same' or none ('valid'), as Keras's layers take.
    """
    from kcc.ops.shapes import same_pads

    x, y = node.inputs[0], node.outputs[0]
    w, r = ctx.weight(node, 1, "input kernel"), ctx.weight(node, 2, "recurrent kernel")
    b = ctx.weight(node, 3, "bias")
    n = w.ndim - 2
    filters = r.shape[1]
    order = _GATE_ORDER["lstm"]
    spatial_k = tuple(range(2, 2 + n))
    kernel = _gates(w, 4, order).transpose(spatial_k + (1, 0))
    recurrent = _gates(r, 4, order).transpose(spatial_k + (1, 0))
    bias = np.zeros(4 * filters, np.float32) if b is None else _gates(b, 4, order)
    ksize = tuple(int(k) for k in w.shape[2:])
    strides = node.attrs["strides"] or (1,) * n
    dilations = node.attrs["dilations"] or (1,) * n
    pads = node.attrs["pads"] or (0,) * (2 * n)
    if node.attrs["auto_pad"] == "same":
        padding = "same"
    elif not any(pads):
        padding = "valid"
    elif all(isinstance(d, int) for d in x.shape[3:]) and all(
            same_pads(int(x.shape[3 + i]), ksize[i], strides[i], dilations[i]) == (pads[i], pads[i + n])
            for i in range(n)):
        padding = "same"
    else:
        ctx.fail(node, f"a ConvLSTM whose input padding {pads} is neither 'same' nor 'valid'")
    given = [node.inputs[s] for s in range(4, len(node.inputs))]
    if any(v is not None for v in given):
        ctx.fail(node, "a ConvLSTM with initial states")
    layer = getattr(ctx.layers, f"ConvLSTM{n}D")(
        filters, ksize, strides=strides, padding=padding, dilation_rate=dilations,
        activation=_activation(ctx, node, "activation"),
        recurrent_activation=_activation(ctx, node, "recurrent_activation"), return_sequences=True,
        return_state=True, go_backwards=node.attrs["direction"] == "reverse", name=ctx.name(),
        trainable=ctx.trainable)
    seq_perm = (1, 0) + tuple(range(3, 3 + n)) + (2,)  # (T, N, C, *S) -> (N, T, *S, C)
    outs = layer(ctx.get(x, seq_perm))
    layer.set_weights([kernel, recurrent, bias])
    ys = outs[0]
    if node.attrs["direction"] == "reverse":
        ys = ctx.ops.flip(ys, axis=1)
    ctx.put(y, ys, seq_perm)
    for v, t in zip(node.outputs[1:], outs[1:]):
        ctx.put(v, t, (0,) + tuple(range(2, 2 + n)) + (1,))
