"""The ONNX emitter's state: nodes and initializers being built, names, the opset.

Every emitter is an entry of ``EMITTERS`` (IR op -> function). Ops that map to
ONNX by name and attributes alone are rows of the shared table
kcc.formats.onnx_ops (emitted by emit_table.py); the emit_* modules hold the
entries that need logic (weights relaid out, attributes that become inputs,
several outputs).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper

from kcc.backends import UniqueNames
from kcc.backends.onnx.writer import initializer
from kcc.errors import UnsupportedOpError
from kcc.ir import Graph, Node, Value
from kcc.table import Table

Emitter = Callable[["OnnxContext", Node], None]
EMITTERS: Table[Emitter] = Table("ONNX emitter")
onnx_emitter = EMITTERS.register
supported_ops = EMITTERS.names


def emitter_for(node: Node) -> Emitter:
    try:
        return EMITTERS[node.op]
    except KeyError:
        where = f" (from layer {node.origin!r})" if node.origin else ""
        raise UnsupportedOpError(
            f"IR op {node.op!r} of node {node.name}{where} has no ONNX emitter; target 'onnx' cannot express it. "
            f"Try target='coreml', or replace the layer. (A graph emitted without the ONNX target's pipeline "
            f"also lacks its lowering: its lower_onnx_* passes rewrite silu, rsqrt, scaled_tanh and the like.)") \
            from None


def _attribute(key: str, value: Any) -> onnx.AttributeProto:
    """``helper.make_attribute(key, value)``: the same AttributeProto, made directly for a
    Python int, bool, float or str and a non-empty list or tuple of Python ints (what
    emitters pass, and where make_attribute's type inference costs the most)."""
    t = type(value)
    if t is int or t is bool:
        return onnx.AttributeProto(name=key, type=onnx.AttributeProto.INT, i=int(value))
    if t is float:
        return onnx.AttributeProto(name=key, type=onnx.AttributeProto.FLOAT, f=value)
    if t is str:
        return onnx.AttributeProto(name=key, type=onnx.AttributeProto.STRING, s=value.encode("utf-8"))
    if (t is list or t is tuple) and value and all(type(v) is int for v in value):
        return onnx.AttributeProto(name=key, type=onnx.AttributeProto.INTS, ints=value)
    return helper.make_attribute(key, value)


class OnnxContext:
    def __init__(self, graph: Graph, opset: int, names: dict[str, str],
                 lower: Callable[[Graph, int], None] | None = None):
        self.graph = graph
        self.opset = opset
        # Runs the target's lowering passes on a graph at an opset (for emit_graph).
        self._lower = lower
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        # Initializer name -> the array whose bytes its TensorProto leaves out (writer.py).
        self.weights: dict[str, np.ndarray] = {}
        self._names = names          # IR value name -> ONNX name
        self._taken = UniqueNames(names.values())
        self._const_names: dict[int, str] = {}

    def name(self, v: Value | None) -> str:
        """The ONNX name of an IR value (registering constants as initializers)."""
        if v is None:
            return ""
        if v.is_const and id(v) not in self._const_names:
            n = self._names.get(v.name, v.name)
            self.initializers.append(initializer(v.const, n, self.weights))
            self._const_names[id(v)] = n
        return self._names.get(v.name, v.name)

    def fresh(self, hint: str) -> str:
        return self._taken.take(hint)

    def const(self, array: Any, hint: str, dtype: Any = None) -> str:
        """A new initializer holding ``array`` (shape/axes operands and the like)."""
        n = self.fresh(hint)
        self.initializers.append(initializer(np.asarray(array, dtype=dtype), n, self.weights))
        return n

    def ints(self, values: Any, hint: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def add(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, *, hint: str = "",
            **attrs: Any) -> list[str]:
        """Append an ONNX node; returns its output names (fresh ones when not given)."""
        if outputs is None:
            outputs = [self.fresh(f"{hint or op_type}_out")]
        name = self.fresh(hint or op_type)
        # helper.make_node's NodeProto, built in one call (it costs most of the emitter's time per node).
        self.nodes.append(onnx.NodeProto(
            op_type=op_type, input=inputs, output=outputs, name=name or None,
            attribute=[_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None]))
        return outputs

    def out(self, node: Node, i: int = 0) -> str:
        return self.name(node.outputs[i])

    def ins(self, node: Node) -> list[str]:
        return [self.name(v) for v in node.inputs]

    def emit_graph(self, graph: Graph, input_names: list[str]) -> list[str]:
        """Lower and emit a small IR graph here, its inputs read from ``input_names``; return its outputs' names.

        A Scan body applies a recurrent op's activations this way: the same
        lowering passes and the same emitter table as the main graph.
        """
        if self._lower is None:
            raise AssertionError("this OnnxContext was made without the target's lowering")
        self._lower(graph, self.opset)
        saved = self.graph, self._names
        names = {v.name: n for v, n in zip(graph.inputs, input_names)}
        for v in graph.values():
            if v.name not in names:
                names[v.name] = self.fresh(v.name)
        self.graph, self._names = graph, names
        try:
            for node in graph.nodes():
                emitter_for(node)(self, node)
            return [self.name(v) for v in graph.outputs]
        finally:
            self.graph, self._names = saved
