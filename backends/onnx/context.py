"""The ONNX emitter's state: nodes and initializers being built, names, the opset."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

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
            f"Try target='coreml', or replace the layer.") from None


class OnnxContext:
    def __init__(self, graph: Graph, opset: int, names: dict[str, str]):
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names = names          # IR value name -> ONNX name
        self._taken = set(names.values())
        self._const_names: dict[int, str] = {}

    def name(self, v: Value | None) -> str:
        """The ONNX name of an IR value (registering constants as initializers)."""
        if v is None:
            return ""
        if v.is_const and id(v) not in self._const_names:
            n = self._names.get(v.name, v.name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(v.const), n))
            self._const_names[id(v)] = n
        return self._names.get(v.name, v.name)

    def fresh(self, hint: str) -> str:
        n, i = hint, 0
        while n in self._taken:
            i += 1
            n = f"{hint}__{i}"
        self._taken.add(n)
        return n

    def const(self, array: Any, hint: str, dtype: Any = None) -> str:
        """A new initializer holding ``array`` (shape/axes operands and the like)."""
        n = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), n))
        return n

    def ints(self, values: Any, hint: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def add(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, *, hint: str = "",
            **attrs: Any) -> list[str]:
        """Append an ONNX node; returns its output names (fresh ones when not given)."""
        if outputs is None:
            outputs = [self.fresh(f"{hint or op_type}_out")]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(hint or op_type),
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outputs

    def out(self, node: Node, i: int = 0) -> str:
        return self.name(node.outputs[i])

    def ins(self, node: Node) -> list[str]:
        return [self.name(v) for v in node.inputs]
