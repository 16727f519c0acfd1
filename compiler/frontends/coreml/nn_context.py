"""The table from NeuralNetwork layer type to handler, and what a handler sees.

A handler is registered per layer type (the protobuf ``WhichOneof("layer")``
name) with ``@nn_layer("convolution")`` and called as ``handler(ctx)``; it
returns the IR value of each of the layer's outputs.

Blobs and IR values (one layout decision, stated once):

* ``nd`` models (``EXACT_ARRAY_MAPPING``, specification 4+): a blob is the IR
  value itself, batch axis included.
* rank-5 models (the default mapping, every model before specification 4):
  a blob is ``[Seq, Batch, C, H, W]``. A blob with Seq 1 is the IR value
  ``(N, C, H, W)``, or ``(N, C)`` when H and W are 1 and the layer that made it
  works on channels (innerProduct, flatten, ...); a blob with a real Seq axis
  (the output of a permute into Seq, of a recurrent layer's sequence output)
  is the IR value ``(S, N, C, H, W)``. :meth:`NNLayerContext.as4`,
  :meth:`as5` and :meth:`aligned` convert between these forms.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kcc.errors import ModelFileError, UnsupportedOpError
from kcc.frontends.coreml.nn_weights import decode_weights, has_values
from kcc.ir import Graph, Value
from kcc.table import Table


def _load_all() -> None:
    from kcc.frontends.coreml import (  # noqa: F401
        nn_activation, nn_indexing, nn_layers, nn_layers_nd, nn_math, nn_recurrent, nn_resize, nn_sorting,
        nn_spatial3d)


NNHandler = Callable[["NNLayerContext"], Any]
NN_LAYERS: Table[NNHandler] = Table("Core ML NeuralNetwork layer handler", loader=_load_all)
nn_layer = NN_LAYERS.register


def supported_nn_layers() -> list[str]:
    return sorted(NN_LAYERS.names())


class NNLayerContext:
    """One layer being lowered: its parameters, its input values, and node/constant builders."""

    def __init__(self, graph: Graph, layer: Any, inputs: list[Value], where: str, nd: bool):
        self.graph = graph
        self.layer = layer
        self.kind = layer.WhichOneof("layer")
        self.params = getattr(layer, self.kind)
        self.inputs = inputs
        self.where = where
        self.nd = nd

    # ------------------------------------------------------------ building
    @property
    def x(self) -> Value:
        return self.inputs[0]

    def node(self, op: str, inputs: Sequence[Value | None], attrs: dict[str, Any] | None = None,
             n_outputs: int = 1) -> Any:
        n = self.graph.add_node(op, list(inputs), attrs or {}, name=node_name(self.layer.name), origin=self.layer.name)
        return n.outputs if n_outputs != 1 else n.output

    def const(self, array: Any, hint: str = "w") -> Value:
        return self.graph.add_const(np.asarray(array), name=f"{node_name(self.layer.name)}_{hint}")

    def weights(self, w: Any, shape: Sequence[int] | None, what: str) -> np.ndarray:
        return decode_weights(w, shape, f"{self.where} {what}")

    def has(self, w: Any) -> bool:
        return has_values(w)

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {message}")

    def unsupported(self, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: {what} is not supported by kcc's Core ML frontend; re-convert the "
                                  f"model without it (or from its source framework with kcc)")

    def nd_only(self) -> None:
        """Refuse a specification-4 ND layer whose axes mean IR axes only with the exact array mapping."""
        if not self.nd:
            raise self.unsupported(f"the ND layer {self.kind} in a rank-5 model (one without the exact array "
                                   f"mapping, whose [Seq, Batch, C, H, W] blobs it would index differently)")

    # ------------------------------------------------------------ rank-5 blob forms
    def as4(self, v: Value) -> Value:
        """A Seq-1 blob as (N, C, H, W)."""
        if v.rank == 4:
            return v
        if v.rank == 2:
            return self.node("unsqueeze", [v], {"axes": (2, 3)})
        if v.rank == 5 and v.shape[0] == 1:
            return self.node("squeeze", [v], {"axes": (0,)})
        if v.rank == 3:
            return self.node("unsqueeze", [v], {"axes": (2,)})
        raise self.unsupported(f"a blob of IR shape {list(v.shape)} here (a real sequence axis into a "
                               f"{self.kind} layer)")

    def as5(self, v: Value) -> Value:
        """Any blob as (S, N, C, H, W)."""
        if v.rank == 5:
            return v
        return self.node("unsqueeze", [self.as4(v)], {"axes": (0,)})

    def shrink(self, v: Value) -> Value:
        """A rank-5 result whose Seq is 1 back to (N, C, H, W)."""
        if v.rank == 5 and v.shape[0] == 1:
            return self.node("squeeze", [v], {"axes": (0,)})
        return v

    def channels(self, v: Value) -> Value:
        """A blob whose H and W are 1, as (N, C) (or (S, N, C) with a sequence)."""
        if v.rank == 2 or (self.nd and v.rank <= 2):
            return v
        if v.rank == 4 and tuple(v.shape[2:]) == (1, 1):
            return self.node("squeeze", [v], {"axes": (2, 3)})
        if v.rank == 5 and tuple(v.shape[3:]) == (1, 1):
            return self.shrink_seq(self.node("squeeze", [v], {"axes": (3, 4)}))
        raise self.error(f"expects a blob of shape [C, 1, 1], got IR shape {list(v.shape)}")

    def shrink_seq(self, v: Value) -> Value:
        if v.rank == 3 and v.shape[0] == 1:
            return self.node("squeeze", [v], {"axes": (0,)})
        return v

    def aligned(self, values: Sequence[Value]) -> list[Value]:
        """Rank-5 blobs brought to one IR form, so numpy broadcasting is Core ML's."""
        if self.nd or len({v.rank for v in values}) == 1:
            return list(values)
        if any(v.rank == 5 for v in values):
            return [self.as5(v) for v in values]
        return [self.as4(v) for v in values]

    def channel_axis(self, v: Value) -> int:
        return {5: 2}.get(v.rank, 1) if not self.nd else max(v.rank - 3, 0)

    def per_channel(self, array: np.ndarray, v: Value) -> np.ndarray:
        """A (C,) parameter shaped to broadcast over the channel axis of ``v``."""
        array = np.asarray(array, dtype=np.float32).reshape(-1)
        trailing = v.rank - 1 - self.channel_axis(v)
        return array.reshape((-1,) + (1,) * trailing)


def node_name(label: str) -> str:
    """An IR node name for a layer name (``/`` and ``:`` would read as scopes)."""
    return label.replace("/", "_").replace(":", "_") or "layer"
