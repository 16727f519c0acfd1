"""custom_layer: a layer kcc does not know, carried opaquely to a target that has custom layers.

Core ML's NeuralNetwork has custom layers (``CustomLayerParams``): the app that
runs the model supplies their implementation. The Keras frontend emits this op
(through the Core ML target's fallback, with ``add_custom_layers=True`` or a
``custom_conversion_functions`` entry) for a layer class with no handler.

Inputs are the layer's data inputs followed by its weights (constants);
``num_inputs`` says where the data ends. Attributes: the class name Core ML
will look up, a description, ``parameters`` (a dict of str/int/float/bool) and
``output_types`` (one ``(shape, dtype)`` per output, in the IR layout: the op
cannot compute its own shapes). There is no reference implementation, so the
interpreter (and ``--verify-each``) cannot run a graph holding one; ONNX has no
emitter for it and refuses it with an error naming the layer.
"""
from __future__ import annotations

from kcc.errors import ConversionError, IRError
from kcc.tensor_type import TensorType
from kcc.ops.registry import Attr, OpDef, register_op


@register_op
class CustomLayer(OpDef):
    name = "custom_layer"
    inputs = ("xs*",)
    attrs = {
        "class_name": Attr("str"),
        "description": Attr("str", ""),
        "parameters": Attr("any", None),
        "num_inputs": Attr("int", 1),
        "output_types": Attr("any"),
    }

    def infer(self, attrs, *xs):
        if attrs["num_inputs"] > len(xs):
            raise IRError(f"custom_layer has {len(xs)} inputs but num_inputs={attrs['num_inputs']}")
        try:
            return [TensorType(tuple(shape), dtype) for shape, dtype in attrs["output_types"]]
        except (TypeError, ValueError) as e:
            raise IRError(f"custom_layer output_types must be ((shape, dtype), ...): {e}") from None

    def compute(self, attrs, *arrays):
        raise ConversionError(
            f"custom layer {attrs['class_name']!r} has no implementation in kcc; it runs only in an app "
            f"that implements the Core ML custom layer of that class name")
