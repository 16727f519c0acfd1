"""load_keras_model on Keras 3 models: memory, .keras, .h5 and json+weights agree.

One multi-input, multi-output functional model holds every layer class with weights,
a shared layer, a shared nested Sequential, a nested Functional called twice (one
call an output: Keras 3 writes its node index with an offset there) and a Sequential
holding a Functional holding a Sequential. Its variables are set to distinct seeded
values, so a weight under a wrong name cannot match by accident.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
L = keras.layers

from kcc.errors import ModelFileError, UnsafeModelError, UnsupportedLayerError  # noqa: E402
from kcc.frontends.keras.loader import load_keras_model  # noqa: E402
from kcc.frontends.keras.spec import KerasModelSpec, TensorRef  # noqa: E402


def build_zoo() -> keras.Model:
    keras.utils.set_random_seed(0)
    img = keras.Input((8, 8, 3), name="img")
    seq = keras.Input((6, 4), name="seq")
    vol = keras.Input((4, 4, 4, 2), name="vol")
    tok = keras.Input((5,), dtype="int32", name="tok")
    clip = keras.Input((3, 6, 6, 2), name="clip")

    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv2d")(img)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw2d")(x)
    x = L.SeparableConv2D(4, 3, padding="same", use_bias=False, name="sep2d")(x)
    x = L.Conv2DTranspose(4, 3, padding="same", name="convt2d")(x)
    x = L.GroupNormalization(2, name="gn")(x)
    x = L.PReLU(name="prelu")(x)
    x = L.BatchNormalization(center=False, name="bn_nocenter")(x)
    img_vec = L.GlobalAveragePooling2D(name="gap2d")(x)

    s = L.Conv1D(4, 3, padding="same", name="conv1d")(seq)
    s = L.DepthwiseConv1D(3, padding="same", name="dw1d")(s)
    s = L.SeparableConv1D(4, 3, padding="same", name="sep1d")(s)
    s = L.Conv1DTranspose(4, 3, padding="same", name="convt1d")(s)
    s = L.SimpleRNN(4, return_sequences=True, name="srnn")(s)
    s = L.LSTM(4, return_sequences=True, name="lstm")(s)
    s = L.GRU(4, return_sequences=True, reset_after=False, name="gru")(s)
    s = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(s)
    s = L.TimeDistributed(L.Dense(4), name="td")(s)
    s = L.MultiHeadAttention(2, 4, name="mha")(s, s)
    s = L.LayerNormalization(center=False, name="ln")(s)
    s = L.Normalization(name="norm")(s)
    seq_vec = L.GlobalAveragePooling1D(name="gap1d")(s)

    v = L.Conv3D(2, 3, padding="same", name="conv3d")(vol)
    v = L.Conv3DTranspose(2, 3, padding="same", name="convt3d")(v)
    v = L.GlobalAveragePooling3D(name="gap3d")(v)
    e = L.Flatten(name="flat")(L.Embedding(10, 4, name="emb")(tok))
    e = L.EinsumDense("ab,bc->ac", output_shape=4, bias_axes="c", name="einsum")(e)
    c = L.GlobalAveragePooling2D(name="gap_clip")(L.ConvLSTM2D(2, 3, name="convlstm")(clip))

    shared = L.Dense(4, name="shared")
    a, b = shared(img_vec), shared(seq_vec)
    inner_seq = keras.Sequential([keras.Input((4,)), L.Dense(4, name="is_dense"),
                                  L.BatchNormalization(name="is_bn")], name="inner_seq")
    deep_in = keras.Input((4,), name="deep_in")
    deep_seq = keras.Sequential([keras.Input((4,)), L.Dense(4, name="ds_dense")], name="deep_seq")
    inner_fn = keras.Model(deep_in, L.Dense(3, name="if_dense")(deep_seq(deep_in)), name="inner_fn")
    outer_seq = keras.Sequential([keras.Input((4,)), inner_fn, L.Dense(2, name="os_dense")],
                                 name="outer_seq")
    f2_in = keras.Input((4,), name="f2_in")
    fn2 = keras.Model(f2_in, L.Dense(4, name="f2_dense")(f2_in), name="fn2")

    added = L.Add(name="add")([inner_seq(a), inner_seq(b)])
    y1 = fn2(added)
    y2 = fn2(y1)
    head = L.Dense(3, activation="softmax", name="head")(
        L.Concatenate(name="cat")([y2, v, e, c]))
    model = keras.Model([img, seq, vol, tok, clip], [head, outer_seq(added), y1], name="zoo")

    rng = np.random.default_rng(0)
    for var in model.weights:
        var.assign(rng.standard_normal(tuple(var.shape)).astype(var.dtype))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=["mse", "mae", "mse"])
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("zoo")
    model = build_zoo()
    model.save(d / "zoo.keras")
    model.save(d / "zoo.h5")
    model.save_weights(d / "zoo.weights.h5")
    (d / "zoo.json").write_text(model.to_json())
    return {"model": model, "dir": d, "memory": load_keras_model(model),
            "keras": load_keras_model(d / "zoo.keras"), "h5": load_keras_model(str(d / "zoo.h5")),
            "json+h5": load_keras_model((d / "zoo.json", d / "zoo.weights.h5"))}


def structure(spec: KerasModelSpec) -> list:
    """Everything but weights and live objects, nested models included."""
    return [spec.name, [(l.name, l.class_name, l.trainable, [(c.args, c.kwargs) for c in l.calls],
                         structure(l.model) if l.model else None) for l in spec.layers],
            spec.inputs, spec.outputs]


def flat_weights(spec: KerasModelSpec, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for layer in spec.layers:
        out.update({f"{prefix}{layer.name}/{k}": v for k, v in layer.weights.items()})
        if layer.model:
            out.update(flat_weights(layer.model, f"{prefix}{layer.name}/"))
    return out


def flat_configs(spec: KerasModelSpec, prefix: str = "") -> dict[str, dict]:
    out = {}
    for layer in spec.layers:
        out[prefix + layer.name] = layer.config
        if layer.model:
            out.update(flat_configs(layer.model, f"{prefix}{layer.name}/"))
    return out


SOURCES = ["keras", "h5", "json+h5"]


def test_structure_of_the_zoo(zoo):
    spec = zoo["memory"]
    assert [r.layer for r in spec.inputs] == ["img", "seq", "vol", "tok", "clip"]
    assert spec.outputs[0].layer == "head"
    shared = spec.layer("shared")
    assert [c.args.layer for c in shared.calls] == ["gap2d", "gap1d"]
    inner = spec.layer("inner_seq")
    assert [c.args for c in inner.calls] == [TensorRef("shared", 0, 0), TensorRef("shared", 1, 0)]
    assert [l.class_name for l in inner.model.layers] == ["InputLayer", "Dense", "BatchNormalization"]
    assert spec.layer("add").calls[0].args == [TensorRef("inner_seq", 0, 0), TensorRef("inner_seq", 1, 0)]
    # fn2 is called twice: its 2nd call reads the 1st; the 3rd model output is its 1st call.
    fn2 = spec.layer("fn2")
    assert fn2.calls[1].args == TensorRef("fn2", 0, 0)
    assert spec.outputs[2] == TensorRef("fn2", 0, 0)
    assert spec.layer("cat").calls[0].args[0] == TensorRef("fn2", 1, 0)
    # Three levels: Sequential > Functional > Sequential.
    outer = spec.layer("outer_seq").model
    assert [l.name for l in outer.layers][1:] == ["inner_fn", "os_dense"]
    deep = outer.layer("inner_fn").model.layer("deep_seq").model
    assert deep.layer("ds_dense").calls[0].args.layer == deep.layers[0].name
    mha = spec.layer("mha").calls[0]
    assert mha.args.layer == "td" and mha.kwargs["value"].layer == "td"
    conv = spec.layer("conv2d").config
    assert conv["activation"] == "relu" and conv["dtype"] == "float32"
    assert spec.layer("img").config["batch_shape"] == [None, 8, 8, 3]
    assert spec.layer("tok").config["dtype"] == "int32"
    assert spec.layer("bn").live is zoo["model"].get_layer("bn")

    def all_live(s):
        return all(l.live is not None and (l.model is None or all_live(l.model)) for l in s.layers)
    assert all_live(spec)
    assert not any(l.live for l in zoo["keras"].layers)


@pytest.mark.parametrize("source", SOURCES)
def test_file_specs_equal_memory_spec(zoo, source):
    spec, memory = zoo[source], zoo["memory"]
    assert spec.source == source
    assert structure(spec) == structure(memory)
    got, want = flat_weights(spec), flat_weights(memory)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert flat_configs(spec) == flat_configs(memory)


def test_weights_are_the_keras_variables(zoo):
    model, spec = zoo["model"], zoo["keras"]
    # Every variable exactly once (values are distinct random draws).
    stored = sorted(a.tobytes() for a in flat_weights(spec).values())
    assert stored == sorted(np.array(v).tobytes() for v in model.weights)

    def check(layer_path, name, var):
        layer = spec
        for part in layer_path.split("/"):
            layer = (layer.model if hasattr(layer, "model") and layer.model else layer).layer(part)
        np.testing.assert_array_equal(layer.weights[name], np.array(var), err_msg=f"{layer_path}:{name}")

    get = model.get_layer
    check("bn", "moving_variance", get("bn").moving_variance)
    check("bn_nocenter", "gamma", get("bn_nocenter").gamma)
    assert "beta" not in spec.layer("bn_nocenter").weights
    check("dw2d", "kernel", get("dw2d").kernel)
    check("sep2d", "pointwise_kernel", get("sep2d").pointwise_kernel)
    assert "bias" not in spec.layer("sep2d").weights
    check("gru", "recurrent_kernel", get("gru").cell.recurrent_kernel)
    check("bi", "forward/kernel", get("bi").forward_layer.cell.kernel)
    check("bi", "backward/bias", get("bi").backward_layer.cell.bias)
    check("td", "layer/kernel", get("td").layer.kernel)
    check("mha", "query/kernel", get("mha").query_dense.kernel)
    check("mha", "attention_output/bias", get("mha").output_dense.bias)
    check("norm", "count", get("norm").count)
    check("emb", "embeddings", get("emb").embeddings)
    check("convlstm", "recurrent_kernel", get("convlstm").cell.recurrent_kernel)
    check("inner_seq/is_bn", "moving_mean", get("inner_seq").get_layer("is_bn").moving_mean)
    deep = get("outer_seq").get_layer("inner_fn").get_layer("deep_seq").get_layer("ds_dense")
    check("outer_seq/inner_fn/deep_seq/ds_dense", "kernel", deep.kernel)


@pytest.mark.parametrize("source", ["memory", "keras", "h5"])
def test_training_config(zoo, source):
    tc = zoo[source].training_config
    assert tc["loss"] == ["mse", "mae", "mse"]
    assert tc["optimizer"]["class_name"] == "SGD"
    assert tc["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    assert tc["optimizer"]["config"]["momentum"] == pytest.approx(0.9)


def test_versions(zoo):
    assert zoo["keras"].keras_version == keras.__version__
    assert zoo["h5"].keras_version == keras.__version__
    assert zoo["memory"].keras_version == keras.__version__


def test_sequential_models(tmp_path):
    keras.utils.set_random_seed(1)
    with_input = keras.Sequential([keras.Input((3,)), L.Dense(2, name="a"), L.Dense(1, name="b")],
                                  name="s1")
    built_later = keras.Sequential([L.Dense(2, name="c")], name="s2")
    built_later.build((None, 5))
    for model in (with_input, built_later):
        model.save(tmp_path / "m.keras")
        model.save(tmp_path / "m.h5")
        specs = [load_keras_model(model), load_keras_model(tmp_path / "m.keras"),
                 load_keras_model(tmp_path / "m.h5")]
        for spec in specs:
            first = spec.layers[0]
            assert first.class_name == "InputLayer" and spec.inputs[0].layer == first.name
            assert first.config["batch_shape"][1:] == list(model.inputs[0].shape[1:])
            for prev, layer in zip(spec.layers, spec.layers[1:]):
                assert layer.calls[0].args.layer == prev.name
            assert spec.outputs[0].layer == spec.layers[-1].name
            assert structure(spec) == structure(specs[0])
            last = model.layers[-1]
            np.testing.assert_array_equal(spec.layers[-1].weights["kernel"], np.array(last.kernel))


def test_reading_files_does_not_import_tensorflow(zoo, tmp_path):
    d = zoo["dir"]
    script = (
        "import sys\n"
        "from kcc.frontends.keras.loader import load_keras_model\n"
        f"d = {str(d)!r}\n"
        "for s in [d + '/zoo.keras', d + '/zoo.h5', (d + '/zoo.json', d + '/zoo.weights.h5')]:\n"
        "    assert load_keras_model(s).layer('bn').weights['gamma'].shape == (4,)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


# --- Lambda and custom layers -------------------------------------------------------


@keras.saving.register_keras_serializable(package="kcc_test")
class Scale(L.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), name="w", initializer="ones")

    def call(self, x):
        return x * self.w


def lambda_model() -> keras.Model:
    keras.utils.set_random_seed(2)
    inp = keras.Input((4,), name="x")
    y = L.Dense(4, name="d")(inp)
    y = L.Lambda(lambda t: t * 2.0, name="double")(y)
    y = Scale(name="scale")(y)
    return keras.Model(inp, y, name="lam")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_bytecode_refused_under_safe_mode(tmp_path, suffix):
    model = lambda_model()
    path = tmp_path / f"lam{suffix}"
    model.save(path)
    with pytest.raises(UnsafeModelError, match=r"'double'.*safe_mode=False.*--unsafe"):
        load_keras_model(path)
    spec = load_keras_model(path, safe_mode=False)
    assert spec.layer("double").live is not None
    assert spec.layer("double").live.__class__.__name__ == "Lambda"
    np.testing.assert_array_equal(spec.layer("d").weights["kernel"],
                                  np.array(model.get_layer("d").kernel))
    np.testing.assert_array_equal(spec.layer("scale").weights["w"],
                                  np.array(model.get_layer("scale").w))
    assert spec.layer("scale").registered_name in (None, "kcc_test>Scale")


def test_unknown_class_names_the_layer_and_ways_forward(tmp_path):
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, Scale(name="scale")(L.Dense(4, name="d")(inp)))
    model.save(tmp_path / "c.keras")
    with zipfile.ZipFile(tmp_path / "c.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Scale":
            layer["class_name"], layer["registered_name"] = "NoSuchLayer", "nowhere>NoSuchLayer"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "unknown.keras", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(UnsupportedLayerError,
                       match=r"'scale'.*'NoSuchLayer'.*custom_objects.*add_custom_layers"):
        load_keras_model(tmp_path / "unknown.keras")
    # The original registered class loads: live object attached, weights from it.
    spec = load_keras_model(tmp_path / "c.keras", custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(spec.layer("scale").weights["w"], np.ones(4, np.float32))


# --- bad input ------------------------------------------------------------------------


def test_bad_files(zoo, tmp_path):
    d = zoo["dir"]
    rng = np.random.default_rng(3)
    noise = rng.bytes(4096)
    cases = {}
    for name in ("noise.h5", "noise.keras"):
        (tmp_path / name).write_bytes(noise)
        cases[name] = "neither the zip nor the HDF5"
    (tmp_path / "empty.h5").write_bytes(b"")
    cases["empty.h5"] = "empty"
    data = (d / "zoo.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    cases["cut.h5"] = "corrupt or truncated"
    data = (d / "zoo.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    cases["cut.keras"] = "corrupt or truncated"
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as z:
        z.writestr("model.weights.h5", b"")
    cases["noconfig.keras"] = "no config.json"
    with h5py.File(tmp_path / "noconfig.h5", "w") as f:
        f.create_group("model_weights")
    cases["noconfig.h5"] = "no model_config"
    cases["missing.h5"] = "no such file"
    for name, message in cases.items():
        with pytest.raises(ModelFileError, match=message) as info:
            load_keras_model(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(ModelFileError, match="weights-only.*model.json"):
        load_keras_model(d / "zoo.weights.h5")
    with pytest.raises(ModelFileError, match="holds no weights.*load_keras_model"):
        load_keras_model(d / "zoo.json")
    with pytest.raises(ModelFileError, match="noise.h5"):
        load_keras_model((d / "zoo.json", tmp_path / "noise.h5"))
