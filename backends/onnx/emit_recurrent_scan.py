"""A recurrent op as an ONNX ``Scan`` over time, for activations ONNX RNN/LSTM/GRU cannot name.

ONNX's recurrent ops accept a fixed list of activations (Tanh, Relu,
HardSigmoid, ...); a Keras layer with ``activation="selu"`` or ``"silu"`` has
no ONNX RNN spelling. Such a node becomes one ``Scan`` whose body is the cell
written with primitive ops (MatMul/Add/Mul plus the activation, lowered and
emitted like any IR op: OnnxContext.emit_graph), so the sequence length may stay symbolic::

    h_T, [c_T,] y = Scan(h0, [c0,] x) {num_scan_inputs=1, body=cell}

``direction="reverse"`` is ``scan_input_directions=[1]`` (read from the end)
with ``scan_output_directions=[1]`` (write from the end), which keeps every
output at its input's position, as the IR op does. The cell's weights are
outer-scope initializers (one per gate) that the body reads.

``conv_lstm`` has no ONNX operator at all, so it is always this Scan, with two
``Conv`` nodes and a ``Split`` into the four gates in its body.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from onnx import helper

from kcc.backends.onnx.context import OnnxContext
from kcc.builder import GraphBuilder
from kcc.errors import UnsupportedOpError
from kcc.ir import DTYPES, Graph, Node
from kcc.ops.recurrent import ConvLstm, activation_attrs


def _activation(ctx: OnnxContext, node: Node, key: str, x: str) -> str:
    """Apply the node's activation ``key`` (an attribute name) to ``x``, a tensor shaped like the state.

    The activation is a one-node IR graph, lowered and emitted by the same
    passes and table as the main graph (silu becomes Sigmoid and Mul there).
    """
    name = node.attrs[key]
    if name == "linear":
        return x
    g = Graph(f"{node.name}_{name}")
    v = g.add_input(f"{node.name}_{key}", node.outputs[1].type)
    g.set_outputs([getattr(GraphBuilder(g, name=name), name)(v, **activation_attrs(name, node.attrs))], [name])
    return ctx.emit_graph(g, [x])[0]


class _Cell:
    """Per-gate constants and the helpers the cell bodies share."""

    def __init__(self, ctx: OnnxContext, node: Node):
        x, w, r, b = node.inputs[:4]
        if not (w.is_const and r.is_const and (b is None or b.is_const)):
            raise UnsupportedOpError(f"{node.op} node {node.name}: the ONNX Scan form needs constant weights")
        self.ctx, self.node = ctx, node
        self.hidden = r.shape[1]
        gates = w.shape[0] // self.hidden
        self.w = np.split(w.const, gates)
        self.r = np.split(r.const, gates)
        bias = b.const if b is not None else np.zeros(2 * w.shape[0], DTYPES[x.dtype])
        self.wb = np.split(bias[:w.shape[0]], gates)
        self.rb = np.split(bias[w.shape[0]:], gates)

    def matmul(self, a: str, m: np.ndarray, hint: str) -> str:
        return self.ctx.add("MatMul", [a, self.ctx.const(np.ascontiguousarray(m.T), hint)])[0]

    def add(self, *xs: str) -> str:
        out = xs[0]
        for x in xs[1:]:
            out = self.ctx.add("Add", [out, x])[0]
        return out

    def mul(self, a: str, b: str) -> str:
        return self.ctx.add("Mul", [a, b])[0]

    def bias(self, v: np.ndarray, hint: str) -> str:
        return self.ctx.const(np.ascontiguousarray(v), hint)

    def gate(self, k: int, x_t: str, h: str) -> str:
        """x_t W_k^T + h R_k^T + Wb_k + Rb_k"""
        return self.add(self.matmul(x_t, self.w[k], "scan_w"), self.matmul(h, self.r[k], "scan_r"),
                        self.bias(self.wb[k] + self.rb[k], "scan_b"))

    def act(self, key: str, x: str) -> str:
        return _activation(self.ctx, self.node, key, x)


def _rnn_body(c: _Cell, x_t: str, states: list[str]) -> list[str]:
    return [c.act("activation", c.gate(0, x_t, states[0]))]


def _lstm_body(c: _Cell, x_t: str, states: list[str]) -> list[str]:
    h, cs = states
    i, o, f = (c.act("recurrent_activation", c.gate(k, x_t, h)) for k in range(3))
    cand = c.act("activation", c.gate(3, x_t, h))
    c_new = c.add(c.mul(f, cs), c.mul(i, cand))
    return [c.mul(o, c.act("activation", c_new)), c_new]


def _gru_body(c: _Cell, x_t: str, states: list[str]) -> list[str]:
    (h,) = states
    z = c.act("recurrent_activation", c.gate(0, x_t, h))
    r = c.act("recurrent_activation", c.gate(1, x_t, h))
    xh = c.add(c.matmul(x_t, c.w[2], "scan_w"), c.bias(c.wb[2], "scan_b"))
    if c.node.attrs["reset_after"]:
        rec = c.mul(r, c.add(c.matmul(h, c.r[2], "scan_r"), c.bias(c.rb[2], "scan_b")))
    else:
        rec = c.add(c.matmul(c.mul(r, h), c.r[2], "scan_r"), c.bias(c.rb[2], "scan_b"))
    hh = c.act("activation", c.add(xh, rec))
    # h = z * h + (1 - z) * hh = hh + z * (h - hh)
    return [c.add(hh, c.mul(z, c.ctx.add("Sub", [h, hh])[0]))]


_BODIES: dict[str, Callable[[_Cell, str, list[str]], list[str]]] = {
    "rnn": _rnn_body, "lstm": _lstm_body, "gru": _gru_body}


Step = Callable[[str, list[str]], list[str]]


def _zeros_state(ctx: OnnxContext, node: Node, x: str, tail: tuple, dtype: str) -> str:
    """Zeros of shape (N, *tail), N read from the time-major input at run time."""
    if not all(isinstance(d, int) for d in tail):
        raise UnsupportedOpError(f"{node.op} node {node.name}: a zero initial state of shape (N, {tail}) needs "
                                 f"fixed sizes; pass the initial state as an input")
    shape = ctx.add("Shape", [x], hint="scan_shape")[0]
    batch = ctx.add("Slice", [shape, ctx.ints([1], "starts"), ctx.ints([2], "ends")], hint="scan_batch")[0]
    dims = ctx.add("Concat", [batch, ctx.ints(list(tail), "state_dims")], axis=0, hint="scan_state_shape")[0]
    zero = helper.make_tensor("zero", helper.np_dtype_to_tensor_dtype(DTYPES[dtype]), [1], [0])
    return ctx.add("ConstantOfShape", [dims], value=zero, hint="scan_zeros")[0]


def emit_scan(ctx: OnnxContext, node: Node, step: Step) -> None:
    """Emit ``node`` (outputs y, *final states) as a Scan whose body is ``step(x_t, states) -> states``.

    The first state is also the step's output (``h``). State shapes come from the
    node's final-state outputs, the step input's from x without its time axis.
    """
    x, *_ = node.inputs
    states = node.inputs[len(node.inputs) - (len(node.outputs) - 1):]
    elem = helper.np_dtype_to_tensor_dtype(DTYPES[x.dtype])
    state_tail = node.outputs[1].shape[1:]
    zeros = _zeros_state(ctx, node, ctx.name(x), state_tail, x.dtype) if None in states else ""
    init = [zeros if s is None else ctx.name(s) for s in states]
    # Build the body into its own node list; outer names (weights) stay visible to it.
    outer_nodes, ctx.nodes = ctx.nodes, []
    state_in = [ctx.fresh(f"{node.name}_state{i}") for i in range(len(states))]
    x_t = ctx.fresh(f"{node.name}_x_t")
    new_states = step(x_t, state_in)
    state_out = [ctx.add("Identity", [s], [ctx.fresh(f"{node.name}_state{i}_next")])[0]
                 for i, s in enumerate(new_states)]
    y_t = ctx.add("Identity", [new_states[0]], [ctx.fresh(f"{node.name}_y_t")])[0]
    body_nodes, ctx.nodes = ctx.nodes, outer_nodes

    def info(name: str, shape: tuple):
        return helper.make_tensor_value_info(name, elem, [d if isinstance(d, int) else None for d in shape])

    state_shape = (None,) + state_tail
    body = helper.make_graph(
        body_nodes, f"{node.name}_cell",
        [info(s, state_shape) for s in state_in] + [info(x_t, (None,) + x.shape[2:])],
        [info(s, state_shape) for s in state_out] + [info(y_t, state_shape)])
    reverse = int(node.attrs["direction"] == "reverse")
    outputs = [ctx.out(node, i + 1) for i in range(len(states))] + [ctx.out(node, 0)]
    ctx.add("Scan", init + [ctx.name(x)], outputs, hint=node.name, body=body, num_scan_inputs=1,
            scan_input_directions=[reverse], scan_output_directions=[reverse])


def emit_cell_scan(ctx: OnnxContext, node: Node) -> None:
    """An ``rnn``/``lstm``/``gru`` node as a Scan (for activations ONNX's recurrent ops lack)."""
    cell = _Cell(ctx, node)
    emit_scan(ctx, node, lambda x_t, states: _BODIES[node.op](cell, x_t, states))


def emit_conv_lstm_scan(ctx: OnnxContext, node: Node) -> None:
    """A ``conv_lstm`` node as a Scan: two Convs, a Split into i o f c, the LSTM update."""
    x, w, r, b = node.inputs[:4]
    filters = r.shape[1]
    kernel = list(w.shape[2:])
    n = len(kernel)
    conv_attrs = {"kernel_shape": kernel, "strides": list(node.attrs["strides"] or (1,) * n),
                  "dilations": list(node.attrs["dilations"] or (1,) * n)}
    if node.attrs["auto_pad"] == "same":
        conv_attrs["auto_pad"] = "SAME_UPPER"
    else:
        conv_attrs["pads"] = list(node.attrs["pads"] or (0,) * (2 * n))
    rec_pads = list(ConvLstm._recurrent_conv_attrs(r.shape)["pads"] or (0,) * (2 * n))
    act = lambda key, v: _activation(ctx, node, key, v)  # noqa: E731

    def step(x_t: str, states: list[str]) -> list[str]:
        h, c = states
        xc = ctx.add("Conv", [x_t, ctx.name(w)] + ([ctx.name(b)] if b is not None else []), **conv_attrs)[0]
        hc = ctx.add("Conv", [h, ctx.name(r)], kernel_shape=list(r.shape[2:]), pads=rec_pads)[0]
        pre = ctx.add("Add", [xc, hc])[0]
        parts = [ctx.fresh(f"{node.name}_{g}") for g in ("i", "o", "f", "c")]
        i, o, f, cand = ctx.add("Split", [pre, ctx.ints([filters] * 4, "split")], parts, axis=1)
        i, o, f = (act("recurrent_activation", v) for v in (i, o, f))
        c_new = ctx.add("Add", [ctx.add("Mul", [f, c])[0], ctx.add("Mul", [i, act("activation", cand)])[0]])[0]
        return [ctx.add("Mul", [o, act("activation", c_new)])[0], c_new]

    emit_scan(ctx, node, step)
