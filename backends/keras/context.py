"""The Keras emitter's table and context: IR values -> Keras tensors, in the layout the pass decided.

Every Keras tensor is held with the permutation it is in
(``keras_tensor = transpose(ir_tensor, perm)``). ``ctx.get(v, perm)`` hands an
emitter the tensor in the permutation its Keras layer needs and inserts one
``Permute`` (``keras.ops.transpose`` when the batch axis moves) when it is held
otherwise; constants are simply transposed in numpy. The layout pass
(passes/layout_channels_last.py) chooses the permutations so that these
conversions are rare: ``ctx.permutes`` counts them.

Dynamic dims. Keras's reshapes take at most one run-time dim besides the
batch, so a value whose IR dim merges two dynamic ones (tf2onnx's ``(N*T, 8)``
before a Dense, ``(2*N, T, 4)`` head batches) may also be held *refined*: a
Keras tensor in IR data order whose axes split each IR dim into factors
(``(N, T, 8)``, ``(N, 2, T, 4)``); ``ctx.refined`` keeps those, the emitters
of emit_shape.py make and read them. ``ctx.dim_tensor(symbol)`` is a 1-D
Keras tensor whose length is a symbolic dim at run time (a slice of a tensor
that has that dim), from which the shape ops build their run-time values.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from kcc.backends import UniqueNames
from kcc.errors import ConversionError, UnsupportedOpError
from kcc.ir import Graph, Node, Value
from kcc.passes.layout_channels_last import META_KEY, keras_perm
from kcc.table import Table

Emitter = Callable[["KerasContext", Node], None]
EMITTERS: Table[Emitter] = Table("Keras emitter")
keras_emitter = EMITTERS.register
supported_ops = EMITTERS.names


def emitter_for(node: Node, target: str) -> Emitter:
    try:
        return EMITTERS[node.op]
    except KeyError:
        where = f" (from {node.origin!r})" if node.origin else ""
        raise UnsupportedOpError(
            f"IR op {node.op!r} of node {node.name}{where} has no Keras form; target {target!r} cannot "
            f"express it. Convert to 'onnx' or 'coreml' instead, or replace that layer/node in the source.") from None


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


class KerasContext:
    """State of one emission: the Keras tensors made so far and the layout decision."""

    def __init__(self, graph: Graph, keras: Any, target: str, trainable: bool = True):
        self.graph = graph
        self.keras = keras
        self.layers = keras.layers
        self.ops = keras.ops
        self.target = target
        self.trainable = trainable
        self.layout: dict[str, bool] = dict(graph.meta.get(META_KEY, {}))
        self._tensors: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._held: dict[str, tuple[int, ...]] = {}
        self._names = UniqueNames(sep="_", first=2)
        self.permutes = 0
        # Graph output value -> its reserved Keras layer name (set by the emitter).
        self.output_names: dict[str, str] = {}
        self.node: Node | None = None
        # Value name -> (Keras tensor in IR data order, its shape: IR dims split into factors).
        self.refined: dict[str, tuple[Any, tuple]] = {}
        self._dims: dict[str, Any] = {}

    # ------------------------------------------------------------- layouts
    def perm(self, v: Value) -> tuple[int, ...]:
        """The permutation the layout pass chose for ``v``."""
        return keras_perm(v, self.layout.get(v.name, False))

    def cl(self, v: Value) -> tuple[int, ...]:
        """Channels-last permutation of ``v`` (identity for rank < 3)."""
        return keras_perm(v, True)

    @staticmethod
    def ident(v: Value) -> tuple[int, ...]:
        return tuple(range(v.rank))

    # ------------------------------------------------------------- tensors
    def put(self, v: Value, tensor: Any, perm: tuple[int, ...] | None = None) -> None:
        """Record the Keras tensor of ``v``, held in ``perm`` (default: the decided one)."""
        perm = self.perm(v) if perm is None else tuple(perm)
        self._tensors[(v.name, perm)] = tensor
        self._held[v.name] = perm

    def get(self, v: Value, perm: tuple[int, ...] | None = None, rank: int | None = None) -> Any:
        """``v`` as a Keras tensor (a numpy array for constants) in ``perm`` (default: as decided).

        ``rank``: first align ``v`` to that rank numpy-style (leading 1s), for
        broadcasting operands of elementwise ops.
        """
        if v.is_const:
            arr = v.const
            if rank is not None and arr.ndim < rank:
                arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
            perm = tuple(range(arr.ndim)) if perm is None else tuple(perm)
            return np.ascontiguousarray(np.transpose(arr, perm))
        if v.name not in self._held and v.name in self.refined:
            self._materialize(v)
        if v.name not in self._held:
            raise ConversionError(f"{v.name} is read before it is made (a kcc bug in the Keras backend)")
        if rank is not None and v.rank < rank:
            t = self.ops.reshape(self.get(v, self.ident(v)), (1,) * (rank - v.rank) + tuple(
                -1 if isinstance(d, str) else d for d in v.shape))
            perm = tuple(range(rank)) if perm is None else tuple(perm)
            return t if perm == tuple(range(rank)) else self.ops.transpose(t, perm)
        perm = self.perm(v) if perm is None else tuple(perm)
        key = (v.name, perm)
        if key not in self._tensors:
            held = self._held[v.name]
            src = self._tensors[(v.name, held)]
            q = tuple(inverse(held)[p] for p in perm)
            self._tensors[key] = self.transpose(src, q)
        return self._tensors[key]

    def _materialize(self, v: Value) -> None:
        """Reshape a refined-only value to its IR shape, when Keras can (at most one run-time dim)."""
        t, _ = self.refined[v.name]
        dynamic = [i for i, d in enumerate(v.shape) if not isinstance(d, int)]
        if len(dynamic) > 1:
            node = self.node
            where = f"node {node.name} ({node.op}) from {node.origin!r}" if node is not None else v.name
            raise UnsupportedOpError(
                f"{where}: needs {v.name} of shape {v.shape} as one tensor, and Keras cannot reshape to "
                f"{len(dynamic)} run-time dims; target {self.target!r} cannot express it. Fix the dynamic axes "
                "(input_name_shape_dict) or convert to 'onnx' or 'coreml' instead.")
        shape = tuple(-1 if not isinstance(d, int) else d for d in v.shape)
        self.put(v, self.ops.reshape(t, shape), self.ident(v))

    def dim_tensor(self, dim: Any) -> Any | None:
        """A 1-D Keras tensor whose run-time length is the symbolic ``dim`` (None when no tensor has it).

        Found on an axis of a tensor made so far (graph inputs first) as ``t[0, .., :, .., 0]``.
        """
        if dim in self._dims:
            return self._dims[dim]
        candidates = [(name, perm) for name, perm in self._held.items()]
        inputs = {v.name for v in self.graph.inputs}
        candidates.sort(key=lambda c: c[0] not in inputs)
        for name, perm in candidates:
            v = self.graph.value(name)
            if dim not in v.shape:
                continue
            t = self._tensors[(name, perm)]
            axis = perm.index(v.shape.index(dim))
            index = tuple(slice(None) if i == axis else 0 for i in range(v.rank))
            self._dims[dim] = t[index]
            return self._dims[dim]
        for name, (t, atoms) in self.refined.items():
            if dim in atoms:
                index = tuple(slice(None) if i == atoms.index(dim) else 0 for i in range(len(atoms)))
                self._dims[dim] = t[index]
                return self._dims[dim]
        return None

    def transpose(self, tensor: Any, q: tuple[int, ...]) -> Any:
        """Move axes of a Keras tensor: nothing, a Permute layer, or keras.ops.transpose (batch moves)."""
        if q == tuple(range(len(q))):
            return tensor
        self.permutes += 1
        if q[0] == 0:
            return self.layers.Permute(tuple(q[1:]), name=self.name("permute"))(tensor)
        return self.ops.transpose(tensor, q)

    def axis(self, v: Value, ir_axis: int, perm: tuple[int, ...] | None = None) -> int:
        """Where IR axis ``ir_axis`` of ``v`` is in its Keras tensor held in ``perm``."""
        perm = self.perm(v) if perm is None else perm
        return perm.index(ir_axis % v.rank)

    # -------------------------------------------------------------- layers
    def name(self, hint: str | None = None) -> str:
        """A unique Keras layer name derived from the current node's name (Keras forbids '/')."""
        if hint is None and self.node is not None and len(self.node.outputs) == 1 \
                and self.graph.is_output(self.node.output) and self.output_names.get(self.node.output.name):
            return self.output_names.pop(self.node.output.name)  # reserved: the model output keeps its name
        base = hint if hint is not None else (self.node.name if self.node is not None else "layer")
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", base).strip("_") or "layer"
        return self._names.take(base)

    def weight(self, node: Node, slot: int, what: str) -> np.ndarray | None:
        """The constant at input ``slot`` as float32 (None when absent), or a clear error."""
        v = node.inputs[slot] if slot < len(node.inputs) else None
        if v is None:
            return None
        if not v.is_const:
            hint = ("convert it for inference with keras_trainable=False (CLI: --inference-only), which "
                    "computes it in the graph" if self.trainable else "no Keras form computes it in the graph")
            raise ConversionError(
                f"node {node.name} ({node.op}) from {node.origin!r}: its {what} is computed in the graph "
                f"({v.name}), not a constant, so the model cannot be made trainable for target "
                f"{self.target!r}; {hint}.")
        arr = v.const
        return arr.astype(np.float32) if arr.dtype.kind == "f" or arr.dtype.kind in "iu" else arr

    def computed(self, node: Node, slot: int) -> bool:
        """True when input ``slot`` is computed and the model is converted for inference (keras.ops path)."""
        v = node.inputs[slot]
        return v is not None and not v.is_const and not self.trainable

    def call(self, layer: Any, x: Any, weights: list[np.ndarray] | None = None) -> Any:
        """Apply ``layer`` (building it) then load ``weights`` into its variables."""
        y = layer(x)
        if weights is not None:
            layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
        return y

    def fail(self, node: Node, why: str) -> None:
        where = f" (from {node.origin!r})" if node.origin else ""
        raise UnsupportedOpError(f"IR op {node.op!r} of node {node.name}{where}: {why}; target {self.target!r} "
                                 "cannot express it. Convert to 'onnx' or 'coreml' instead.")
