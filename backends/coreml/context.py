"""The Core ML emitter's state and its table from IR op to emitter.

An emitter is registered per IR op with ``@coreml_emitter("conv")`` and called
as ``emit(ctx, node)``; it appends NeuralNetwork layers through ``ctx.layer``.

Two blob layouts, chosen once per model before emission by the layout analysis
(layout.py, which reads the ``rank5`` checks registered next to each emitter):

* ``rank5`` (specification 1-3, what the old Keras converter emitted): every
  blob is Core ML's ``[Seq, Batch, C, H, W]`` and the IR batch axis is the
  implicit Batch axis. An IR value ``(N, C)`` is the blob ``(C, 1, 1)``,
  ``(N, C, L)`` is ``(C, 1, L)`` and ``(N, C, H, W)`` is ``(C, H, W)``
  (:meth:`CoremlContext.chw`). Other ranks cannot be expressed.
* ``nd`` (specification 4, ``EXACT_ARRAY_MAPPING``): a blob is the IR value
  itself, batch axis included (declared as 1).

An emitter reads ``ctx.nd``. ``ctx.need_nd(node, why)`` states that a branch
exists only in the ND layout: reached in the rank-5 layout it is a kcc bug (the
node's ``rank5`` check missed a case), reported as such.
``ctx.require(version, node, why)`` records a layer that exists only from a
later specification version; the lowest version the model needs is the
largest of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from kcc.backends import UniqueNames
from kcc.backends.coreml.concrete import ConcreteShapes
from kcc.backends.coreml.writer import defer_weights
from kcc.backends.proto_stream import varint
from kcc.errors import ConversionError, IRError, UnsupportedOpError
from kcc.ir import Graph, Node, Value
from kcc.table import Table

Emitter = Callable[["CoremlContext", Node], None]
EMITTERS: Table[Emitter] = Table("Core ML emitter")
coreml_emitter = EMITTERS.register

# IR op -> why a node of it needs the ND layout (None: it has a rank-5 form).
# Registered next to the op's emitter; read by the layout analysis (layout.py).
Rank5Check = Callable[["CoremlContext", Node], "str | None"]
RANK5_CHECKS: Table[Rank5Check] = Table("Core ML rank-5 check")
rank5_check = RANK5_CHECKS.register


def emitter_for(node: Node) -> Emitter:
    try:
        return EMITTERS[node.op]
    except KeyError:
        raise UnsupportedOpError(
            f"IR op {node.op!r} of node {node.name}{origin_of(node)} has no Core ML emitter; target 'coreml' "
            f"cannot express it. Try target='onnx', or replace the layer.") from None


supported_ops = EMITTERS.names


def origin_of(node: Node) -> str:
    return f" (from layer {node.origin!r})" if node.origin else ""


def layout_bug(node: Node | None, why: str) -> ConversionError:
    """An emitter reached an ND-only branch in the rank-5 layout: the layout analysis missed it."""
    where = f"node {node.name} ({node.op}){origin_of(node)}" if node is not None else "a constant"
    return ConversionError(f"kcc bug (please report it): the Core ML layout analysis chose the rank-5 layout, "
                           f"but {where} needs ND layers ({why}); its rank5 check misses this case")


@dataclass
class Requirement:
    """A specification version some part of the model needs, and why."""

    version: int
    what: str


# ---------------------------------------------------------------- weights
def set_weights(params: Any, array: np.ndarray, float16: bool = False) -> None:
    """Fill a ``WeightParams`` from an array, row-major, without a Python loop.

    float32 goes into ``floatValue`` by merging its packed wire encoding (field 1,
    length-delimited little-endian floats): protobuf copies the bytes in C.
    float16 goes into ``float16Value`` as bytes.
    """
    flat = np.ascontiguousarray(array, dtype="<f4").ravel()
    params.Clear()
    if float16:
        params.float16Value = flat.astype("<f2").tobytes()
    elif flat.size:
        raw = flat.tobytes()
        params.MergeFromString(b"\x0a" + varint(len(raw)) + raw)


# ---------------------------------------------------------------- context
@dataclass
class CoremlContext:
    graph: Graph
    network: Any                       # NeuralNetwork_pb2.NeuralNetwork(-Classifier); None for the analysis
    nd: bool = False                   # blob layout: False = rank5, True = nd
    float16: bool = False              # weights as float16
    names: dict[str, str] = field(default_factory=dict)   # IR value name -> blob name
    requirements: list[Requirement] = field(default_factory=list)
    # node name -> the Core ML layers emitted for it (updatable marks them).
    layers_of: dict[str, list[Any]] = field(default_factory=dict)
    # time-major recurrent sequences: the [T, N, C, 1, 1] blobs of the rank-5 layout
    seq: set[str] = field(default_factory=set)
    _taken: UniqueNames = field(default_factory=UniqueNames)
    _layer_names: UniqueNames = field(default_factory=UniqueNames)
    # input symbol -> the size the layers are written for (flexible.py plans them)
    sizes: dict[str, int] = field(default_factory=dict)
    # input symbols whose sizes may vary: emitters write -1 or read the shape at run time for them
    dynamic: set[str] = field(default_factory=set)
    # input symbol -> the sizes its axis accepts (flexible.AxisSizes), for the declarations
    flexible: dict[str, Any] = field(default_factory=dict)
    # When set, large weights are left out of the spec and kept here, to be streamed to the
    # file (writer.py; the CLI's path); None: every weight goes into the spec.
    holes: list[np.ndarray] | None = None
    _shapes: ConcreteShapes | None = None
    _current: Node | None = None

    # -- naming
    def name(self, v: Value) -> str:
        """The blob name of an IR value (constants get a load-constant layer on first use)."""
        if v.is_const and v.name not in self.names:
            self._emit_constant(v)
        return self.names.get(v.name, v.name)

    def out(self, node: Node, i: int = 0) -> str:
        return self.name(node.outputs[i])

    def fresh(self, hint: str) -> str:
        return self._taken.take(hint)

    # -- layers
    def layer(self, kind: str, inputs: list[str], outputs: list[str] | str | None = None, *,
              name: str | None = None) -> tuple[Any, Any]:
        """Append a layer of oneof type ``kind``; returns (layer message, its params message)."""
        node = self._current
        lyr = self.network.layers.add()
        lyr.name = self._layer_name(name or (node.name if node is not None else kind))
        lyr.input.extend(inputs)
        if outputs is None:
            outputs = [self.fresh(f"{lyr.name}_out")]
        elif isinstance(outputs, str):
            outputs = [outputs]
        lyr.output.extend(outputs)
        params = getattr(lyr, kind)
        params.SetInParent()
        if node is not None:
            self.layers_of.setdefault(node.name, []).append(lyr)
        return lyr, params

    def _layer_name(self, hint: str) -> str:
        return self._layer_names.take(hint)

    def tmp(self, hint: str = "t") -> str:
        base = self._current.name if self._current is not None else "t"
        return self.fresh(f"{base}_{hint}")

    def weights(self, params: Any, array: np.ndarray) -> None:
        self._set_weights(params, array, self.float16)

    def _set_weights(self, params: Any, array: np.ndarray, float16: bool) -> None:
        if self.holes is None or not defer_weights(params, array, float16, self.holes):
            set_weights(params, array, float16)

    # -- requirements
    def require(self, version: int, node: Node | None, why: str) -> None:
        where = f"node {node.name} ({node.op}){origin_of(node)}" if node is not None else "the model"
        self.requirements.append(Requirement(version, f"{where}: {why}"))

    def need_nd(self, node: Node, why: str) -> None:
        """State that the branch being emitted exists only in the ND layout."""
        if not self.nd:
            raise layout_bug(node, why)

    def chw_reason(self, v: Value) -> str | None:
        """Why ``v`` has no rank-5 (C, H, W) blob, or None."""
        if v.name in self.seq:
            return f"the recurrent sequence {v.name} is used by a non-recurrent op"
        r = len(self.dims(v))
        return None if 2 <= r <= 4 else f"a rank-{r} tensor ({v.type}) has no rank-5 CHW form"

    def fail(self, node: Node, message: str) -> ConversionError:
        return UnsupportedOpError(f"Core ML: node {node.name} ({node.op}){origin_of(node)}: {message}")

    # -- shapes
    def data_dependent(self, v: Value) -> bool:
        """Whether ``v``'s size comes from data at run time (its ``dims`` are a stand-in)."""
        self.dims(v)
        return v.name in self._shapes.data_dependent

    def dims(self, v: Value, node: Node | None = None) -> tuple[int, ...]:
        """The concrete IR shape of ``v`` at the sizes the model is emitted for.

        ``sizes`` gives every input symbol a size (the batch ``N`` is 1 unless the
        flexible-shape planner says otherwise, see flexible.py); dims derived from
        symbols are recomputed by the ops' shape functions (concrete.py).
        """
        if self._shapes is None:
            self._shapes = ConcreteShapes(self.graph, {"N": 1, **self.sizes})
        try:
            return self._shapes.dims(v)
        except IRError as e:
            where = node if node is not None else self._current
            raise ConversionError(f"Core ML: the shapes of {v.name}{origin_of(where) if where else ''} do not "
                                  f"fit the input sizes {self.sizes}: {e}") from None
        except ConversionError:
            where = node if node is not None else self._current
            raise ConversionError(
                f"Core ML needs a size for every dynamic axis: {v.name} ({v.type})"
                f"{origin_of(where) if where is not None else ''} depends on an input dim of no known size; "
                f"give the input a fixed shape with input_name_shape_dict.") from None

    def chw(self, v: Value) -> tuple[int, int, int]:
        """The rank-5 layout's (C, H, W) of an IR value (the layout analysis checked it has one)."""
        why = self.chw_reason(v)
        if why is not None:
            raise layout_bug(self._current, why)
        d = self.dims(v)
        if len(d) == 2:
            return (d[1], 1, 1)
        if len(d) == 3:
            return (d[1], 1, d[2])
        if len(d) == 4:
            return (d[1], d[2], d[3])
        raise layout_bug(self._current, f"a rank-{len(d)} tensor ({v.type}) has no rank-5 CHW form")

    def blob_shape(self, v: Value) -> tuple[int, ...]:
        """Shape of the Core ML blob of ``v`` (without Seq/Batch in the rank-5 layout)."""
        return self.dims(v) if self.nd else self.chw(v)

    # -- constants
    def constant(self, array: np.ndarray, hint: str, chw: tuple[int, ...] | None = None) -> str:
        """A blob holding ``array``: loadConstantND (its own shape) or loadConstant (shape ``chw``)."""
        arr = np.asarray(array, dtype=np.float32)
        blob = self.fresh(hint)
        if self.nd:
            _, p = self.layer("loadConstantND", [], blob, name=blob)
            shape = arr.shape or (1,)
            p.shape.extend(int(s) for s in shape)
            self._set_weights(p.data, arr.reshape(shape), False)
            self.require(4, self._current, "loadConstantND")
        else:
            shape = chw if chw is not None else const_chw(arr)
            if shape is None:
                raise layout_bug(self._current, f"a constant of shape {arr.shape} has no CHW form")
            _, p = self.layer("loadConstant", [], blob, name=blob)
            p.shape.extend(int(s) for s in shape)
            self._set_weights(p.data, arr.reshape(shape), False)
        return blob

    def _emit_constant(self, v: Value) -> None:
        self.names[v.name] = self.constant(v.const, v.name)

    def run(self, node: Node) -> None:
        self._current = node
        try:
            emitter_for(node)(self, node)
        finally:
            self._current = None


def const_chw(arr: np.ndarray) -> tuple[int, int, int] | None:
    """CHW shape of a constant read as an IR value of its own rank (leading axis = batch 1)."""
    s = tuple(int(d) for d in arr.shape)
    if len(s) == 0:
        return (1, 1, 1)
    if s[0] != 1 or len(s) == 1:
        return None
    return {2: (s[1], 1, 1), 3: (s[1], 1, s[-1]), 4: s[1:]}.get(len(s))  # type: ignore[return-value]


def broadcast_const(arr: np.ndarray, rank: int) -> np.ndarray:
    """A constant operand with leading 1s up to ``rank`` (numpy broadcasting's alignment)."""
    arr = np.asarray(arr, dtype=np.float32)
    return arr.reshape((1,) * max(rank - arr.ndim, 0) + arr.shape)


__all__ = ["CoremlContext", "coreml_emitter", "rank5_check", "RANK5_CHECKS", "emitter_for", "supported_ops",
           "layout_bug", "set_weights", "broadcast_const", "const_chw"]
