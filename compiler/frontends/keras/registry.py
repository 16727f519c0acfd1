"""The Keras frontend's table: Keras class name -> handler that lowers one layer call.

    @keras_layer("Dense")
    def dense(ctx: KerasLayerContext, x: Value) -> Value:
        ...

A handler receives the call's tensor inputs as IR values (one positional argument
per input; merge layers get a list) and returns the output value(s). Everything
about the layer (config, weights, a builder that records the layer as origin,
layout helpers) is on ``ctx``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.frontends.keras.spec import KerasLayer, LayerCall
from kcc.ir import Graph, Value
from kcc.layout import ir_axis, to_ir_perm, to_keras_perm
from kcc.table import Table

Handler = Callable[..., Any]


def _load_all() -> None:
    import kcc.frontends.keras.layers  # noqa: F401  (registers every handler)


HANDLERS: Table[Handler] = Table("Keras layer handler", _load_all)
keras_layer = HANDLERS.register
supported_classes = HANDLERS.names


def handler_for(class_name: str) -> Handler | None:
    return HANDLERS.get(class_name)


class KerasLayerContext:
    """What a handler may use while lowering one call of one layer."""

    def __init__(self, graph: Graph, layer: KerasLayer, call: LayerCall, call_index: int, origin: str,
                 options: dict[str, Any], spec_stack: list[Any] | None = None):
        self.graph = graph
        self.layer = layer
        self.call = call
        self.call_index = call_index
        self.config = layer.config
        self.origin = origin
        self.options = options
        self.op = GraphBuilder(graph, origin=origin, name=layer.name)
        # The models being lowered, outermost first (nested models push theirs).
        self.spec_stack: list[Any] = list(spec_stack or [])
        # Keras masks a handler creates (Embedding(mask_zero=True), Masking), by output index.
        self.output_masks: dict[int, Value] = {}

    @property
    def keras2(self) -> bool:
        """True for models saved by Keras 2 / tf.keras, whose defaults differ (hard_sigmoid slope 0.2)."""
        version = str(self.spec_stack[0].keras_version or "") if self.spec_stack else ""
        return version.startswith("2.")

    @property
    def name(self) -> str:
        return self.layer.name

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)

    def weight(self, key: str) -> np.ndarray:
        try:
            return self.layer.weights[key]
        except KeyError:
            raise ConversionError(
                f"layer {self.layer.name!r} ({self.layer.class_name}) has no weight {key!r}; "
                f"it has {sorted(self.layer.weights)}. Was the file saved with its weights?") from None

    def has_weight(self, key: str) -> bool:
        return key in self.layer.weights

    def const(self, array: np.ndarray, suffix: str) -> Value:
        return self.op.const(np.ascontiguousarray(array), name=f"{self.layer.name}_{suffix}")

    def set_mask(self, mask: Value, output: int = 0) -> None:
        """Attach a Keras mask (bool, IR layout) to output ``output``, as ``compute_mask`` does."""
        self.output_masks[output] = mask

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"layer {self.layer.name!r} ({self.layer.class_name}): {message}")

    # layout helpers
    def to_keras_layout(self, v: Value) -> Value:
        return v if v.rank < 3 else self.op.transpose(v, perm=to_keras_perm(v.rank))

    def from_keras_layout(self, v: Value) -> Value:
        return v if v.rank < 3 else self.op.transpose(v, perm=to_ir_perm(v.rank))

    def axis(self, keras_axis: int, rank: int) -> int:
        return ir_axis(keras_axis, rank)
