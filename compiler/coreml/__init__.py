"""kcc.coreml: a numpy reference runtime for Core ML NeuralNetwork models.

Core ML itself only runs on Apple platforms and coremltools' ``MLModel.predict``
refuses elsewhere; this runtime executes ``neuralNetwork``, classifier and
regressor models (specification versions 1 and up) from the semantics written in
NeuralNetwork.proto, so kcc can check its Core ML output on Linux::

    from kcc.coreml import predict
    outputs = predict("model.mlmodel", {"input": x})

Layer types map to numpy implementations through one table
(:data:`kcc.coreml.registry.LAYERS`); see ``runtime.py`` for the model-level rules.
"""
from __future__ import annotations

from kcc.coreml.registry import LAYERS
from kcc.coreml.runtime import load_spec, predict

__all__ = ["predict", "load_spec", "LAYERS"]
