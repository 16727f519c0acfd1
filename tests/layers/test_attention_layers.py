"""MultiHeadAttention and GroupQueryAttention, lowered natively (no TensorFlow tracing).

Every option from memory and from a ``.keras`` file, to ONNX (onnxruntime,
default options) and Core ML (kcc's runtime), compared with Keras. Sizes are
all different (batch 2, query length 5, value length 7, heads 3, key_dim 4,
value_dim 6, query/value/key features 8/10/9), so a swapped axis cannot pass.
Attention masks hold real zeros and one fully masked query row, whose result
differs between Keras's two paths (dot_product_attention: a uniform average;
the explicit softmax path: zeros).
"""
from __future__ import annotations

import numpy as np
import pytest

import keras

import kcc
from kcc.testing import assert_close, run_keras, run_onnx
from targets_helpers import check_targets, randomize, run_coreml

L = keras.layers
B, T, S = 2, 5, 7


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _attention_mask(seed: int = 1) -> np.ndarray:
    """(B, T, S) 0/1 with about 40% zeros and query row 2 of sample 1 fully masked."""
    m = (np.random.default_rng(seed).random((B, T, S)) > 0.4).astype(np.float32)
    m[1, 2] = 0.0
    m[0, :, 0] = 1.0
    return m


def _qvk():
    return (keras.Input((T, 8), name="query"), keras.Input((S, 10), name="value"),
            keras.Input((S, 9), name="key"))


def test_cross_attention_with_key_and_unequal_dims(tmp_path):
    q, v, k = _qvk()
    out = L.MultiHeadAttention(3, 4, value_dim=6, name="mha")(q, v, key=k)
    model = randomize(keras.Model([q, v, k], out, name="cross"))
    check_targets(model, [_x(B, T, 8), _x(B, S, 10, seed=1), _x(B, S, 9, seed=2)], tmp_path)


def test_key_defaults_to_value_and_keyword_call(tmp_path):
    q, v, _ = _qvk()
    out = L.MultiHeadAttention(3, 4, value_dim=6, name="mha")(query=q, value=v)
    model = randomize(keras.Model([q, v], out, name="keywords"))
    check_targets(model, [_x(B, T, 8), _x(B, S, 10, seed=1)], tmp_path)


def test_attention_mask_scores_and_output_shape(tmp_path):
    """Explicit path (scores returned): a fully masked row gives zero scores and a bias-only output."""
    q, v, k = _qvk()
    mask = keras.Input((T, S), name="mask")
    mha = L.MultiHeadAttention(3, 4, value_dim=6, output_shape=(2, 3), name="mha")
    out, scores = mha(q, v, key=k, attention_mask=mask, return_attention_scores=True)
    model = randomize(keras.Model([q, v, k, mask], [out, scores], name="scores"))
    xs = [_x(B, T, 8), _x(B, S, 10, seed=1), _x(B, S, 9, seed=2), _attention_mask()]
    ref_out, ref_scores = check_targets(model, xs, tmp_path)
    assert ref_out.shape == (B, T, 2, 3) and ref_scores.shape == (B, 3, T, S)
    assert np.all(ref_scores[1, :, 2] == 0) and np.all(ref_scores[xs[3][:, None].repeat(3, 1) == 0] == 0)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fully_masked_row_follows_the_keras_path(tmp_path, dropout):
    """dropout=0: dot_product_attention (uniform over a masked row); dropout>0: the softmax path (zeros)."""
    q, v, _ = _qvk()
    mask = keras.Input((T, S), name="mask")
    out = L.MultiHeadAttention(3, 4, value_dim=6, dropout=dropout, use_bias=False, name="mha")(
        q, v, attention_mask=mask)
    model = randomize(keras.Model([q, v, mask], out, name=f"dropout{int(dropout * 10)}"))
    xs = [_x(B, T, 8), _x(B, S, 10, seed=1), _attention_mask()]
    ref = check_targets(model, xs, tmp_path)
    assert (np.abs(ref[0][1, 2]).max() == 0) == (dropout > 0)


def test_bool_attention_mask_input_onnx():
    q, v, _ = _qvk()
    mask = keras.Input((T, S), dtype="bool", name="mask")
    model = randomize(keras.Model([q, v, mask], L.MultiHeadAttention(3, 4, name="mha")(
        q, v, attention_mask=mask), name="boolmask"))
    xs = [_x(B, T, 8), _x(B, S, 10, seed=1), _attention_mask() > 0]
    assert_close(run_keras(model, xs)[0], run_onnx(kcc.compile(model, target="onnx"), xs)[0])


def test_causal_self_attention_gate_and_sliding_window(tmp_path):
    x = keras.Input((6, 8), name="x")
    mha = L.MultiHeadAttention(3, 4, value_dim=6, use_gate=True, sliding_window=3, name="mha")
    model = randomize(keras.Model(x, mha(x, x, use_causal_mask=True), name="causal"))
    check_targets(model, [_x(B, 6, 8)], tmp_path)


def test_causal_cross_attention_with_mask_and_scores(tmp_path):
    q, v, _ = _qvk()
    mask = keras.Input((T, S), name="mask")
    out, scores = L.MultiHeadAttention(3, 4, name="mha")(q, v, attention_mask=mask, use_causal_mask=True,
                                                         return_attention_scores=True)
    model = randomize(keras.Model([q, v, mask], [out, scores], name="causalcross"))
    check_targets(model, [_x(B, T, 8), _x(B, S, 10, seed=1), _attention_mask()], tmp_path)


# attention_axes -> value shape: the other (batch-like) axis must match the query's (3, 4, 8).
_VALUE_SHAPES = {None: (5, 2, 6), (2,): (3, 6, 6), (1,): (5, 4, 6)}


@pytest.mark.parametrize("axes", list(_VALUE_SHAPES))
def test_attention_axes_of_rank4_inputs(tmp_path, axes):
    """Default: attention over axes 1 and 2 jointly (softmax over both key axes); else over one."""
    q = keras.Input((3, 4, 8), name="query")
    v = keras.Input(_VALUE_SHAPES[axes], name="value")
    mha = L.MultiHeadAttention(3, 4, value_dim=5, attention_axes=axes, name="mha")
    out, scores = mha(q, v, return_attention_scores=True)
    model = randomize(keras.Model([q, v], [out, scores], name=f"axes{len(axes or (1, 2))}"))
    check_targets(model, [_x(B, *q.shape[1:]), _x(B, *v.shape[1:], seed=1)], tmp_path)


def test_group_query_attention(tmp_path):
    q = keras.Input((T, 8), name="query")
    v = keras.Input((S, 8), name="value")
    k = keras.Input((S, 9), name="key")
    mask = keras.Input((T, S), name="mask")
    gqa = L.GroupQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=2, name="gqa")
    out = gqa(q, v, key=k, attention_mask=mask)
    model = randomize(keras.Model([q, v, k, mask], out, name="gqa"))
    check_targets(model, [_x(B, T, 8), _x(B, S, 8, seed=1), _x(B, S, 9, seed=2), _attention_mask()], tmp_path)


def test_group_query_attention_causal_scores_gate_no_bias(tmp_path):
    x = keras.Input((6, 12), name="x")
    gqa = L.GroupQueryAttention(head_dim=5, num_query_heads=4, num_key_value_heads=2, use_bias=False,
                                use_gate=True, dropout=0.2, name="gqa")
    out, scores = gqa(x, x, use_causal_mask=True, return_attention_scores=True)
    model = randomize(keras.Model(x, [out, scores], name="gqacausal"))
    check_targets(model, [_x(B, 6, 12)], tmp_path)


def test_causal_self_attention_dynamic_length(tmp_path):
    """keras.Input((None, 16)): the causal mask is built from the runtime length; two lengths run
    in onnxruntime and in the Core ML runtime (a flexible input shape)."""
    x = keras.Input((None, 16), name="x")
    model = randomize(keras.Model(x, L.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True),
                                  name="dynamic"))
    path = tmp_path / "dynamic.keras"
    model.save(path)
    for source in (model, str(path)):
        onnx_model = kcc.compile(source, target="onnx")
        mlmodel = kcc.compile(source, target="coreml")
        for length in (3, 9):
            xs = [_x(B, length, 16, seed=length)]
            ref = run_keras(model, xs)
            assert_close(ref[0], run_onnx(onnx_model, xs)[0], what=f"ONNX, length {length}")
            assert_close(ref[0], run_coreml(mlmodel, xs, ref)[0], what=f"Core ML, length {length}")


def test_explicit_query_mask_argument_is_refused():
    """Keras's MultiHeadAttention ignores a query_mask call argument (it reads the query's own mask), so
    the converted graph does not read that input either: kcc refuses it rather than drop it silently."""
    q, v, _ = _qvk()
    qm = keras.Input((T,), name="qm")
    model = keras.Model([q, v, qm], L.MultiHeadAttention(3, 4, name="mha")(q, v, query_mask=qm))
    with pytest.raises(kcc.ConversionError, match="'qm'.*'mha'"):
        kcc.compile(model, target="onnx")


def test_legacy_h5_file_with_gates(tmp_path):
    """Keras 3's .h5 writer lists the sub-layers' variables in layer.weights order (gate before value)."""
    q, v = keras.Input((T, 8), name="query"), keras.Input((S, 8), name="value")
    o1 = L.MultiHeadAttention(3, 4, value_dim=6, use_gate=True, name="mha")(q, v)
    o2 = L.GroupQueryAttention(4, 6, 2, use_gate=True, name="gqa")(q, v)
    model = randomize(keras.Model([q, v], [o1, o2], name="gates"))
    path = tmp_path / "gates.h5"
    model.save(path)
    xs = [_x(B, T, 8), _x(B, S, 8, seed=1)]
    for r, g in zip(run_keras(model, xs), run_onnx(kcc.compile(str(path), target="onnx"), xs)):
        assert_close(r, g)


@pytest.mark.parametrize("field, value, message", [
    ("key_dim", 5, "query/kernel has shape"),
    ("num_heads", 0, "num_heads"),
    ("attention_axes", [3], "attention_axes"),
])
def test_inconsistent_file_is_a_clear_error(tmp_path, field, value, message):
    """A .keras file whose attention config disagrees with its weights (or itself): one kcc error, no output."""
    import json
    import zipfile

    q, v, _ = _qvk()
    model = randomize(keras.Model([q, v], L.MultiHeadAttention(3, 4, name="mha")(q, v), name="bad"))
    good, bad = tmp_path / "good.keras", tmp_path / "bad.keras"
    model.save(good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "MultiHeadAttention":
                        layer["config"][field] = value
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(kcc.KccError, match=f"mha.*{message}"):
        kcc.compile(str(bad), target="onnx")
