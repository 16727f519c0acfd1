"""Recognize the recurrent cell of a ``Loop`` body (imported to IR) as IR ``rnn`` / ``gru`` weights.

The caller (onnx_loop.py) imports the body on a scratch graph, so tf2onnx's
spelling is already the IR's: ``MatMul`` with a constant kernel is ``dense``,
bias reads and ``Split``/``Slice``/``Squeeze`` of constants are folded away.
What is left of a Keras 3 cell, with ``x_t`` the step read from the sequence and
``h`` the carried state (Keras gate order z r h, the IR's order too)::

    SimpleRNN:  h' = act(dense(x_t, W) + bx + dense(h, R))
    GRU reset_after=True  (Keras 3's default):
        xz, xr, xh = split(dense(x_t, W) + bx);  hz, hr, hh = slices of dense(h, R) + bh
        z = ract(xz + hz);  r = ract(xr + hr);  h' = z * h + (1 - z) * act(xh + r * hh)
    GRU reset_after=False:
        hz, hr = slices of dense(h, R[:, :2H]);  h' = ... act(xh + dense(r * h, R[:, 2H:]))

``candidates`` reads the kernels off the ``dense`` nodes (which operand is
``x_t``, ``h`` or a product with ``h``; with a static batch tf2onnx fuses some
into a ``Gemm``, which imports as ``matmul`` by a constant plus ``add``), the
biases off the ``add`` that follows each, and the activations off the unary ops
(Keras 3's ``hard_sigmoid`` arrives spelled out, ``clip(x + 3, 0, 6) / 6``);
when the activations' roles are ambiguous (two kinds in a GRU) it offers both
assignments. Nothing here is
trusted on its own: the Loop importer keeps a candidate only if the IR op
reproduces the Loop, run step by step, on seeded data. Anything that does
not fit (another cell, a kernel per gate, a matmul with a variable) raises
``CellMismatch`` with a summary of what the body holds, for the error message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcc.ir import Graph, Node, Value
from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_BETA
from kcc.ops.recurrent import RECURRENT_ACTIVATIONS
from kcc.ops.registry import get_op


class CellMismatch(Exception):
    """The body is not a cell kcc knows; ``str()`` says what it holds."""


@dataclass
class Cell:
    """One IR recurrent op's weights (IR layout, see kcc.ops.recurrent) and attributes."""

    op: str
    w: np.ndarray
    r: np.ndarray
    b: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(self.attrs.items()))
        return f"{self.op}(w {self.w.shape}, r {self.r.shape}) {{{attrs}}}"


@dataclass
class _Dense:
    node: Node
    kernel: np.ndarray
    bias: np.ndarray | None


def ancestors(graph: Graph, v: Value | np.ndarray) -> set[str]:
    """Names of the values ``v`` is computed from, ``v`` included (none for a constant array)."""
    if not isinstance(v, Value):
        return set()
    seen: set[str] = set()
    stack = [v]
    while stack:
        u = stack.pop()
        if u.name in seen:
            continue
        seen.add(u.name)
        node = graph.producer(u)
        if node is not None:
            stack.extend(i for i in node.inputs if i is not None)
    return seen


def _bias_after(graph: Graph, v: Value, width: int) -> np.ndarray | None:
    """The constant vector added to ``v`` by its one ``add`` reader, if it has one."""
    users = graph.users(v)
    if len(users) != 1 or users[0].op != "add":
        return None
    other = [i for i in users[0].inputs if i is not v]
    if len(other) == 1 and other[0].is_const and other[0].const.shape == (width,):
        return other[0].const
    return None


def _dense_nodes(graph: Graph, x_t: Value, h: Value) -> tuple[list[_Dense], list[_Dense], list[_Dense]]:
    """The body's products with constant kernels, split by what they read: x_t, h, or a product with h."""
    on_x, on_h, on_product = [], [], []
    for node in graph.nodes():
        if node.op == "matmul" and not (node.inputs[1].is_const and node.inputs[1].rank == 2):
            raise CellMismatch(f"a matmul of two variables ({node.inputs[0].shape} x {node.inputs[1].shape})")
        if node.op not in ("dense", "matmul"):  # matmul: a Gemm whose C is a variable (static batch)
            continue
        a, kernel = node.inputs[0], node.inputs[1].const
        bias = node.inputs[2].const if len(node.inputs) > 2 and node.inputs[2] is not None else None
        d = _Dense(node, kernel, bias if bias is not None else _bias_after(graph, node.output, kernel.shape[1]))
        if a is x_t:
            on_x.append(d)
        elif a is h:
            on_h.append(d)
        elif h.name in ancestors(graph, a):
            on_product.append(d)
        else:
            raise CellMismatch(f"a dense with kernel {kernel.shape} on {a.name!r}, which is neither the step "
                               "input nor the state")
    return on_x, on_h, on_product


def _scalar(v: Value | None) -> float | None:
    return float(v.const) if v is not None and v.is_const and v.const.size == 1 else None


def _addends(graph: Graph, v: Value) -> list[float | None]:
    """The scalar constants among the terms of the sum of ``add`` nodes computing ``v`` (None for other terms)."""
    node = graph.producer(v)
    if node is None or node.op != "add":
        return [_scalar(v)]
    return [s for i in node.inputs for s in _addends(graph, i)]


def _is_relu6_hard_sigmoid(graph: Graph, node: Node) -> bool:
    """Keras 3's ``hard_sigmoid`` as TensorFlow traces it: ``clip(x + 3, 0, 6) * (1/6)`` (or ``/ 6``)."""
    if node.op != "clip" or node.attrs["min"] != 0.0 or node.attrs["max"] != 6.0:
        return False
    if 3.0 not in _addends(graph, node.inputs[0]):  # the + 3 may sit anywhere in a sum: x + (3 + y)
        return False
    users = graph.users(node.output)
    if len(users) != 1 or users[0].op not in ("mul", "div") or \
            (users[0].op == "div" and users[0].inputs[0] is not node.output):
        return False
    others = [i for i in users[0].inputs if i is not node.output]
    factor = _scalar(others[0]) if len(others) == 1 else None
    want = 1.0 / 6.0 if users[0].op == "mul" else 6.0
    return factor is not None and abs(factor - want) <= 1e-6 * want


def _activations(graph: Graph) -> list[tuple[str, dict[str, Any]]]:
    """The distinct unary activations of the body, in order of first use, with the IR attributes they need."""
    found: list[tuple[str, dict[str, Any]]] = []
    for node in graph.nodes():
        if _is_relu6_hard_sigmoid(graph, node):
            if all(name != "hard_sigmoid" for name, _ in found):
                found.append(("hard_sigmoid", {"hard_sigmoid_alpha": HARD_SIGMOID_ALPHA}))
            continue
        if node.op not in RECURRENT_ACTIVATIONS:
            continue
        extra: dict[str, Any] = {}
        if node.op == "hard_sigmoid":
            if node.attrs["beta"] != HARD_SIGMOID_BETA:
                raise CellMismatch(f"hard_sigmoid with beta={node.attrs['beta']} (recurrent ops use "
                                   f"{HARD_SIGMOID_BETA})")
            extra = {"hard_sigmoid_alpha": node.attrs["alpha"]}
        elif node.attrs != get_op(node.op).normalize_attrs({}, where=node.op):
            raise CellMismatch(f"activation {node.op} with attributes {node.attrs} (recurrent ops apply "
                               "activations with their defaults)")
        if all(name != node.op for name, _ in found):
            found.append((node.op, extra))
    return found


def summary(graph: Graph, x_t: Value, h: Value) -> str:
    """What the body computes, in a line, for error messages."""
    try:
        on_x, on_h, on_product = _dense_nodes(graph, x_t, h)
        acts = [name for name, _ in _activations(graph)]
    except CellMismatch as e:
        return str(e)
    shapes = lambda ds: [tuple(d.kernel.shape) for d in ds]  # noqa: E731
    return (f"kernels on the step input {shapes(on_x)}, on the state {shapes(on_h)}, on a product with the "
            f"state {shapes(on_product)}; activations {acts or ['none']}")


def _vec(b: np.ndarray | None, n: int, dtype) -> np.ndarray:
    return np.zeros(n, dtype) if b is None else b


def candidates(graph: Graph, x_t: Value, h: Value) -> list[Cell]:
    """IR cells the body may compute (to be checked by running it); CellMismatch when none fits."""
    hidden, features = h.shape[1], x_t.shape[1]
    if not isinstance(hidden, int) or not isinstance(features, int):
        raise CellMismatch(f"state {h.shape} and step input {x_t.shape} need static feature sizes")
    on_x, on_h, on_product = _dense_nodes(graph, x_t, h)
    acts = _activations(graph)
    if len(on_x) != 1 or len(on_h) != 1 or len(on_product) > 1 or on_x[0].kernel.shape[0] != features:
        raise CellMismatch(summary(graph, x_t, h))
    kx, dt = on_x[0].kernel, on_x[0].kernel.dtype
    gates = kx.shape[1] // hidden
    if kx.shape[1] != gates * hidden or gates not in (1, 3):
        raise CellMismatch(summary(graph, x_t, h))
    bx = _vec(on_x[0].bias, gates * hidden, dt)
    if on_product:  # GRU reset_after=False: R split in [z r] on h and [h] on r * h
        kr = np.concatenate([on_h[0].kernel, on_product[0].kernel], axis=1)
        bh = np.concatenate([_vec(on_h[0].bias, on_h[0].kernel.shape[1], dt),
                             _vec(on_product[0].bias, on_product[0].kernel.shape[1], dt)])
    else:
        kr, bh = on_h[0].kernel, _vec(on_h[0].bias, gates * hidden, dt)
    if kr.shape != (hidden, gates * hidden) or (on_product and gates != 3):
        raise CellMismatch(summary(graph, x_t, h))
    w, r, b = np.ascontiguousarray(kx.T), np.ascontiguousarray(kr.T), np.concatenate([bx, bh])
    if gates == 1:
        if len(acts) > 1:
            raise CellMismatch(summary(graph, x_t, h))
        name, extra = acts[0] if acts else ("linear", {})
        return [Cell("rnn", w, r, b, {"activation": name, **extra})]
    if len(acts) > 2:
        raise CellMismatch(summary(graph, x_t, h))
    pairs = [(acts[0], acts[0])] if len(acts) == 1 else [(acts[0], acts[1]), (acts[1], acts[0])] if acts \
        else [(("linear", {}), ("linear", {}))]
    return [Cell("gru", w, r, b, {"recurrent_activation": ract[0], "activation": act[0], **ract[1], **act[1],
                                  "reset_after": not on_product})
            for ract, act in pairs]
