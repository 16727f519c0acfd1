"""The table from NeuralNetwork layer type to its numpy implementation.

Each implementation is registered under the protobuf ``oneof layer`` field name
(``"convolution"``, ``"innerProduct"``, ...) with :func:`layer`. It is called as
``impl(params, inputs, ctx)`` where ``params`` is the layer's parameter message,
``inputs`` the list of input blobs (float32 numpy arrays) and ``ctx`` a
:class:`LayerContext`; it returns one array or a list of arrays, one per output
name. The executor in ``runtime.py`` never branches on layer types: it looks the
type up here, and a missing entry is a :class:`~kcc.errors.RuntimeModelError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from kcc.errors import RuntimeModelError
from kcc.table import Table
from kcc.coreml import weights as _weights

LayerImpl = Callable[[Any, list, "LayerContext"], "np.ndarray | Sequence[np.ndarray]"]

LAYERS: Table[LayerImpl] = Table("Core ML runtime layer")


class ControlFlowSignal(Exception):
    """Raised by loopBreak/loopContinue to unwind to their loop; never a failure."""


# ``@layer("convolution")`` registers the implementation of a layer type.
layer = LAYERS.register


@dataclass
class LayerContext:
    """What a layer implementation may know besides its parameters and inputs.

    ``blobs`` is the live name -> array scope of the network; only the control-flow
    layers (branch, loop, copy) read or write it directly. ``run_network`` executes
    a nested ``NeuralNetwork`` message in that same scope.
    """

    layer: Any
    blobs: dict[str, np.ndarray]
    run_network: Callable[[Any], None]
    rank5: bool = False

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def type(self) -> str:
        return self.layer.WhichOneof("layer")

    def weight(self, params, shape: Sequence[int] | None = None, what: str = "weights") -> np.ndarray:
        """Decode a ``WeightParams`` of this layer (see :mod:`kcc.coreml.weights`)."""
        return _weights.decode(params, shape, what=f"layer '{self.name}' ({self.type}) {what}")

    def error(self, message: str) -> RuntimeModelError:
        """An error naming this layer, for a model the runtime cannot run."""
        return RuntimeModelError(f"layer '{self.name}' ({self.type}): {message}")


def lookup(layer_msg) -> LayerImpl:
    """The implementation of a layer message, or a clear error naming it."""
    kind = layer_msg.WhichOneof("layer")
    impl = LAYERS.get(kind) if kind else None
    if impl is None:
        raise RuntimeModelError(
            f"layer '{layer_msg.name}' has type '{kind}', which the kcc Core ML runtime "
            f"does not implement")
    return impl
