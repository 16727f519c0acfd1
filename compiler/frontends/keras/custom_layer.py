"""The Keras fallback step ``coreml_custom_layer``: a Keras layer kcc cannot convert as a Core ML custom layer.

The last step of the fallback chain (fallback.py). It makes an IR
``custom_layer`` node (emitted by the Core ML backend, kcc.backends.coreml.
custom) when ``custom_conversion_functions`` has an entry for the class (the
function takes one argument, the Keras layer, and returns its custom-layer
parameters, as in coremltools' Keras converter; two-argument ``fn(ctx, inputs)``
functions build IR instead and are handled earlier in the chain) or when
``add_custom_layers=True`` (the class name, the layer's scalar config values as
parameters, its weights). Both options are Core ML target options: compiling
for another target the step passes.

A conversion function receives the live Keras layer object when the model was
loaded with Keras (always the case for custom classes), otherwise kcc's
``KerasLayer`` record (``.config``, ``.weights``). It returns a
``NeuralNetwork_pb2.CustomLayerParams`` or a dict with ``className``,
``description``, ``parameters`` (str -> str/int/float/bool) and ``weights``
(a list of arrays).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import ConversionError
from kcc.frontends.keras.fallback import fallback_step, live_layer
from kcc.ir import Value


def _keras_to_ir_shape(shape: tuple, batch: Any) -> tuple:
    dims = [batch] + [d if d is not None else "?" for d in shape[1:]]
    if len(dims) >= 3:
        dims = [dims[0], dims[-1]] + dims[1:-1]
    return tuple(dims)


def _output_types(ctx: Any, inputs: list[Value]) -> list[tuple[tuple, str]]:
    """IR-layout output types of the live layer, from compute_output_shape or one call on zeros."""
    live = ctx.layer.live
    if live is None:
        raise ctx.fail("a custom layer needs the Keras layer object to know its output shape; "
                       "load the model with Keras (pass the keras.Model or custom_objects)")
    from kcc.layout import keras_shape

    batch = inputs[0].shape[0] if inputs else "N"
    shapes = [tuple(None if isinstance(d, str) else d for d in keras_shape(v)) for v in inputs]
    try:
        out = live.compute_output_shape(shapes[0] if len(shapes) == 1 else shapes)
    except Exception:  # noqa: BLE001 - many custom layers do not implement it; run the layer instead
        zeros = [np.zeros((1,) + tuple(d or 1 for d in s[1:]), np.float32) for s in shapes]
        y = live(zeros[0] if len(zeros) == 1 else zeros)
        out = [tuple(np.shape(t)) for t in (y if isinstance(y, (list, tuple)) else [y])]
        out = [(None,) + s[1:] for s in out]
    outs = out if isinstance(out, list) and out and isinstance(out[0], (list, tuple)) else [out]
    return [(_keras_to_ir_shape(tuple(s), batch), "f32") for s in outs]


def _default_params(layer: Any) -> dict[str, Any]:
    params = {}
    for key, val in sorted(layer.config.items()):
        if key in ("name", "dtype", "trainable") or val is None:
            continue
        if isinstance(val, (bool, int, float, str)):
            params[key] = val
    return params


def _decode_weights(wp: Any) -> np.ndarray:
    if len(wp.floatValue):
        return np.asarray(wp.floatValue, dtype=np.float32)
    if wp.float16Value:
        return np.frombuffer(wp.float16Value, dtype="<f2").astype(np.float32)
    return np.frombuffer(wp.rawValue, dtype="<f4").copy()


def _from_function(result: Any, where: str) -> tuple[str, str, dict, list[np.ndarray]]:
    if hasattr(result, "className") and hasattr(result, "parameters"):
        params = {k: getattr(v, v.WhichOneof("value")) for k, v in result.parameters.items()}
        return result.className, result.description, params, [_decode_weights(w) for w in result.weights]
    if isinstance(result, dict) and "className" in result:
        return (str(result["className"]), str(result.get("description", "")), dict(result.get("parameters") or {}),
                [np.asarray(w, np.float32) for w in result.get("weights") or []])
    raise ConversionError(f"{where}: the custom conversion function returned {type(result).__name__}; return a "
                          f"NeuralNetwork_pb2.CustomLayerParams or a dict with className, parameters, weights")


@fallback_step("coreml_custom_layer")
def custom_layer_fallback(ctx: Any, inputs: list[Value]) -> Any:
    """The Keras fallback step for Core ML: a custom_layer node, or None to pass."""
    layer = ctx.layer
    funcs = ctx.options.get("custom_conversion_functions") or {}
    fn = funcs.get(layer.class_name) or funcs.get(layer.name)
    if fn is not None or ctx.options.get("add_custom_layers"):
        live_layer(ctx)  # a layer read without Keras: its live object, rebuilt alone
    if fn is not None:
        target = layer.live if layer.live is not None else layer
        cls, desc, params, weights = _from_function(fn(target), f"layer {layer.name!r} ({layer.class_name})")
    elif ctx.options.get("add_custom_layers"):
        cls, desc, params = layer.class_name, f"Keras layer {layer.class_name}", _default_params(layer)
        live_w = layer.live.get_weights() if layer.live is not None else list(layer.weights.values())
        weights = [np.asarray(w, np.float32) for w in live_w]
    else:
        return None
    for key, val in params.items():
        if not isinstance(val, (bool, int, float, str)):
            raise ctx.fail(f"custom layer parameter {key!r} is a {type(val).__name__}; parameters must be "
                           f"str, int, float or bool")
    consts = [ctx.const(w, f"custom_w{i}") for i, w in enumerate(weights)]
    node = ctx.graph.add_node(
        "custom_layer", list(inputs) + consts,
        {"class_name": cls, "description": desc, "parameters": params, "num_inputs": len(inputs),
         "output_types": tuple(_output_types(ctx, inputs))},
        name=f"{layer.name}/custom_layer", origin=ctx.origin)
    return node.outputs if len(node.outputs) > 1 else node.outputs[0]


__all__ = ["custom_layer_fallback"]
