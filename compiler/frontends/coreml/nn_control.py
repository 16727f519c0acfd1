"""NeuralNetwork control flow (specification 4): ``branch``, ``loop``, ``loopBreak``, ``loopContinue``, by predication.

The IR has no control flow: every node runs. A branch or a bounded loop can still
be written as straight-line code that computes every path and keeps, for each
blob, the value of the path Core ML would have taken:

* ``active`` is a bool scalar IR value (None: always): true where the layer being
  lowered would run. A layer lowered under ``active`` writes each output blob as
  ``where(active, new, old)`` when the blob existed before (a blob's first value
  is taken as is: reading it on a path that never wrote it is an error in Core ML
  too). The blob must keep its shape: the IR gives every value one shape.
* ``branch``: the condition ``|c[0]| > 1e-6`` (NeuralNetwork.proto) is ``cond``;
  the if-network is lowered under ``active & cond``, the else-network under
  ``active & !cond``. Both see the blobs from before the branch on their own path.
* ``loop`` is unrolled to its bound: ``maxLoopIterations``, or a constant
  iteration-count input. Before each iteration the condition network (if any) is
  lowered and the loop's ``active`` and-ed with its condition (what kcc's runtime
  does: ``while count < limit and condition()``). A while loop with no bound
  (``maxLoopIterations`` 0, no input) or a run-time count cannot be unrolled and is
  refused naming the layer; so is a loop past :data:`MAX_UNROLLED_LAYERS` layers.
* ``loopBreak`` / ``loopContinue`` under ``p``: the innermost loop's broken /
  continued lanes gain ``p``; the rest of their network is dead under ``p`` (so it
  is not lowered), and a network that called into it continues under
  ``active & !(broken | continued)``. Broken lanes stay off for the later
  iterations; continued ones come back at the next.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kcc.errors import ModelFileError, UnsupportedOpError
from kcc.frontends.coreml.nn_context import node_name
from kcc.ir import Graph, Value

CONTROL_LAYERS = ("branch", "loop", "loopBreak", "loopContinue")
# A loop's iterations times its layers (nested loops multiply): past this, unrolling is refused.
MAX_UNROLLED_LAYERS = 20_000
# NeuralNetwork.proto: a condition is true when its absolute value is greater than 1e-6.
TRUTH_THRESHOLD = 1e-6


class _Stop(Exception):
    """A break/continue ended the network being lowered (the rest is dead on every lane that ran it)."""


@dataclass
class _LoopFrame:
    broken: Value | None = None
    continued: Value | None = None


class ControlFlow:
    """Predicated lowering of the control-flow layers for one importer.

    ``lower_layer(layer)`` lowers one ordinary layer (the importer's own method,
    which writes its outputs through :meth:`write`).
    """

    def __init__(self, graph: Graph, env: dict[str, Value], where: str, lower_layer: Callable[[Any], None]):
        self.graph = graph
        self.env = env
        self.where = where
        self.lower_layer = lower_layer
        self.active: Value | None = None
        self.frames: list[_LoopFrame] = []
        self.unrolled = 0

    # ------------------------------------------------------------ writes
    def write(self, name: str, value: Value, layer_name: str) -> None:
        old = self.env.get(name)
        if self.active is None or old is None:
            self.env[name] = value
            return
        if tuple(old.shape) != tuple(value.shape) or old.dtype != value.dtype:
            raise UnsupportedOpError(
                f"{self.where}: layer {layer_name!r} writes blob {name!r} as {value.dtype}{list(value.shape)} "
                f"inside a branch or loop where it was {old.dtype}{list(old.shape)}; kcc lowers control flow "
                f"by computing every path, which needs each blob to keep one shape")
        self.env[name] = self._node("where", [self.active, value, old], layer_name)

    # ------------------------------------------------------------ layers
    def lower(self, layer: Any, inputs: list[Value]) -> None:
        kind = layer.WhichOneof("layer")
        getattr(self, f"_{kind}")(layer, getattr(layer, kind), inputs)

    def _branch(self, layer: Any, p: Any, inputs: list[Value]) -> None:
        if not inputs:
            raise ModelFileError(f"{self.where}: branch layer {layer.name!r} has no condition input")
        cond = self._truth(inputs[0], layer.name)
        outer = self.active
        self.active = self._and(outer, cond, layer.name)
        self._network(p.ifBranch, layer.name)
        if p.HasField("elseBranch"):
            self.active = self._and(outer, self._node("logical_not", [cond], layer.name), layer.name)
            self._network(p.elseBranch, layer.name)
        self.active = self._resume(outer, layer.name)

    def _loop(self, layer: Any, p: Any, inputs: list[Value]) -> None:
        count = self._bound(layer, p, inputs)
        body = list(p.bodyNetwork.layers) + (list(p.conditionNetwork.layers) if p.conditionVar else [])
        self.unrolled += count * max(len(body), 1)
        if self.unrolled > MAX_UNROLLED_LAYERS:
            raise UnsupportedOpError(
                f"{self.where}: loop layer {layer.name!r} would unroll to more than {MAX_UNROLLED_LAYERS} "
                f"layers ({count} iterations of {len(body)}); kcc's IR has no loop, so loops are unrolled. "
                f"Re-convert the model with a smaller bound")
        outer = self.active
        frame = _LoopFrame()
        self.frames.append(frame)
        running = outer
        try:
            for _ in range(count):
                self.active = running
                if p.conditionVar:
                    self._network(p.conditionNetwork, layer.name)
                    if p.conditionVar not in self.env:
                        raise ModelFileError(f"{self.where}: loop layer {layer.name!r}: the condition network "
                                             f"does not produce {p.conditionVar!r}")
                    running = self._and(running, self._truth(self.env[p.conditionVar], layer.name), layer.name)
                    self.active = running
                frame.continued = None
                self._network(p.bodyNetwork, layer.name)
                if frame.broken is not None:
                    running = self._and(running, self._node("logical_not", [frame.broken], layer.name), layer.name)
        finally:
            self.frames.pop()
        self.active = outer

    def _loopBreak(self, layer: Any, p: Any, inputs: list[Value]) -> None:  # noqa: N802 (the layer's name)
        self._leave(layer, "broken")

    def _loopContinue(self, layer: Any, p: Any, inputs: list[Value]) -> None:  # noqa: N802
        self._leave(layer, "continued")

    # ------------------------------------------------------------ helpers
    def _leave(self, layer: Any, flag: str) -> None:
        if not self.frames:
            raise ModelFileError(f"{self.where}: layer {layer.name!r} ({layer.WhichOneof('layer')}) is outside "
                                 f"any loop")
        frame = self.frames[-1]
        here = self.active if self.active is not None else self._const(True, layer.name)
        old = getattr(frame, flag)
        setattr(frame, flag, here if old is None else self._node("logical_or", [old, here], layer.name))
        raise _Stop()

    def _network(self, network: Any, name: str) -> None:
        """Lower a nested network's layers under ``self.active``; a break/continue ends it."""
        try:
            for inner in network.layers:
                self.lower_layer(inner)
        except _Stop:
            if not self.frames:
                raise
            # The enclosing network (a branch's caller) goes on where nothing stopped; see _resume.

    def _resume(self, outer: Value | None, name: str) -> Value | None:
        """``outer`` without the lanes a break or continue of the innermost loop stopped."""
        if not self.frames:
            return outer
        frame = self.frames[-1]
        stopped = [v for v in (frame.broken, frame.continued) if v is not None]
        if not stopped:
            return outer
        gone = stopped[0] if len(stopped) == 1 else self._node("logical_or", stopped, name)
        return self._and(outer, self._node("logical_not", [gone], name), name)

    def _bound(self, layer: Any, p: Any, inputs: list[Value]) -> int:
        if inputs:
            v = inputs[0]
            if not v.is_const:
                raise UnsupportedOpError(
                    f"{self.where}: loop layer {layer.name!r} takes its iteration count from blob "
                    f"{layer.input[0]!r}, known only at run time; kcc's IR has no loop, so it unrolls loops to a "
                    f"count known when converting")
            return max(int(np.asarray(v.const).reshape(-1)[0]), 0)
        if p.conditionVar and int(p.maxLoopIterations) == 0:
            raise UnsupportedOpError(
                f"{self.where}: loop layer {layer.name!r} is a while loop with no bound (maxLoopIterations 0, "
                f"no count input); kcc's IR has no loop and unrolls loops to their bound, which this one lacks. "
                f"Re-convert the model with maxLoopIterations set")
        return int(p.maxLoopIterations)

    def _truth(self, v: Value, name: str) -> Value:
        first = self._node("gather", [self._node("reshape", [v], name, shape=(-1,)), self._const(np.int64(0), name)],
                           name, axis=0)
        if first.dtype != "f32":
            first = self._node("cast", [first], name, to="f32")
        return self._node("greater", [self._node("abs", [first], name), self._const(np.float32(TRUTH_THRESHOLD), name)],
                          name)

    def _and(self, a: Value | None, b: Value, name: str) -> Value:
        return b if a is None else self._node("logical_and", [a, b], name)

    def _const(self, value: Any, name: str) -> Value:
        return self.graph.add_const(np.asarray(value), name=f"{node_name(name)}_c")

    def _node(self, op: str, inputs: list[Value], name: str, **attrs: Any) -> Value:
        return self.graph.add_node(op, inputs, attrs, name=node_name(name), origin=name).output

