"""Concrete shapes of a graph whose inputs have symbolic dims, for given sizes of the symbols.

The Core ML emitter writes layers for one concrete size of every dynamic axis
(``{"N": 1, "x_d2": 2}``): a NeuralNetwork spec declares default shapes, and a
few layers carry sizes (a legacy ``reshape``'s target shape). The flexible-shape
planner (flexible.py) also asks which sizes the graph accepts at all: an input
size for which some shape function fails, or some dim comes out below 1, is not
a size the model can run at.

:class:`ConcreteShapes` re-runs the ops' shape functions (the same ones
``Graph.validate`` checks) with the symbols replaced by sizes, lazily, from the
inputs to the value asked for (every node's shape function runs, so a size a
node refuses is found). The known contents of small integer tensors
(``TensorType.value``: what ``shape(x)`` holds) get the same replacement, so
shape arithmetic folds to numbers.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from kcc.errors import ConversionError, IRError
from kcc.ir import Graph, Node, TensorType, Value, is_static
from kcc.ops.registry import get_op


class ConcreteShapes:
    """Types of ``graph``'s values with every input symbol replaced by ``sizes[symbol]``."""

    def __init__(self, graph: Graph, sizes: Mapping[str, int]):
        self.graph = graph
        self.sizes = dict(sizes)
        self._types: dict[str, TensorType] = {}
        # Values whose size depends on data (a "?" dim from a ``nonzero`` or after one): their
        # dims here are a stand-in, the most the op can give, not a size the model runs at.
        self.data_dependent: set[str] = set()

    def _substitute(self, t: TensorType) -> TensorType | None:
        """``t`` with known symbols replaced; None when a dim or a value entry stays unknown."""
        shape = tuple(self.sizes.get(d, d) if isinstance(d, str) else d for d in t.shape)
        value = getattr(t, "value", None)
        if value is not None:
            value = tuple(self.sizes.get(d, d) if isinstance(d, str) else d for d in value)
        if not all(isinstance(d, int) for d in shape + (value or ())):
            return None
        if value is not None:
            return dataclasses.replace(t, shape=shape, value=value)
        return dataclasses.replace(t, shape=shape)

    def type(self, v: Value) -> TensorType:
        """The concrete type of ``v``; IRError when a shape function refuses these sizes."""
        if v.is_const:
            return v.type
        pending = [v]
        while pending:   # depth-first back to the inputs, then forward: no recursion limit
            top = pending[-1]
            if top.name in self._types:
                pending.pop()
                continue
            producer = self.graph.producer(top)
            if producer is None:
                direct = self._substitute(top.type)
                if direct is None:
                    unknown = [d for d in top.shape if isinstance(d, str) and d not in self.sizes]
                    raise ConversionError(f"input {top.name} ({top.type}) has dims {unknown} of no known size")
                self._types[top.name] = direct
                pending.pop()
                continue
            missing = [x for x in producer.inputs if x is not None and not x.is_const and x.name not in self._types]
            if missing:
                pending.extend(missing)
                continue
            self._infer(producer)
            pending.pop()
        return self._types[v.name]

    def _infer(self, node: Node) -> None:
        types = [None if x is None else self.type(x) for x in node.inputs]
        outs = get_op(node.op).infer_types(node.attrs, types, where=node.name)
        rows = get_op(node.op).data_dependent_rows
        if rows is not None or any(x is not None and x.name in self.data_dependent for x in node.inputs):
            self.data_dependent.update(v.name for v in node.outputs if not is_static(v.shape))
        if rows is not None:  # the "?" it gives stands for at most this many rows
            bound = rows(types)
            outs = [dataclasses.replace(t, shape=tuple(bound if d == "?" else d for d in t.shape)) for t in outs]
        for value, t in zip(node.outputs, outs):
            if not all(isinstance(d, int) for d in t.shape):
                # A shape function that cannot see a runtime value: the graph's own type may still be
                # concrete once its symbols have sizes.
                shape = tuple(self.sizes.get(d, d) if isinstance(d, str) else d for d in value.type.shape)
                if all(isinstance(d, int) for d in shape):
                    t = dataclasses.replace(t, shape=shape)
            bad = [d for d in t.shape if not isinstance(d, int) or d < 1]
            if bad:
                raise IRError(f"{node.name} ({node.op}): output {value.name} has shape {list(t.shape)} "
                              f"for input sizes {self.sizes}")
            self._types[value.name] = t

    def dims(self, v: Value) -> tuple[int, ...]:
        return tuple(int(d) for d in self.type(v).shape)

    def check_all(self) -> None:
        """Infer every node's outputs; IRError (or ConversionError) when these sizes do not fit the graph."""
        for node in self.graph.nodes():
            for out in node.outputs:
                self.type(out)


__all__ = ["ConcreteShapes"]
