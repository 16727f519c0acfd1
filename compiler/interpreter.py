"""The reference interpreter: run an IR graph with each op's numpy implementation."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from kcc.errors import ShapeError
from kcc.ir import DTYPES, Graph, Value
from kcc.ops.registry import get_op


def run(graph: Graph, feeds: Mapping[str, np.ndarray], *, keep: bool = False) -> dict[str, np.ndarray]:
    """Evaluate ``graph`` on ``feeds`` (input name -> array); return graph output name -> array.

    With ``keep=True`` every intermediate value is returned too (for debugging).
    """
    env: dict[str, np.ndarray] = {}
    for v in graph.inputs:
        if v.name not in feeds:
            raise ShapeError(f"no value fed for input {v.name!r} ({v.type})")
        env[v.name] = check_feed(v, feeds[v.name])
    for v in graph.constants():
        env[v.name] = v.const
    for node in graph.nodes():
        args = [None if v is None else env[v.name] for v in node.inputs]
        results = get_op(node.op).run(node.attrs, args)
        for v, r in zip(node.outputs, results):
            env[v.name] = r
    if keep:
        return env
    return {name: env[v.name] for v, name in zip(graph.outputs, graph.output_names)}


def check_feed(v: Value, array: np.ndarray) -> np.ndarray:
    """Cast a fed array to the input's dtype and check its shape against the declared one."""
    array = np.asarray(array, dtype=DTYPES[v.dtype])
    if array.ndim != v.rank or any(isinstance(d, int) and d != a for d, a in zip(v.shape, array.shape)):
        raise ShapeError(f"input {v.name!r} expects shape {v.type} but was given {list(array.shape)}")
    return array


def seeded_inputs(graph: Graph, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Deterministic random feeds for every input; symbolic dims become ``batch`` (batch) or 3."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else (batch if i == 0 else 3) for i, d in enumerate(v.shape)]
        if v.dtype.startswith("f"):
            feeds[v.name] = rng.standard_normal(shape).astype(DTYPES[v.dtype])
        else:
            feeds[v.name] = rng.integers(0, 4, shape).astype(DTYPES[v.dtype])
    return feeds
