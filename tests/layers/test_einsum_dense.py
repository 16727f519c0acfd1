"""EinsumDense: every equation form Keras accepts, any bias_axes, activations, dynamic lengths, from memory and file.

Dims are unequal (batch 2, sequence 5, features 6, heads 3, head dim 4) so a
swapped axis cannot pass; weights are seeded normals (never 0 or 1).
"""
from __future__ import annotations

import numpy as np
import pytest

import keras
from kcc.errors import ConversionError
from kcc.frontends.keras.load_weights import flat_weight_names
from kcc.testing import assert_close, run_keras, run_onnx
from attention_layers_helpers import check_onnx, check_targets, layer_types, op_counts, saved, seeded_weights

B, T, F, H, D = 2, 5, 6, 3, 4

# (equation, input shape without the batch, output_shape, bias_axes, activation)
EQUATIONS = [
    ("ab,bc->ac", (F,), D, "c", None),                              # Dense
    ("ab,bc->ac", (F,), D, None, "relu"),
    ("abc,cd->abd", (T, F), (T, D), "d", None),                     # Dense on a sequence
    ("abc,cde->abde", (T, F), (T, H, D), "de", None),               # attention's query/key/value projection
    ("abc,cde->abde", (T, F), (T, H, D), "e", "gelu"),
    ("abc,cde->abde", (T, F), (T, H, D), None, None),
    ("abcd,cde->abe", (T, H, D), (T, F), "e", None),                # attention's output projection
    ("abcd,cde->abe", (T, H, D), (T, F), None, "tanh"),
    ("...b,bc->...c", (T, F), D, "c", None),                        # left ellipsis
    ("...b,bc->...c", (F,), D, "c", None),                          # ellipsis standing for no axis
    ("...b,bc->...c", (H, T, F), D, "c", None),                     # ellipsis for two axes
    ("ab...,bc->ac...", (F, T), D, "c", None),                      # right ellipsis, bias before its dims
    ("abc,bcd->abd", (T, F), (T, D), "bd", None),                   # b shared by input, kernel and output
    ("abc,bcd->abd", (T, F), (T, D), "b", None),
    ("abc,bd->adc", (T, F), (D, F), "dc", None),                    # output axes reordered
    ("abc,bd->acd", (T, F), (F, D), "cd", "sigmoid"),               # contracts the sequence axis
    ("abcd,cde->abce", (T, H, D), (T, H, F), "ce", None),           # per-head weights (c shared)
    ("abcd,cde->abde", (T, H, D), (T, D, F), "de", None),           # d shared, c contracted
    ("abc,c->ab", (T, F), (T,), None, None),                        # kernel with no free axis
    ("abc,cd->ad", (T, F), D, "d", None),                           # b only in the input: summed
]


def _model(equation: str, shape: tuple, output_shape, bias_axes, activation) -> keras.Model:
    x = keras.Input(shape, name="x")
    layer = keras.layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes,
                                     activation=activation, name="einsum")
    return seeded_weights(keras.Model(x, layer(x)))


def _inputs(shape: tuple, seed: int = 1) -> list[np.ndarray]:
    return [np.random.default_rng(seed).standard_normal((B,) + shape).astype(np.float32)]


@pytest.mark.parametrize("equation, shape, output_shape, bias_axes, activation", EQUATIONS,
                         ids=[f"{e[0]}|{e[3]}|{e[4]}" for e in EQUATIONS])
def test_equation_matches_keras(equation, shape, output_shape, bias_axes, activation, tmp_path):
    model = _model(equation, shape, output_shape, bias_axes, activation)
    check_targets(model, _inputs(shape), tmp_path)


def test_file_weights_follow_bias_axes():
    """The stored variables are kernel (+ bias when bias_axes names axes), not use_bias's."""
    assert flat_weight_names("EinsumDense", {"equation": "ab,bc->ac", "bias_axes": "c"}) == ["kernel", "bias"]
    assert flat_weight_names("EinsumDense", {"equation": "ab,bc->ac", "bias_axes": None}) == ["kernel"]
    assert flat_weight_names("EinsumDense", {"equation": "ab,bc->ac", "bias_axes": ""}) == ["kernel"]


def test_dynamic_sequence_length_runs_at_two_lengths(tmp_path):
    """keras.Input((None, 6)): the projection reshapes copy the dynamic dims (0), so any length runs."""
    x = keras.Input((None, F))
    q = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, H, D), bias_axes="de")(x)
    y = keras.layers.EinsumDense("abcd,cde->abe", output_shape=(None, F), bias_axes="e")(q)
    model = seeded_weights(keras.Model(x, y))
    path = saved(model, tmp_path)
    first = None
    for length in (5, 9):
        xs = [np.random.default_rng(length).standard_normal((B, length, F)).astype(np.float32)]
        refs = run_keras(model, xs)
        first = check_onnx(model, xs, refs) if first is None else first
        assert_close(refs[0], run_onnx(first.model, xs)[0], what=f"length {length}")
        check_onnx(path, xs, refs)
    dims = [d.dim_param or d.dim_value for d in first.model.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[1], str) and dims[2] == F, dims


@pytest.mark.parametrize("equation, shape, output_shape", [("abc,cde->abde", (T, F), (T, H, D)),
                                                          ("abcd,cde->abe", (T, H, D), (T, F))],
                         ids=["qkv_projection", "output_projection"])
def test_attention_projection_is_matmul_reshape_add_and_nothing_else(equation, shape, output_shape, tmp_path):
    """No Transpose (the layout pass cancels the Keras-order round trip), no Shape arithmetic, no Einsum."""
    bias = "de" if equation.endswith("abde") else "e"
    model = _model(equation, shape, output_shape, bias, None)
    result, _ = check_targets(model, _inputs(shape), tmp_path, coreml=False)
    assert op_counts(result.model) == {"MatMul": 1, "Reshape": 1, "Add": 1}, op_counts(result.model)


def test_rank2_is_a_gemm_and_an_inner_product(tmp_path):
    model = _model("ab,bc->ac", (F,), D, "c", None)
    result, mlmodel = check_targets(model, _inputs((F,)), tmp_path)
    assert op_counts(result.model) == {"Gemm": 1}
    assert layer_types(mlmodel) == ["innerProduct"]


def test_repeated_index_is_refused_by_name():
    from kcc.frontends.keras.layers.einsum_dense import expand_equation

    class Ctx:
        def fail(self, message):
            return ConversionError(f"layer 'e' (EinsumDense): {message}")

    with pytest.raises(ConversionError, match="repeated index"):
        expand_equation(Ctx(), "abb,bc->ac", 3)
    with pytest.raises(ConversionError, match="not of the form"):
        expand_equation(Ctx(), "ab,bc,cd->ad", 2)


def test_embedding_feeds_einsum_dense_at_two_lengths(tmp_path):
    """Embedding's (N, T, F) output reaches the projection in Keras order; the length stays dynamic."""
    tokens = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(20, F)(tokens)
    q = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, H, D), bias_axes="de")(h)
    model = seeded_weights(keras.Model(tokens, q))
    path = saved(model, tmp_path)
    compiled = None
    for length in (5, 7):
        xs = [np.random.default_rng(length).integers(0, 20, (B, length)).astype(np.int32)]
        refs = run_keras(model, xs)
        compiled = compiled or check_onnx(model, xs, refs)
        assert_close(refs[0], run_onnx(compiled.model, xs)[0], what=f"length {length}")
        check_onnx(path, xs, refs)
