"""Shared checks for the pass tests: op list, golden text, numbers, and "unchanged".

Golden files live in tests/golden/<pass>__<case>.txt. They are rewritten on
purpose, never silently: ``KCC_UPDATE_GOLDEN=1 pytest tests/passes`` writes
every file a test compares against; without it a missing or different file fails.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np

from kcc.builder import GraphBuilder
from kcc.interpreter import run, seeded_inputs
from kcc.ir import Graph, TensorType, Value
from kcc.pipeline import get_pass
from kcc.printer import format_graph
from kcc.testing import assert_close, assert_not_degenerate

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/<name>.txt (write it when KCC_UPDATE_GOLDEN=1)."""
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get("KCC_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"golden file {path} is missing; create it with KCC_UPDATE_GOLDEN=1"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(path), "actual"))
        raise AssertionError(f"printed IR differs from {path.name} "
                             f"(rerun with KCC_UPDATE_GOLDEN=1 if the change is intended):\n{diff}")


def graph_with(shape=("N", 10), name: str = "g", origin: str = "lambda") -> tuple[Graph, GraphBuilder, Value]:
    """A graph with one f32 input ``x`` and a builder whose nodes come from ``origin``."""
    g = Graph(name)
    x = g.add_input("x", TensorType(tuple(shape)))
    return g, GraphBuilder(g, origin=origin, name=origin), x


def c(op: GraphBuilder, value) -> Value:
    """A float32 constant (scalars stay rank 0)."""
    return op.const(np.asarray(value, dtype=np.float32))


def apply_pass(name: str, graph: Graph, **options) -> bool:
    return bool(get_pass(name).configure(**options).run(graph))


def check_rewrite(graph: Graph, pass_name: str, case: str, expect_ops: list[str], *, options: dict | None = None,
                  feeds: dict[str, np.ndarray] | None = None, tol: float = 1e-5) -> Graph:
    """The three layers: op list after the pass, golden text (before and after), numbers before == after."""
    feeds = feeds or seeded_inputs(graph)
    before = run(graph, feeds)
    text_before = format_graph(graph)
    assert apply_pass(pass_name, graph, **(options or {})), f"{pass_name} did not fire on {case}"
    graph.validate()
    assert graph.op_types() == expect_ops, f"{case}: ops {graph.op_types()} != {expect_ops}"
    check_golden(f"{pass_name}__{case}", f"// before {pass_name}\n{text_before}// after\n{format_graph(graph)}")
    after = run(graph, feeds)
    for name, ref in before.items():
        assert_not_degenerate(ref, f"{case}: reference {name}")
        assert_close(ref, after[name], tol, what=f"{pass_name}/{case} output {name}")
    return graph


def check_unchanged(graph: Graph, pass_name: str, *, options: dict | None = None) -> None:
    """A negative case: the pass reports no change and the printed IR is identical."""
    text = format_graph(graph)
    changed = apply_pass(pass_name, graph, **(options or {}))
    assert format_graph(graph) == text, f"{pass_name} changed a graph it must leave alone"
    assert not changed, f"{pass_name} reported a change but the graph is the same"


def scaled_inputs(graph: Graph, scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs times ``scale`` (to reach clip bounds and saturation)."""
    return {k: (v * np.float32(scale)).astype(v.dtype) for k, v in seeded_inputs(graph, seed).items()}
