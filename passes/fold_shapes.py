"""fold_shapes: settle every shape computation the known dims make constant.

Shape tensors carry symbolic values (``TensorType.value``, kcc.ops.shape_values):
``shape(x)`` of ``x: f32[N,T,8]`` is ``(N, T, 8)``, a gather of it ``(N, T)``, ...
This pass acts on them:

1. a node whose output value is all ints is that constant (``shape`` of a static
   tensor, ``gather(shape(x), 2)`` of a static axis, a product of static dims);
2. a node whose inputs are all constants is evaluated when its result is integer
   or bool, or computed from shape entries only (``range(0, 5, 1)``,
   ``less(range, unsqueeze(range))``, a dim cast to float; at most ``max_elements``);
3. ``reshape_to`` whose target value resolves (ints, a symbol equal to the input
   dim at that position, at most one unknown) is the static ``reshape``;
4. ``slice_to`` whose bounds' values are ints (or the sliced axis's own symbol as
   an end) is the static ``slice``;
5. ``expand`` that broadcasts nothing (each target entry 1 or the input's own dim)
   is its input, and so is a ``slice`` that keeps every element (tf2onnx's
   ``x[:, None]`` slices ``0:1e9`` on every axis).

Before (``x: f32[N,T,8]``)::

    %s: i64[3] = shape(%x)
    %nt: i64[2] = slice(%s) {starts=(0,), ends=(2,), axes=(0,)}
    %spec: i64[4] = concat(%nt, %c2m1) {axis=0}
    %y: f32[N,T,2,4] = reshape_to(%x, %spec)

After::

    %y: f32[N,T,2,4] = reshape(%x) {shape=(0, 0, 2, -1)}

With ``x: f32[2,5,8]`` the same graph folds ``%s`` to a constant first, and the
emitted model has no Shape op. Shape computations left unused are removed.
Not folded: a ``reshape_to`` whose target moves a symbolic dim to another
position or has two unknown entries (it stays dynamic: ONNX Reshape of a
computed shape), an ``expand`` that really broadcasts, float constant subgraphs
(other passes own weights), constants above ``max_elements``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.ir import Graph, Node, Value
from kcc.ops.registry import get_op
from kcc.ops.shape_ops import slice_bound, static_reshape_spec
from kcc.ops.shape_values import is_known
from kcc.passes.base import Pass, register_pass
from kcc.tensor_type import DTYPES

# Ops that only compute shape tensors, indices and masks from them: evaluated when their inputs are constants.
_FOLDABLE = frozenset({
    "shape", "range", "expand", "reshape_to", "reshape", "identity", "cast", "gather", "slice", "concat",
    "squeeze", "unsqueeze", "add", "sub", "mul", "div", "max", "min", "neg", "reduce_prod", "reduce_sum",
    "greater", "less", "equal", "greater_equal", "less_equal", "logical_and", "logical_or", "logical_xor",
    "logical_not", "where", "cumsum", "fill_like", "tile", "slice_to",
})
# A slice end at least this large means "to the end" (as kcc.ops.tensor's slice shape function reads it).
_TO_THE_END = 10 ** 9


@register_pass
@dataclass
class FoldShapes(Pass):
    name = "fold_shapes"
    # Largest constant (elements) rule 2 materializes.
    max_elements: int = 4096

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.nodes():
            if len(node.outputs) != 1:
                continue
            if graph.is_output(node.output) and (self._settled(node) or (
                    node.op in ("expand", "slice") and not self._plain_result(graph, node.inputs[0]))):
                continue  # a graph output stays a node's result (not a constant, an input or another output)
            new = self._fold(graph, node)
            if new is not None:
                graph.replace_all_uses(node.output, new)
                changed = True
        # Shape computations nobody reads any more go too (also those fold_dense_reshape left).
        return self._remove_dead(graph) or changed

    def _fold(self, graph: Graph, node: Node) -> Value | None:
        out = node.output
        if is_known(out.type.value):
            dtype = DTYPES[out.dtype]
            return graph.add_const(np.asarray(out.type.value, dtype=dtype).reshape(
                tuple(int(d) for d in out.shape)), out.name)
        if node.op in _FOLDABLE and self._all_const(node) and self._small_result(node):
            arrays = [None if v is None else v.const for v in node.inputs]
            (result,) = get_op(node.op).run(node.attrs, arrays)
            if tuple(result.shape) == out.shape:
                return graph.add_const(np.asarray(result, dtype=DTYPES[out.dtype]), out.name)
        if node.op == "reshape_to":
            return self._reshape(graph, node)
        if node.op == "expand":
            return self._expand(node)
        if node.op == "slice_to":
            return self._slice_to(graph, node)
        if node.op == "slice" and self._whole(node):
            return node.inputs[0]
        return None

    @staticmethod
    def _whole(node: Node) -> bool:
        """A slice keeping every element (start 0, step 1, end past the axis: tf2onnx's ``x[:, None]``)."""
        x, a = node.inputs[0], node.attrs
        steps = a["steps"] or (1,) * len(a["axes"])
        for s, e, axis, st in zip(a["starts"], a["ends"], a["axes"], steps):
            dim = x.shape[axis % x.rank]
            if st != 1 or s != 0 or not (e >= _TO_THE_END or (isinstance(dim, int) and e >= dim)):
                return False
        return node.output.type == x.type

    @staticmethod
    def _plain_result(graph: Graph, v: Value) -> bool:
        return graph.producer(v) is not None and not graph.is_output(v)

    def _settled(self, node: Node) -> bool:
        """Whether rule 1 or 2 would make the node's result a constant."""
        return is_known(node.output.type.value) or (
            node.op in _FOLDABLE and self._all_const(node) and self._small_result(node))

    @staticmethod
    def _all_const(node: Node) -> bool:
        return all(v is None or v.is_const for v in node.inputs) and any(v is not None for v in node.inputs)

    def _small_result(self, node: Node) -> bool:
        """An integer/bool result, or any result computed only from shape entries (a dim cast to float)."""
        out = node.output
        from_dims = all(v is None or v.type.value is not None for v in node.inputs)
        if out.dtype not in ("i32", "i64", "bool", "i8", "u8") and not from_dims:
            return False
        return all(isinstance(d, int) for d in out.shape) and int(np.prod(out.shape)) <= self.max_elements

    @staticmethod
    def _reshape(graph: Graph, node: Node) -> Value | None:
        x, target = node.inputs
        if target.type.value is None:
            return None
        spec = static_reshape_spec(x.shape, target.type.value)
        if spec is None:
            return None
        attrs = get_op("reshape").normalize_attrs({"shape": spec}, node.name)
        (t,) = get_op("reshape").infer_types(attrs, [x.type], node.name)
        if t != node.output.type:
            return None
        new = graph.add_node("reshape", [x], attrs, name=node.name + "_static", origin=node.origin)
        return new.output

    @staticmethod
    def _slice_to(graph: Graph, node: Node) -> Value | None:
        """The static ``slice`` once both bounds are known (``x[0:T]`` of ``x: f32[T,8]`` keeps the whole axis)."""
        x, starts, ends = node.inputs
        if starts.type.value is None or ends.type.value is None:
            return None
        axes = [a % x.rank for a in node.attrs["axes"]]
        lo = [slice_bound(s, x.shape[a]) for s, a in zip(starts.type.value, axes)]
        hi = [slice_bound(e, x.shape[a]) for e, a in zip(ends.type.value, axes)]
        if None in lo or None in hi:
            return None
        attrs = get_op("slice").normalize_attrs({"starts": tuple(lo), "ends": tuple(hi), "axes": tuple(axes),
                                                 "steps": node.attrs["steps"]}, node.name)
        (t,) = get_op("slice").infer_types(attrs, [x.type], node.name)
        if t != node.output.type:
            return None
        return graph.add_node("slice", [x], attrs, name=node.name + "_static", origin=node.origin).output

    @staticmethod
    def _expand(node: Node) -> Value | None:
        x, shape = node.inputs
        value = shape.type.value
        if value is None or len(value) > x.rank:
            return None
        tail = x.shape[x.rank - len(value):]
        if all(v == 1 or (v == d and v != "?") for v, d in zip(value, tail)):
            return x
        return None

    @staticmethod
    def _remove_dead(graph: Graph) -> bool:
        removed = False
        for node in reversed(graph.nodes()):
            if node.op in _FOLDABLE and all(
                    not graph.uses(v) and not graph.is_output(v) for v in node.outputs):
                graph.remove_node(node)
                removed = True
        if removed:
            for v in graph.constants():
                if not graph.uses(v) and not graph.is_output(v):
                    graph.remove_value(v)
        return removed

