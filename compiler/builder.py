"""The IR's builder language: ``op.relu(op.conv(x, w, b, strides=(2, 2)))``.

The same spelling serves frontends (build a graph), rewrite rules (build the
replacement) and patterns (describe what to match, see pattern.py). Calling
``op.<name>(*inputs, **attrs)`` adds a node of that registered op and returns its
output value (a tuple for multi-output ops). ``op.const(array)`` adds a constant.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.ir import Graph, Value
from kcc.ops.registry import get_op


class GraphBuilder:
    """Adds nodes to ``graph``; every node it makes records ``origin``."""

    def __init__(self, graph: Graph, origin: str | None = None, name: str | None = None):
        self.graph = graph
        self.origin = origin
        # Name hint for the next nodes (e.g. the Keras layer name).
        self.name = name

    def const(self, array: Any, name: str | None = None, dtype: Any = None) -> Value:
        arr = np.asarray(array, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.graph.add_const(arr, name or (f"{self.name}_c" if self.name else "c"))

    def scalar(self, x: float, like: Value) -> Value:
        """A rank-0 constant of ``like``'s dtype."""
        from kcc.ir import DTYPES
        return self.const(np.asarray(x, dtype=DTYPES[like.dtype]))

    def add_node(self, op: str, inputs: list[Value | None], attrs: dict[str, Any], name: str | None = None):
        # Nodes are named "<layer>/<op>": the Keras layer (or the rewritten
        # node's origin) first, so every name says where it came from.
        if name is None:
            name = f"{self.name}/{op}" if self.name else op
        node = self.graph.add_node(op, inputs, attrs, name=name, origin=self.origin)
        return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        get_op(op)  # fail early on a misspelled op

        def emit(*inputs: Value | None, _name: str | None = None, **attrs: Any):
            return self.add_node(op, list(inputs), attrs, _name)

        return emit
