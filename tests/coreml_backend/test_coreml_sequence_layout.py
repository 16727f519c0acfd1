"""A transformer-style stack through Core ML after sink_transposes: Keras order inside, native layers.

The models are the ones of tests/passes/test_pass_sink_transposes_keras.py. Core ML's
boundary is channels-first, so the output leaves through one transpose to the IR layout
(the only one); inside, Dense on a sequence is ``batchedMatmul`` with constant weights
and LayerNormalization on the last axis is one ``layerNormalization`` layer. Numbers
from kcc's Core ML runtime against Keras, within 1e-4 of the output's magnitude.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))

import numpy as np  # noqa: E402

import test_pass_sink_transposes_keras as seq  # noqa: E402
from coreml_backend_helpers import check_coreml, layer_types  # noqa: E402


def test_transformer_stack_is_matmul_and_layer_norm_with_one_boundary_transpose():
    model = seq._transformer_stack()
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, seq.VOCAB, (2, seq.LENGTH)).astype("int32")
    positions = np.tile(np.arange(seq.LENGTH, dtype="int32"), (2, 1))
    mlmodel, _ = check_coreml(model, [tokens, positions])
    layers = Counter(layer_types(mlmodel.get_spec()))
    assert layers["layerNormalization"] == 3 and layers["batchedMatmul"] == 4, layers
    assert layers["transpose"] + layers["permute"] == 1, layers
