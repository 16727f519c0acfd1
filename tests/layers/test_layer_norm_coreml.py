"""LayerNormalization on the last axis in Core ML: one ``layerNormalization`` layer, and read back from rank-5 models.

Emission: in a sequence model (Embedding -> LayerNormalization -> Dense) the
normalized axis is the trailing one of the ``(N, T, F)`` tensor, so the model
has one ``layerNormalization`` layer (kcc.formats.coreml_layers.
NORMALIZATION_LAYERS) and no permute or mvn around it; ONNX has one
LayerNormalization node. Frontend: a rank-5 (default mapping) NeuralNetwork
whose ``layerNormalization`` normalizes the trailing dims of the ``(C, H, W)``
blob imports as ``layer_norm`` over those axes.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import keras
import kcc
from kcc.coreml import predict
from kcc.formats.coreml_layers import NORMALIZATION_LAYERS
from kcc.testing import assert_close, run_keras, run_onnx
from attention_layers_helpers import check_coreml, check_onnx, layer_types, op_counts, saved, seeded_weights

B, T, F, V = 2, 5, 6, 20


def _sequence_model() -> keras.Model:
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(V, F, name="embed")(tokens)
    h = keras.layers.LayerNormalization(epsilon=1e-3, name="ln")(h)
    return seeded_weights(keras.Model(tokens, keras.layers.Dense(4, name="head")(h)))


def test_last_axis_layer_norm_is_one_layer_in_coreml_and_one_node_in_onnx(tmp_path):
    model = _sequence_model()
    xs = [np.random.default_rng(0).integers(0, V, (B, T)).astype(np.int32)]
    refs = run_keras(model, xs)
    for source in (model, saved(model, tmp_path)):
        types = Counter(layer_types(check_coreml(source, xs, refs)))
        assert types[NORMALIZATION_LAYERS["layer_norm"]] == 1, types
        assert not {"mvn", "permute", "scale"} & set(types), types
        assert op_counts(check_onnx(source, xs, refs).model)["LayerNormalization"] == 1


@pytest.mark.parametrize("shape, normalized", [((6, 1, 1), [6, 1, 1]), ((3, 1, 5), [5]), ((3, 4, 5), [4, 5])],
                         ids=["features", "sequence_last", "hw"])
def test_rank5_layer_normalization_imports_over_trailing_blob_dims(shape, normalized):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 2.0, normalized).astype(np.float32)
    beta = rng.standard_normal(normalized).astype(np.float32)
    builder = NeuralNetworkBuilder([("x", datatypes.Array(*shape))], [("y", None)])
    builder.add_layer_normalization("ln", "x", "y", normalized, gamma, beta, eps=1e-3)
    spec = builder.spec
    x = rng.standard_normal((1,) + shape).astype(np.float32)
    axes = tuple(range(-len(normalized), 0))
    mean = x.mean(axis=axes, keepdims=True)
    want = gamma * (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-3) + beta
    assert_close(want, np.asarray(predict(spec, {"x": x[0]})["y"]).reshape(want.shape), what="kcc Core ML runtime")
    onnx_model = kcc.compile(spec, target="onnx")
    dims = [d.dim_value or 1 for d in onnx_model.graph.input[0].type.tensor_type.shape.dim]
    got = run_onnx(onnx_model, [x.reshape(dims)])[0]
    assert_close(want, got.reshape(want.shape), what="imported rank-5 layerNormalization in onnxruntime")
