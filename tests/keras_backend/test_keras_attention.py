"""Attention-era models come back to Keras with their batch and sequence axes dynamic, and match onnxruntime.

* a MultiHeadAttention + LayerNormalization + Dense block written by tf2onnx with
  (None, None, 8) inputs: its head splits are Reshapes to shapes built at run time
  around merged (N*T) dims, which come back as Reshape layers and Dense on rank 3;
* a tiny KerasHub BERT (tests/hub's config, random weights) exported by Keras
  (tf2onnx), with a padding mask of real zeros;
* a tiny KerasHub Llama written by kcc (RMS norms, rotary positions from a float
  Range, a causal mask built by Expand, GQA attention as matmuls);
* the IR's ``attention`` op itself (grouped heads, an additive mask with real
  -inf-like entries, T != S) as one keras.ops.dot_product_attention.

Each ONNX model is converted once with ``kcc.compile(path, target="keras")``,
saved as .keras, reloaded with ``safe_mode=True`` and run at two (batch,
sequence) sizes against onnxruntime with its default session options: a
sequence axis frozen at conversion would fail the second size. The attention
block also goes to the ``tensorflow`` target (a SavedModel, served at both sizes). One file is
also loaded in a fresh interpreter, with no kcc imported and no custom_objects.
"""
from __future__ import annotations

import os
import sys

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf
import tf2onnx

import kcc
from kcc.backends.keras import emit_keras
from kcc.interpreter import run as run_ir
from kcc.ir import Graph
from kcc.tensor_type import TensorType
from kcc.testing import assert_close, assert_not_degenerate, run_onnx
from keras_backend_helpers import run_fresh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hub"))
from hub_helpers import hub_inputs, keras_outputs, padding_mask, prepared  # noqa: E402

SIZES = ((3, 9), (2, 5))  # (batch, sequence): two of each, unequal


def _roundtrip(onnx_path, tmp_path, name: str):
    """kcc.compile to Keras, save, reload in safe mode; the reloaded model and its input names."""
    model = kcc.compile(str(onnx_path), target="keras")
    assert "Lambda" not in {type(l).__name__ for l in model.layers}
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for t in loaded.inputs:
        assert tuple(t.shape)[:2] == (None, None), f"{name}: input {t.name} lost a dynamic axis: {t.shape}"
    return loaded, [t._keras_history[0].name for t in loaded.inputs], path


def _check(onx, loaded, names, feeds, what: str) -> float:
    want = run_onnx(onx, {i.name: feeds[i.name] for i in onx.graph.input})
    got = loaded([feeds[n] for n in names])
    got = got if isinstance(got, (list, tuple)) else [got]
    worst = 0.0
    for i, (w, g) in enumerate(zip(want, got)):
        assert_not_degenerate(w, f"{what} output {i}")
        worst = max(worst, assert_close(w, np.asarray(g), tol=1e-4, what=f"{what} output {i}"))
    return worst


def _text_feeds(model, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """hub_inputs cut to (batch, seq): padding at the row ends and one in the middle of row 0 (real zeros)."""
    x = {k: v[:batch, :seq].copy() for k, v in hub_inputs(model, batch=3, seed=seed).items()}
    mask = padding_mask(batch, seq)
    mask[0, seq // 2] = 0
    x["padding_mask"] = mask.astype(x["padding_mask"].dtype)
    for key in ("token_ids", "segment_ids"):
        if key in x:
            x[key] = x[key] * x["padding_mask"]
    return x


def test_tf2onnx_attention_block_with_dynamic_sequence(tmp_path):
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((None, 8), name="tokens")
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    x = L.LayerNormalization()(L.Add()([inp, x]))
    out = L.Dense(3)(L.Dense(16, activation="relu")(x))
    source = keras.Model(inp, out)
    spec = (tf.TensorSpec((None, None, 8), tf.float32, name="tokens"),)
    onx, _ = tf2onnx.convert.from_keras(source, input_signature=spec, opset=17)
    assert sum(n.op_type == "Shape" for n in onx.graph.node) > 0  # the head splits are built at run time
    path = tmp_path / "attention.onnx"
    onnx.save(onx, str(path))
    loaded, names, _ = _roundtrip(path, tmp_path, "attention")
    assert {"LayerNormalization", "Dense", "Softmax"} <= {type(l).__name__ for l in loaded.layers}
    # The tensorflow target: a SavedModel whose serving signature keeps both axes dynamic.
    kcc.save(kcc.compile(str(path), target="tensorflow"), tmp_path / "saved")
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    assert serve.structured_input_signature[1]["tokens"].shape.as_list() == [None, None, 8]
    rng = np.random.default_rng(1)
    for batch, seq in SIZES:
        feeds = {"tokens": rng.normal(size=(batch, seq, 8)).astype(np.float32)}
        _check(onx, loaded, names, feeds, f"(N, T) = ({batch}, {seq})")
        served = next(iter(serve(tokens=tf.constant(feeds["tokens"])).values())).numpy()
        assert_close(run_onnx(onx, feeds)[0], served, tol=1e-4, what=f"SavedModel at ({batch}, {seq})")


def test_keras_hub_bert_exported_by_tf2onnx(tmp_path):
    model = prepared("bert")
    keras_outputs(model, hub_inputs(model))  # Keras's export needs a model that was called
    path = tmp_path / "bert.onnx"
    model.export(str(path), format="onnx", verbose=False)
    onx = onnx.load(str(path))
    loaded, names, _ = _roundtrip(path, tmp_path, "bert")
    assert {"Embedding", "LayerNormalization", "Softmax"} <= {type(l).__name__ for l in loaded.layers}
    for batch, seq in SIZES:
        feeds = _text_feeds(model, batch, seq, seed=batch)
        _check(onx, loaded, names, feeds, f"BERT (N, T) = ({batch}, {seq})")
        # The mask reaches the model: without it the sequence output differs.
        unmasked = dict(feeds, padding_mask=np.ones_like(feeds["padding_mask"]))
        a = np.asarray(loaded([feeds[n] for n in names])[1])
        b = np.asarray(loaded([unmasked[n] for n in names])[1])
        assert np.abs(a - b).max() > 1e-3


def test_keras_hub_llama_written_by_kcc(tmp_path):
    model = prepared("llama")
    path = tmp_path / "llama.onnx"
    kcc.save(kcc.compile(model, target="onnx"), path)
    onx = onnx.load(str(path))
    assert [d.dim_param for d in onx.graph.input[0].type.tensor_type.shape.dim][0] == "N"
    result = kcc.compile_model(str(path), target="keras")
    assert {"shape", "range", "expand"} <= set(result.graph.op_types())
    loaded, names, saved = _roundtrip(path, tmp_path, "llama")
    worst = 0.0
    for batch, seq in SIZES:
        feeds = _text_feeds(model, batch, seq, seed=batch + 10)
        worst = max(worst, _check(onx, loaded, names, feeds, f"Llama (N, T) = ({batch}, {seq})"))
    # A plain Keras in a fresh interpreter opens the file in safe mode, with no custom_objects.
    feeds = _text_feeds(model, 2, 7, seed=3)
    np.savez(tmp_path / "feeds.npz", **feeds)
    out = run_fresh(
        "import numpy as np, keras\n"
        f"m = keras.models.load_model({str(saved)!r}, safe_mode=True)\n"
        f"f = np.load({str(tmp_path / 'feeds.npz')!r})\n"
        "y = m([f[t._keras_history[0].name] for t in m.inputs])\n"
        f"np.save({str(tmp_path / 'fresh.npy')!r}, np.asarray(y))\n"
        "import sys; print('kcc' in sys.modules)\n")
    assert out.strip().splitlines()[-1] == "False"
    want = run_onnx(onx, {i.name: feeds[i.name] for i in onx.graph.input})[0]
    assert_close(want, np.load(tmp_path / "fresh.npy"), tol=1e-4, what="Llama in a fresh interpreter")


def test_keras_attention_block_comes_back_trainable_with_dynamic_sequence():
    """Keras -> kcc -> Keras: MultiHeadAttention (causal) + LayerNormalization + gelu Dense, sequence None.

    The projections are matmuls by constant matrices on rank-3 tensors; they come back
    as bias-free Dense layers, so every kernel is a trainable variable.
    """
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((None, 8), name="tokens")
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp, use_causal_mask=True)
    x = L.LayerNormalization()(L.Add()([inp, x]))
    source = keras.Model(inp, L.Dense(5, activation="gelu")(x))
    model = kcc.compile(source, target="keras")
    assert tuple(model.inputs[0].shape) == (None, None, 8)
    kernels = [w for w in model.trainable_weights if len(w.shape) == 2]
    assert len(kernels) >= 5, [w.path for w in model.trainable_weights]  # q, k, v, output, Dense
    rng = np.random.default_rng(4)
    for batch, seq in SIZES:
        x = rng.normal(size=(batch, seq, 8)).astype(np.float32)
        want = np.asarray(source(x))
        assert_not_degenerate(want)
        assert_close(want, np.asarray(model(x)), tol=1e-5, what=f"(N, T) = ({batch}, {seq})")


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2)])
def test_attention_op_is_one_dot_product_attention(heads, kv_heads):
    """The IR attention op (T=5 queries, S=7 keys, d=8, dv=6) against the IR's own numpy reference."""
    g = Graph("attention")
    q = g.add_input("q", TensorType(("N", heads, 5, 8), "f32"))
    k = g.add_input("k", TensorType(("N", kv_heads, 7, 8), "f32"))
    v = g.add_input("v", TensorType(("N", kv_heads, 7, 6), "f32"))
    bias = g.add_input("bias", TensorType(("N", 1, 1, 7), "f32"))
    node = g.add_node("attention", [q, k, v, bias], {"scale": 0.3})
    g.set_outputs([node.output], ["y"])
    model = emit_keras(g)
    assert any(type(o).__name__ == "DotProductAttention" for o in model.operations)
    rng = np.random.default_rng(heads + kv_heads)
    feeds = {"q": rng.normal(size=(2, heads, 5, 8)), "k": rng.normal(size=(2, kv_heads, 7, 8)),
             "v": rng.normal(size=(2, kv_heads, 7, 6))}
    mask = np.ones((2, 1, 1, 7))
    mask[1, ..., 4:] = 0  # real zeros: row 1 sees only its first 4 keys
    feeds["bias"] = (1.0 - mask) * -1e9
    feeds = {n: a.astype(np.float32) for n, a in feeds.items()}
    want = run_ir(g, feeds)["y"]
    got = np.asarray(model([feeds["q"], feeds["k"], feeds["v"], feeds["bias"]]))
    assert_not_degenerate(want)
    assert_close(want, got, tol=1e-5)
