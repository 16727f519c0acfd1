"""load_keras_model on legacy files: tf.keras 2.x (tf_keras) and hand-written Keras 2.0.

tf_keras writes ``.h5`` models, legacy ``.h5`` weights and Keras-3-layout
``.weights.h5`` weights; all must give the same spec with Keras 3 weight names
(``depthwise_kernel:0`` -> ``kernel``, ``forward_gru/gru_cell/kernel:0`` ->
``forward/kernel``). The Keras 2.0 file is written with h5py exactly as Keras 2.0.8
did (bytes attributes, nested-list inbound nodes, a bare-list Sequential, node
indices of nested models counting their construction node).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from kcc.errors import UnsafeModelError
from kcc.frontends.keras.loader import load_keras_model
from kcc.frontends.keras.spec import KerasModelSpec, TensorRef

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def structure(spec: KerasModelSpec) -> list:
    return [spec.name, [(l.name, l.class_name, [(c.args, c.kwargs) for c in l.calls], l.config,
                         structure(l.model) if l.model else None) for l in spec.layers],
            spec.inputs, spec.outputs]


def flat_weights(spec: KerasModelSpec, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for layer in spec.layers:
        out.update({f"{prefix}{layer.name}/{k}": v for k, v in layer.weights.items()})
        if layer.model:
            out.update(flat_weights(layer.model, f"{prefix}{layer.name}/"))
    return out


# --- tf.keras 2.x ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf2(tmp_path_factory) -> dict:
    import tf_keras
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    img = L.Input((8, 8, 3), name="img")
    seq = L.Input((5, 4), name="seq")
    x = L.Conv2D(4, 3, padding="same", name="conv")(img)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.SeparableConv2D(4, 3, padding="same", name="sep")(x)
    x = L.LeakyReLU(0.2, name="leaky")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    s = L.LSTM(4, return_sequences=True, name="lstm")(seq)
    s = L.Bidirectional(L.GRU(2, return_sequences=True), name="bi")(s)
    s = L.TimeDistributed(L.Dense(4), name="td")(s)
    s = L.GlobalAveragePooling1D(name="gap1d")(s)
    shared = L.Dense(4, name="shared")
    # Nested Sequential [Dense, BN, Dense]: tf.keras lists its weights trainable-first.
    inner = tf_keras.Sequential([L.Dense(4, name="in_d1", input_shape=(4,)),
                                 L.BatchNormalization(name="in_bn"), L.Dense(4, name="in_d2")],
                                name="inner")
    f_in = L.Input((4,), name="f_in")
    fn = tf_keras.Model(f_in, L.Dense(4, name="fn_d")(f_in), name="fn")
    added = L.Add(name="add")([inner(shared(x)), inner(shared(s))])
    y1 = fn(added)
    out = L.Dense(2, activation="softmax", name="head")(fn(y1))
    model = tf_keras.Model([img, seq], [out, y1], name="tf2")
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype))
    model.compile(optimizer=tf_keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")

    d = tmp_path_factory.mktemp("tf2")
    model.save(d / "m.h5")
    model.save(d / "m.keras")  # tf_keras' own zip format: Keras 3 layout, no name attrs
    model.save_weights(str(d / "w.h5"))
    model.save_weights(str(d / "w.weights.h5"))
    (d / "m.json").write_text(model.to_json())
    seq_model = tf_keras.Sequential([L.Dense(3, input_shape=(4,), name="sd1"), L.Dense(2, name="sd2")],
                                    name="seqm")
    seq_model.save(d / "seq.h5")
    lam = tf_keras.Sequential([L.Dense(2, input_shape=(3,), name="ld"),
                               L.Lambda(lambda t: t * 2.0, name="double")], name="lam")
    lam.save(d / "lam.h5")
    specs = {"h5": load_keras_model(d / "m.h5"), "keras": load_keras_model(d / "m.keras"),
             "legacy weights": load_keras_model((d / "m.json", d / "w.h5")),
             "keras3-layout weights": load_keras_model((d / "m.json", d / "w.weights.h5"))}
    return {"model": model, "specs": specs, "dir": d, "lam": lam, "seq": seq_model, "seq_spec": load_keras_model(d / "seq.h5"),
            "values": {v.name: v.numpy() for v in model.weights}}


def test_tf2_formats_agree(tf2):
    specs = list(tf2["specs"].values())
    for spec in specs[1:]:
        assert structure(spec) == structure(specs[0])
        got, want = flat_weights(spec), flat_weights(specs[0])
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("source", ["h5", "keras", "legacy weights", "keras3-layout weights"])
def test_tf2_weights_under_keras3_names(tf2, source):
    model, spec = tf2["model"], tf2["specs"][source]
    assert spec.keras_version.startswith("2.")
    stored = sorted(a.tobytes() for a in flat_weights(spec).values())
    assert stored == sorted(v.tobytes() for v in tf2["values"].values())
    get = model.get_layer
    expect = {
        ("dw", "kernel"): get("dw").depthwise_kernel,
        ("sep", "depthwise_kernel"): get("sep").depthwise_kernel,
        ("bn", "moving_variance"): get("bn").moving_variance,
        ("lstm", "recurrent_kernel"): get("lstm").cell.recurrent_kernel,
        ("bi", "forward/kernel"): get("bi").forward_layer.cell.kernel,
        ("bi", "backward/bias"): get("bi").backward_layer.cell.bias,
        ("td", "layer/kernel"): get("td").layer.kernel,
        ("shared", "bias"): get("shared").bias,
    }
    for (layer, name), var in expect.items():
        np.testing.assert_array_equal(spec.layer(layer).weights[name], var.numpy(), err_msg=name)
    inner, live_inner = spec.layer("inner").model, get("inner")
    for layer in ("in_d1", "in_bn", "in_d2"):
        live = live_inner.get_layer(layer)
        names = ["gamma", "beta", "moving_mean", "moving_variance"] if layer == "in_bn" else ["kernel", "bias"]
        for name in names:
            np.testing.assert_array_equal(inner.layer(layer).weights[name],
                                          getattr(live, name).numpy(), err_msg=f"{layer}/{name}")


def test_tf2_structure(tf2):
    spec = tf2["specs"]["h5"]
    # Nested models' node indices are call indices (tf.keras writes them +1).
    assert spec.layer("add").calls[0].args == [TensorRef("inner", 0, 0), TensorRef("inner", 1, 0)]
    assert spec.layer("fn").calls[1].args == TensorRef("fn", 0, 0)
    assert spec.outputs == [TensorRef("head", 0, 0), TensorRef("fn", 0, 0)]
    assert spec.layer("head").calls[0].args == TensorRef("fn", 1, 0)
    assert spec.layer("img").config["batch_shape"] == [None, 8, 8, 3]
    assert spec.layer("leaky").config["negative_slope"] == pytest.approx(0.2)
    assert spec.layer("inner").model.layers[0].class_name == "InputLayer"
    tc = spec.training_config
    assert tc["loss"] == "mse" and tc["optimizer"]["class_name"] == "SGD"
    assert tc["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    assert tc["optimizer"]["config"]["momentum"] == pytest.approx(0.9)
    seq = tf2["seq_spec"]
    assert [l.class_name for l in seq.layers] == ["InputLayer", "Dense", "Dense"]
    assert seq.layers[0].config["batch_shape"] == [None, 4]
    assert "batch_input_shape" not in seq.layer("sd1").config
    np.testing.assert_array_equal(seq.layer("sd2").weights["kernel"],
                                  tf2["seq"].get_layer("sd2").kernel.numpy())


def test_tf2_lambda(tf2):
    path = tf2["dir"] / "lam.h5"
    with pytest.raises(UnsafeModelError, match="'double'"):
        load_keras_model(path)
    spec = load_keras_model(path, safe_mode=False)
    assert spec.layer("double").live is not None
    np.testing.assert_array_equal(spec.layer("ld").weights["kernel"],
                                  tf2["lam"].get_layer("ld").kernel.numpy())


# --- Keras 2.0.8, written by hand -------------------------------------------------------


def _layer(class_name: str, name: str, inbound: list | None = None, **config) -> dict:
    entry = {"name": name, "class_name": class_name, "config": {"name": name, "trainable": True, **config}}
    if inbound is not None:
        entry["inbound_nodes"] = inbound
    return entry


def _dense(name: str, units: int, **extra) -> dict:
    return {"units": units, "activation": "linear", "use_bias": True, **extra}


RNN = {"return_sequences": True, "return_state": False, "go_backwards": False, "stateful": False,
       "unroll": False, "activation": "tanh", "recurrent_activation": "hard_sigmoid",
       "use_bias": True, "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 0}
BN = {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}


def keras20_model_config() -> dict:
    inner = [  # Keras 2.0 Sequential.get_config(): a bare list, shape on the first layer.
        _layer("Dense", "dense_2", batch_input_shape=[None, 4], dtype="float32", **_dense("dense_2", 4)),
        _layer("BatchNormalization", "batch_normalization_2", **BN),
        _layer("Dense", "dense_3", **_dense("dense_3", 4)),
    ]
    for e in inner:
        del e["name"]
    layers = [
        _layer("InputLayer", "input_1", [], batch_input_shape=[None, 8, 8, 3], dtype="float32", sparse=False),
        _layer("Conv2D", "conv2d_1", [[["input_1", 0, 0, {}]]], filters=4, kernel_size=[3, 3],
               strides=[1, 1], padding="same", data_format="channels_last", dilation_rate=[1, 1],
               activation="relu", use_bias=True),
        _layer("BatchNormalization", "batch_normalization_1", [[["conv2d_1", 0, 0, {}]]], **BN),
        _layer("GlobalAveragePooling2D", "global_average_pooling2d_1",
               [[["batch_normalization_1", 0, 0, {}]]], data_format="channels_last"),
        _layer("InputLayer", "input_2", [], batch_input_shape=[None, 5, 4], dtype="float32", sparse=False),
        _layer("LSTM", "lstm_1", [[["input_2", 0, 0, {}]]], units=3, unit_forget_bias=True, **RNN),
        _layer("Bidirectional", "bidirectional_1", [[["lstm_1", 0, 0, {}]]], merge_mode="concat",
               layer={"class_name": "GRU", "config": {"name": "gru_1", "trainable": True, "units": 2, **RNN}}),
        _layer("GlobalAveragePooling1D", "global_average_pooling1d_1", [[["bidirectional_1", 0, 0, {}]]]),
        _layer("Dense", "dense_1", [[["global_average_pooling2d_1", 0, 0, {}]],
                                    [["global_average_pooling1d_1", 0, 0, {}]]], **_dense("dense_1", 4)),
        {"name": "sequential_1", "class_name": "Sequential", "config": inner,
         "inbound_nodes": [[["dense_1", 0, 0, {}]], [["dense_1", 1, 0, {}]]]},
        _layer("Add", "add_1", [[["sequential_1", 1, 0, {}], ["sequential_1", 2, 0, {}]]]),
        _layer("Dense", "dense_4", [[["add_1", 0, 0, {}]]], **_dense("dense_4", 2, activation="softmax")),
        _layer("LeakyReLU", "leaky_re_lu_1", [[["dense_4", 0, 0, {}]]], alpha=0.3),
    ]
    return {"class_name": "Model", "config": {
        "name": "model_1", "layers": layers,
        "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
        "output_layers": [["leaky_re_lu_1", 0, 0], ["sequential_1", 2, 0]]}}


def keras20_weights() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per layer group, (weight_name, array) in Keras 2.0's order."""
    rng = np.random.default_rng(7)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    bn = lambda p, n: [(f"{p}/{k}:0", w(n)) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    rnn = lambda p, i, u, g: [(f"{p}/kernel:0", w(i, g * u)), (f"{p}/recurrent_kernel:0", w(u, g * u)),
                              (f"{p}/bias:0", w(g * u))]
    bn2 = bn("batch_normalization_2", 4)
    return {
        "input_1": [], "input_2": [], "global_average_pooling2d_1": [],
        "global_average_pooling1d_1": [], "add_1": [], "leaky_re_lu_1": [],
        "conv2d_1": [("conv2d_1/kernel:0", w(3, 3, 3, 4)), ("conv2d_1/bias:0", w(4))],
        "batch_normalization_1": bn("batch_normalization_1", 4),
        "lstm_1": rnn("lstm_1", 4, 3, 4),
        "bidirectional_1": rnn("bidirectional_1/forward_gru_1", 3, 2, 3)
        + rnn("bidirectional_1/backward_gru_1", 3, 2, 3),
        "dense_1": [("dense_1/kernel:0", w(4, 4)), ("dense_1/bias:0", w(4))],
        # A nested model lists trainable weights of all its layers first.
        "sequential_1": [("dense_2/kernel:0", w(4, 4)), ("dense_2/bias:0", w(4))] + bn2[:2]
        + [("dense_3/kernel:0", w(4, 4)), ("dense_3/bias:0", w(4))] + bn2[2:],
        "dense_4": [("dense_4/kernel:0", w(4, 2)), ("dense_4/bias:0", w(2))],
    }


def write_keras20(path, config: dict, weights: dict, *, full_model: bool = True) -> None:
    """The layout of Keras 2.0.8 ``save_model``/``save_weights`` with an old h5py (bytes attrs)."""
    with h5py.File(path, "w") as f:
        if full_model:
            f.attrs["keras_version"] = np.bytes_(b"2.0.8")
            f.attrs["backend"] = np.bytes_(b"tensorflow")
            f.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
            f.attrs["training_config"] = np.bytes_(json.dumps({
                "optimizer_config": {"class_name": "SGD", "config": {
                    "lr": 0.01, "momentum": 0.9, "decay": 0.0, "nesterov": False}},
                "loss": "categorical_crossentropy", "metrics": ["accuracy"],
                "sample_weight_mode": None, "loss_weights": None}).encode())
        root = f.create_group("model_weights") if full_model else f
        root.attrs["layer_names"] = np.array([n.encode() for n in weights], dtype="S")
        root.attrs["backend"] = np.bytes_(b"tensorflow")
        root.attrs["keras_version"] = np.bytes_(b"2.0.8")
        for layer, named in weights.items():
            g = root.create_group(layer)
            g.attrs["weight_names"] = np.array([n.encode() for n, _ in named], dtype="S")
            for name, array in named:
                g.create_dataset(name, data=array)


@pytest.fixture(scope="module")
def keras20(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("keras20")
    config, weights = keras20_model_config(), keras20_weights()
    write_keras20(d / "model.h5", config, weights)
    write_keras20(d / "weights.h5", config, weights, full_model=False)
    (d / "model.json").write_text(json.dumps({**config, "keras_version": "2.0.8", "backend": "tensorflow"}))
    seq_config = {"class_name": "Sequential", "config": [
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": True,
                                            "batch_input_shape": [None, 6, 6, 1], "dtype": "float32",
                                            "filters": 2, "kernel_size": [3, 3], "padding": "valid",
                                            "activation": "relu", "use_bias": True}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, **_dense("dense_1", 3)}}]}
    rng = np.random.default_rng(8)
    seq_weights = {"conv2d_1": [("conv2d_1/kernel:0", rng.standard_normal((3, 3, 1, 2)).astype("f4")),
                                ("conv2d_1/bias:0", rng.standard_normal(2).astype("f4"))],
                   "flatten_1": [],
                   "dense_1": [("dense_1/kernel:0", rng.standard_normal((32, 3)).astype("f4")),
                               ("dense_1/bias:0", rng.standard_normal(3).astype("f4"))]}
    write_keras20(d / "seq.h5", seq_config, seq_weights)
    return {"dir": d, "weights": weights, "seq_weights": seq_weights}


def test_keras20_functional(keras20):
    d = keras20["dir"]
    spec = load_keras_model(d / "model.h5")
    assert spec.source == "h5" and spec.keras_version == "2.0.8" and spec.name == "model_1"
    assert spec.inputs == [TensorRef("input_1"), TensorRef("input_2")]
    assert spec.outputs == [TensorRef("leaky_re_lu_1"), TensorRef("sequential_1", 1, 0)]
    assert spec.layer("input_1").config["batch_shape"] == [None, 8, 8, 3]
    assert [c.args for c in spec.layer("dense_1").calls] == [
        TensorRef("global_average_pooling2d_1"), TensorRef("global_average_pooling1d_1")]
    assert spec.layer("add_1").calls[0].args == [TensorRef("sequential_1", 0, 0),
                                                 TensorRef("sequential_1", 1, 0)]
    inner = spec.layer("sequential_1").model
    assert [l.name for l in inner.layers] == ["dense_2_input", "dense_2", "batch_normalization_2", "dense_3"]
    assert inner.layers[0].config["batch_shape"] == [None, 4]
    assert spec.layer("bidirectional_1").config["layer"]["config"]["reset_after"] is False
    assert spec.layer("leaky_re_lu_1").config["negative_slope"] == 0.3
    assert spec.layer("conv2d_1").config["dtype"] == "float32"
    tc = spec.training_config
    assert tc == {"loss": "categorical_crossentropy", "metrics": ["accuracy"],
                  "optimizer": {"class_name": "SGD", "config": {
                      "learning_rate": 0.01, "momentum": 0.9, "decay": 0.0, "nesterov": False}}}
    check_keras20_weights(spec, keras20["weights"])


def check_keras20_weights(spec: KerasModelSpec, written: dict) -> None:
    def value(layer, weight_name):
        return dict(written[layer])[weight_name]

    expect = {
        ("conv2d_1", "kernel"): value("conv2d_1", "conv2d_1/kernel:0"),
        ("batch_normalization_1", "moving_mean"): value("batch_normalization_1", "batch_normalization_1/moving_mean:0"),
        ("lstm_1", "recurrent_kernel"): value("lstm_1", "lstm_1/recurrent_kernel:0"),
        ("bidirectional_1", "forward/kernel"): value("bidirectional_1", "bidirectional_1/forward_gru_1/kernel:0"),
        ("bidirectional_1", "backward/bias"): value("bidirectional_1", "bidirectional_1/backward_gru_1/bias:0"),
        ("dense_1", "bias"): value("dense_1", "dense_1/bias:0"),
    }
    for (layer, name), array in expect.items():
        np.testing.assert_array_equal(spec.layer(layer).weights[name], array, err_msg=f"{layer}/{name}")
    inner = spec.layer("sequential_1").model
    for layer, names in [("dense_2", ["kernel", "bias"]), ("dense_3", ["kernel", "bias"]),
                         ("batch_normalization_2", ["gamma", "beta", "moving_mean", "moving_variance"])]:
        assert list(inner.layer(layer).weights) == names
        for name in names:
            np.testing.assert_array_equal(inner.layer(layer).weights[name],
                                          value("sequential_1", f"{layer}/{name}:0"))
    assert len(flat_weights(spec)) == sum(len(v) for v in written.values())


def test_keras20_json_plus_weights(keras20):
    d = keras20["dir"]
    spec = load_keras_model((d / "model.json", d / "weights.h5"))
    assert spec.source == "json+h5" and spec.keras_version == "2.0.8"
    assert structure(spec) == structure(load_keras_model(d / "model.h5"))
    check_keras20_weights(spec, keras20["weights"])


def test_keras20_bare_list_sequential(keras20):
    spec = load_keras_model(keras20["dir"] / "seq.h5")
    assert spec.name == "sequential"
    assert [(l.name, l.class_name) for l in spec.layers] == [
        ("conv2d_1_input", "InputLayer"), ("conv2d_1", "Conv2D"), ("flatten_1", "Flatten"), ("dense_1", "Dense")]
    assert spec.layers[0].config["batch_shape"] == [None, 6, 6, 1]
    assert spec.layer("flatten_1").calls[0].args == TensorRef("conv2d_1")
    assert spec.outputs == [TensorRef("dense_1")]
    written = keras20["seq_weights"]
    np.testing.assert_array_equal(spec.layer("conv2d_1").weights["kernel"], written["conv2d_1"][0][1])
    np.testing.assert_array_equal(spec.layer("dense_1").weights["bias"], written["dense_1"][1][1])


def test_keras20_reads_without_tensorflow(keras20):
    d = keras20["dir"]
    script = (
        "import sys\n"
        "from kcc.frontends.keras.loader import load_keras_model\n"
        f"load_keras_model({str(d / 'model.h5')!r}); load_keras_model({str(d / 'seq.h5')!r})\n"
        f"load_keras_model(({str(d / 'model.json')!r}, {str(d / 'weights.h5')!r}))\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
