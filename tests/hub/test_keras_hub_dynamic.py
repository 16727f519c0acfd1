"""KerasHub models with learned position embeddings convert with a dynamic batch AND sequence length.

BERT, DistilBERT, RoBERTa and GPT-2 (tiny configs, random weights: hub_helpers.py) slice their
(max_len, F) position table to the run-time sequence length; kcc imports that
TensorFlow ``Slice`` as ``slice_to`` typed ``(T, F)``. Each model is converted
once with no ``input_name_shape_dict`` and run in onnxruntime (default options)
at sequences of 9 and 5 with batches of 3 and 2, against Keras within 1e-4 of
the output's magnitude. The padding masks have real zeros: at the end of the
rows, and in the middle of one row, so a mask that reached no layer fails.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from hub_helpers import compare, hub_inputs, padding_mask, prepared

DYNAMIC_POSITION_MODELS = ["bert", "distil_bert", "roberta", "gpt2"]


def _inputs(model, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """hub_inputs cut to ``seq`` with a padding mask of that length (zeros at the ends, one in the middle)."""
    x = {k: v[:batch, :seq].copy() for k, v in hub_inputs(model, seed=seed).items()}
    mask = padding_mask(batch, seq)
    mask[0, seq // 2] = 0
    x["padding_mask"] = mask.astype(x["padding_mask"].dtype)
    for key in ("token_ids", "segment_ids"):
        if key in x:
            x[key] = x[key] * x["padding_mask"]
    return x


@pytest.mark.parametrize("name", DYNAMIC_POSITION_MODELS)
def test_position_embedding_with_dynamic_sequence_matches_keras(name):
    model = prepared(name)
    long, short = _inputs(model, 3, 9, seed=4), _inputs(model, 2, 5, seed=5)
    assert (long["padding_mask"] == 0).sum() >= 3 and (short["padding_mask"] == 0).sum() >= 2
    worst = compare(model, model, long, short)
    assert worst <= 1e-4


def test_the_emitted_inputs_keep_batch_and_sequence_dynamic():
    onnx_model = kcc.compile(prepared("gpt2"), target="onnx")
    for i in onnx_model.graph.input:
        dims = i.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["N", f"{i.name}_d1"], (i.name, dims)
