"""The ONNX frontend's table: ONNX op_type -> handler lowering one node to IR.

    @onnx_op("Relu")
    def relu(ctx: OnnxNodeContext) -> Value:
        return ctx.op.relu(ctx.value(0))

A handler reads its inputs through ``ctx`` (``ctx.value(i)`` an IR value,
``ctx.const(i)`` a numpy array for operands that must be constant, ``ctx.dims(i)``
a shape operand whose entries may be symbolic dims) and returns its output
value(s). The importer (importer.py) folds nodes whose inputs are all constant
by running the handler on a scratch graph, so handlers never special-case
constants.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import onnx
from onnx import helper

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.formats.onnx_ops import IR_DTYPES
from kcc.frontends.onnx.symbolic import DimSources
from kcc.ir import Graph, Value, dtype_of
from kcc.table import Table

if TYPE_CHECKING:  # the importer imports this module
    from kcc.frontends.onnx.importer import OnnxImporter

Handler = Callable[["OnnxNodeContext"], Any]


def _load_all() -> None:
    import kcc.frontends.onnx.ops  # noqa: F401  (registers every handler)


HANDLERS: Table[Handler] = Table("ONNX op handler", _load_all)
onnx_op = HANDLERS.register
supported_op_types = HANDLERS.names

# ONNX TensorProto element type -> IR dtype (the table the ONNX emitter reads inverted).
ONNX_DTYPES: dict[int, str] = IR_DTYPES


def handler_for(op_type: str) -> Handler | None:
    return HANDLERS.get(op_type)


def ir_dtype(elem_type: int, where: str) -> str:
    try:
        return ONNX_DTYPES[elem_type]
    except KeyError:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() \
            else str(elem_type)
        raise ConversionError(f"{where}: ONNX element type {name} has no IR equivalent") from None


class UnsupportedOnnxOp(ConversionError):
    """An ONNX node no handler knows; carries the op type and node name for callers' messages."""

    def __init__(self, message: str, op_type: str, node_name: str, reason: str = "kcc has no lowering for it"):
        super().__init__(message)
        self.op_type = op_type
        self.node_name = node_name
        self.reason = reason


class OnnxNodeContext:
    """What a handler may use while lowering one ONNX node."""

    def __init__(self, graph: Graph, node: onnx.NodeProto, inputs: list[Value | np.ndarray | None],
                 opset: int, origin: str, name: str, shape_sources: dict[int, Value] | None = None,
                 options: dict[str, Any] | None = None, dim_sources: DimSources | None = None,
                 importer: OnnxImporter | None = None):
        self.graph = graph
        # The OnnxImporter lowering this node: a handler of a node with a subgraph (Loop) reads
        # the values the subgraph captures from the enclosing scope through it.
        self.importer = importer
        # Where symbolic dims are read at run time, to turn a symbolic shape into IR (symbolic.py).
        self.dim_sources = dim_sources
        # Importer options (see OnnxImporter), e.g. "exact_resize_sizes".
        self.options = options or {}
        self._shape_sources = shape_sources or {}
        self.node = node
        self.inputs = inputs
        self.opset = opset
        self.origin = origin
        self.op = GraphBuilder(graph, origin=origin, name=name)
        self.attrs: dict[str, Any] = {a.name: _attr_value(a) for a in node.attribute}
        self._materialized: dict[int, Value] = {}

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"ONNX node {self.node.name or self.node.op_type!r} ({self.node.op_type}): {message}")

    def value(self, i: int) -> Value:
        """Input ``i`` as an IR value (a constant operand becomes a graph constant)."""
        x = self.inputs[i] if i < len(self.inputs) else None
        if x is None:
            raise self.fail(f"input {i} is missing")
        if isinstance(x, Value):
            return x
        if i not in self._materialized:
            if x.dtype == object:
                self._materialized[i] = self._symbolic_value(i, x)
            else:
                dtype_of(x)  # refuse dtypes the IR lacks, with the IR's message
                self._materialized[i] = self.op.const(x)
        return self._materialized[i]

    def _symbolic_value(self, i: int, x: np.ndarray) -> Value:
        """IR computing a symbolic shape used as data (its dims read with ``shape`` at run time)."""
        v = None if self.dim_sources is None else self.dim_sources.materialize(x, self.op, self._int_dtype())
        if v is None:
            raise self.fail(f"input {i} is a shape computed from symbolic dims {list(x.ravel())} that kcc cannot "
                            "compute at run time; give the model static shapes (input_name_shape_dict)")
        return v

    def _int_dtype(self) -> str:
        """The integer dtype of the node's other integer operands (i64 when none says)."""
        for x in self.inputs:
            if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.dtype != object:
                return "i32" if x.dtype == np.int32 else "i64"
            if isinstance(x, Value) and x.dtype in ("i32", "i64"):
                return x.dtype
        return "i64"

    def shape_value(self, i: int) -> Value | None:
        """Input ``i`` as an IR shape tensor when it is only known at run time (None when it is known now)."""
        x = self.inputs[i] if i < len(self.inputs) else None
        if isinstance(x, Value) and not x.is_const:
            return x
        if isinstance(x, np.ndarray) and x.dtype == object and any(d == "?" for d in x.ravel()):
            return self.value(i)
        return None

    def values(self) -> list[Value]:
        return [self.value(i) for i in range(len(self.inputs)) if self.inputs[i] is not None]

    def is_const(self, i: int) -> bool:
        x = self.inputs[i] if i < len(self.inputs) else None
        return isinstance(x, np.ndarray) and x.dtype != object

    def const(self, i: int) -> np.ndarray:
        """Input ``i`` as a numpy array; it must be a constant (an initializer or folded)."""
        x = self.inputs[i] if i < len(self.inputs) else None
        if isinstance(x, np.ndarray) and x.dtype != object:
            return x
        if isinstance(x, Value) and x.is_const:
            return x.const
        raise self.fail(f"input {i} must be a constant (kcc needs it at conversion time)")

    def dims(self, i: int) -> list[int | str]:
        """A shape operand: ints, or symbols where it was computed from a symbolic dim."""
        x = self.inputs[i] if i < len(self.inputs) else None
        if isinstance(x, np.ndarray):
            return [d if isinstance(d, str) else int(d) for d in x.ravel().tolist()]
        return [int(d) for d in self.const(i).ravel()]

    def shape_source(self, i: int) -> Value | None:
        """The value whose ``Shape`` input ``i`` is, unchanged (for ops building tensors of that shape)."""
        x = self.inputs[i] if i < len(self.inputs) else None
        return self._shape_sources.get(id(x)) if isinstance(x, np.ndarray) else None

    def ints(self, i: int) -> list[int]:
        return [int(d) for d in self.const(i).ravel()]

    def outer(self, name: str) -> Value | np.ndarray | None:
        """A value of the enclosing scope by its ONNX name (what a subgraph captures); None if unknown."""
        return None if self.importer is None else self.importer.env.get(name)


def _attr_value(a: onnx.AttributeProto) -> Any:
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, onnx.TensorProto):
        return onnx.numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8") for s in v]
    return v
