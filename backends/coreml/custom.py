"""Core ML custom layers: the emitter of the IR ``custom_layer`` op.

A Keras layer kcc cannot convert becomes a ``custom_layer`` node in the Keras
frontend's fallback chain (kcc.frontends.keras.custom_layer, options
``add_custom_layers`` and ``custom_conversion_functions``); here it becomes a
NeuralNetwork ``custom`` layer with its class name, description, parameters
and weights (specification 2).

Data layout: the custom layer sees Core ML blobs, which are channels-first
(``[C, H, W]``), as the old converter's custom layers did.
"""
from __future__ import annotations

from typing import Any

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.ir import Node


def _set_param(msg: Any, value: Any) -> None:
    if isinstance(value, bool):
        msg.boolValue = value
    elif isinstance(value, int):
        if -2**31 <= value < 2**31:
            msg.intValue = value
        else:
            msg.longValue = value
    elif isinstance(value, float):
        msg.doubleValue = value
    else:
        msg.stringValue = str(value)


@coreml_emitter("custom_layer")
def _custom(ctx: CoremlContext, node: Node) -> None:
    k = node.attrs["num_inputs"]
    data, weights = node.inputs[:k], node.inputs[k:]
    lyr, p = ctx.layer("custom", [ctx.name(v) for v in data], [ctx.name(v) for v in node.outputs])
    p.className = node.attrs["class_name"]
    p.description = node.attrs["description"]
    for key, val in (node.attrs["parameters"] or {}).items():
        _set_param(p.parameters[key], val)
    for w in weights:
        ctx.weights(p.weights.add(), w.const)
    ctx.require(2, node, "a custom layer")


__all__: list[str] = []
