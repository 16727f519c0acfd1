"""The ML Program frontend's table: MIL op type -> handler lowering one operation to IR.

    @mil_op("relu")
    def relu(ctx: MilOpContext) -> Value:
        return ctx.op.relu(ctx.value("x"))

A handler reads its operands by their MIL parameter names: ``ctx.value(p)`` an
IR value, ``ctx.const(p)`` a numpy array for operands that must be known at
conversion time (axes, perms, pads, ...), ``ctx.scalar(p, default)`` a Python
scalar. It returns one result per MIL output (IR values or numpy arrays). The
importer (mlprogram.py) folds operations whose operands are all constant by
running the handler on a scratch graph, so handlers never special-case constants.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.ir import DTYPES, Graph, TensorType, Value, dtype_of
from kcc.table import Table

Handler = Callable[["MilOpContext"], Any]
_REQUIRED = object()


def _load_all() -> None:
    from kcc.frontends.coreml import (  # noqa: F401  (each module fills the table)
        mil_ops_activation, mil_ops_constexpr, mil_ops_control, mil_ops_elementwise, mil_ops_nn,
        mil_ops_recurrent, mil_ops_tensor)


MIL_OPS: Table[Handler] = Table("MIL op handler", _load_all)
mil_op = MIL_OPS.register

# Ops whose handlers lower nested blocks through the importer (mil_ops_control.py): never folded whole.
BLOCK_OPS = frozenset({"while_loop", "cond"})


def supported_mil_ops() -> list[str]:
    return MIL_OPS.names()


class ClassLabel:
    """The label output of ``classify``: not a tensor, resolved by the runtime from the probabilities."""

    def __init__(self, probabilities: Value, labels: list[Any]):
        self.probabilities = probabilities
        self.labels = labels


class MilOpContext:
    """What a handler may use while lowering one MIL operation."""

    def __init__(self, graph: Graph, operation: Any, operands: dict[str, list[Any]],
                 out_types: list[TensorType | None], where: str, name: str, importer: Any = None):
        self.graph = graph
        self.operation = operation
        self.type: str = operation.type
        self.operands = operands
        self.out_types = out_types
        self.where = where
        self.importer = importer
        self.op = GraphBuilder(graph, origin=name, name=name)
        self._materialized: dict[tuple[str, int], Value] = {}

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"{self.where}: MIL op {self.type}: {message}")

    def has(self, param: str) -> bool:
        return bool(self.operands.get(param))

    def _raw(self, param: str, i: int = 0) -> Any:
        args = self.operands.get(param)
        if not args:
            raise self.fail(f"operand {param!r} is missing")
        return args[i]

    def value(self, param: str, i: int = 0) -> Value:
        """Operand ``param`` as an IR value (a constant operand becomes a graph constant)."""
        x = self._raw(param, i)
        if isinstance(x, Value):
            return x
        key = (param, i)
        if key not in self._materialized:
            arr = np.asarray(x)
            if arr.dtype == object:
                raise self.fail(f"operand {param!r} is a string tensor, which cannot be a graph value")
            if arr.dtype not in DTYPES.values():
                arr = arr.astype(np.int32 if arr.dtype.kind in "iu" else np.float32)
            dtype_of(arr)
            self._materialized[key] = self.op.const(arr)
        return self._materialized[key]

    def values(self, param: str) -> list[Value]:
        return [self.value(param, i) for i in range(len(self.operands.get(param) or []))]

    def is_const(self, param: str) -> bool:
        args = self.operands.get(param)
        return bool(args) and all(isinstance(a, np.ndarray) or (isinstance(a, Value) and a.is_const) for a in args)

    def const(self, param: str, default: Any = _REQUIRED) -> Any:
        """Operand ``param`` as a numpy array; it must be known at conversion time."""
        if not self.has(param):
            if default is _REQUIRED:
                raise self.fail(f"operand {param!r} is missing")
            return default
        x = self._raw(param)
        if isinstance(x, Value):
            if x.is_const:
                return x.const
            raise self.fail(f"operand {param!r} must be a constant (kcc needs it at conversion time); "
                            f"give the model static shapes")
        return x

    def scalar(self, param: str, default: Any = _REQUIRED) -> Any:
        v = self.const(param, default)
        if isinstance(v, np.ndarray):
            if v.size != 1:
                raise self.fail(f"operand {param!r} must be a scalar, got shape {list(v.shape)}")
            return v.reshape(()).item()
        return v

    def ints(self, param: str, default: Any = _REQUIRED) -> list[int]:
        v = self.const(param, default)
        return [int(i) for i in np.asarray(v).reshape(-1)]

    def out_type(self, i: int = 0) -> TensorType | None:
        return self.out_types[i] if i < len(self.out_types) else None

    def like(self, array: Any, v: Value) -> Value:
        """A constant with ``v``'s dtype."""
        return self.op.const(np.asarray(array, dtype=DTYPES[v.dtype]))
