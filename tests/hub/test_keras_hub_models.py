"""KerasHub Backbones and a Task convert to ONNX and match Keras with real padding masks.

Every model is built from a tiny config with random weights (hub_helpers.py; never
a preset, no network) and converted twice: in memory, and from the ``.keras`` file
Keras saves (rebuilt by Keras under safe mode: KerasHub classes are registered
serializables, the file stores no code). onnxruntime runs with its default options
on seeded token ids whose padding masks have zeros at the end of two of three
rows; outputs must be within 1e-4 of Keras's largest magnitude, so a mask that
reached no layer, a wrong axis or a dropped scale (Gemma's RMS norm is
``x * (1 + scale)``) fails. Every model also goes to Core ML (kcc's runtime), one row at a time.
"""
from __future__ import annotations

import pytest

from hub_helpers import compare, compare_coreml, hub_inputs, prepared, saved, static_shapes


# The whole family of issue 9 item 6: BERT-style encoders, GPT-2 and the
# Gemma/Llama/Mistral/Qwen decoders, ViT, the CNN backbones and a text classifier.
MODELS = ["bert", "distil_bert", "roberta", "gpt2", "gemma", "llama", "mistral", "qwen", "vit",
          "resnet", "efficientnet", "bert_classifier"]

# Core ML (kcc's runtime), at batch 1 with a fixed sequence: every model.
COREML_MODELS = MODELS
# Batch and sequence length left symbolic (a rotary-embedding decoder); the image
# backbones above already keep their batch symbolic.
DYNAMIC_MODELS = ["qwen"]


@pytest.mark.parametrize("name", MODELS)
def test_in_memory_to_onnx(name):
    model = prepared(name)
    x = hub_inputs(model)
    compare(model, model, x, input_name_shape_dict=static_shapes(x))


@pytest.mark.parametrize("name", MODELS)
def test_keras_file_to_onnx(name, tmp_path):
    model = prepared(name)
    x = hub_inputs(model)
    compare(model, saved(model, tmp_path), x, input_name_shape_dict=static_shapes(x))


@pytest.mark.parametrize("name", DYNAMIC_MODELS)
def test_dynamic_shapes_to_onnx(name):
    """No input_name_shape_dict: one ONNX model runs batches of 3 and 2 and sequences of 12 and 7."""
    model = prepared(name)
    short = {k: v[:2, :7] for k, v in hub_inputs(model, seed=3).items()}
    short["padding_mask"][1, 5:] = 0
    short["token_ids"] *= short["padding_mask"]
    compare(model, model, hub_inputs(model), short)


@pytest.mark.parametrize("name", COREML_MODELS)
def test_in_memory_to_coreml(name):
    model = prepared(name)
    compare_coreml(model, hub_inputs(model))


@pytest.mark.parametrize("name", MODELS)
def test_keras_file_to_coreml(name, tmp_path):
    model = prepared(name)
    compare_coreml(model, hub_inputs(model), saved(model, tmp_path))
