"""Run an ONNX ``Loop`` as ONNX defines it, on a scratch IR graph of its body, at concrete sizes.

The Loop importer (onnx_loop.py) uses this to check a recognized cell: the
loop's inputs may hold symbolic dims (the batch ``N``, the sequence length),
so the run picks sizes for them (``sizes``: symbol -> int) and evaluates what
the enclosing graph computes from shapes only (the trip count and first
condition tf2onnx derives from ``Shape(x)`` when the sequence length is
dynamic) with the reference ops. A value that depends on data rather than
shapes is refused, since the run could not stand for every input.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.interpreter import run
from kcc.ir import DTYPES, Graph, Value
from kcc.ops.registry import get_op

Known = Value | np.ndarray


Fail = Callable[[str], Exception]


def dims_at(shape: tuple, sizes: dict[str, int], what: str, fail: Fail) -> tuple[int, ...]:
    """``shape`` with its symbols replaced by ``sizes``."""
    try:
        return tuple(sizes[d] if isinstance(d, str) else int(d) for d in shape)
    except KeyError as e:
        raise fail(f"{what} has symbolic dim {e.args[0]!r}, which the loop's sequence does not name") from None


def concrete(graph: Graph, x: Known, sizes: dict[str, int], what: str, fail: Fail) -> np.ndarray:
    """``x`` at the chosen sizes: a constant as is, symbols replaced, a value computed from shapes evaluated.

    ``fail(message)`` makes the error (naming the Loop node) when ``x`` depends on data.
    """
    if isinstance(x, np.ndarray):
        if x.dtype != object:
            return x
        return np.asarray(dims_at(tuple(x.ravel()), sizes, what, fail), np.int64).reshape(x.shape)
    if x.is_const:
        return x.const
    nodes, seen, stack = [], set(), [x]
    while stack:  # the nodes computing x, stopping at shape ops
        v = stack.pop()
        node = graph.producer(v)
        if v.is_const or (node is not None and node.name in seen):
            continue
        if node is None:
            raise fail(f"{what} depends on the data of {v.name!r}, not only on shapes")
        seen.add(node.name)
        nodes.append(node)
        if node.op != "shape":
            stack.extend(i for i in node.inputs if i is not None)
    env: dict[str, np.ndarray] = {}
    for node in graph.nodes():
        if node.name not in seen:
            continue
        if node.op == "shape":
            src = node.inputs[0]
            args: list[Any] = [np.broadcast_to(np.zeros((), DTYPES[src.dtype]), dims_at(src.shape, sizes, what, fail))]
        else:
            args = [None if i is None else (i.const if i.is_const else env[i.name]) for i in node.inputs]
        for v, r in zip(node.outputs, get_op(node.op).run(node.attrs, args)):
            env[v.name] = r
    return env[x.name]


def simulate(body: Graph, iteration: Value, cond_in: Value, carried_in: list[Known], outs: list[Known],
             feeds: dict[str, np.ndarray], carried0: list[np.ndarray], trip: int, cond: bool, steps: int,
             index: Value, fail: Fail) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run the loop for its ``steps`` steps: (final carried values, stacked scan outputs).

    ``index`` is the body's step read position, which must be the iteration number;
    ``fail(message)`` makes the error naming the Loop node.
    """
    carried, scans = list(carried0), []
    i = 0
    while cond and i < trip:
        if i == steps:
            raise fail(f"the loop would run past the {steps} steps of its sequence")
        env = {iteration.name: np.asarray(i, np.int64), cond_in.name: np.asarray(cond), **feeds}
        env.update({v.name: c for v, c in zip(carried_in, carried) if isinstance(v, Value)})
        values = run(body, env, keep=True)
        if int(values[index.name]) != i:
            raise fail(f"its body reads step {int(values[index.name])} of the sequence at iteration {i}")
        results = [values[o.name] if isinstance(o, Value) else o for o in outs]
        cond, carried = bool(results[0]), results[1:1 + len(carried)]
        scans.append(results[1 + len(carried):])
        i += 1
    if i != steps:
        raise fail(f"the loop runs {i} of the {steps} steps of its sequence; kcc's recurrent ops read every step")
    return carried, [np.stack(s) for s in zip(*scans)]


def rel_error(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest difference relative to the largest magnitude of ``ref`` (inf when the shapes differ)."""
    if ref.shape != got.shape:
        return float("inf")
    if not ref.size:
        return 0.0
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(ref - got))) / (scale or 1.0)
