"""Keras files whose custom layers kcc has handlers for load without Keras; others rebuild one layer.

keras.applications' ``CustomScaleLayer`` (InceptionResNetV2) and ``LayerScale``
(ConvNeXt) are not in ``keras.layers``, but kcc lowers them from their config and
weights: converting such a ``.keras`` file must import neither Keras nor
TensorFlow (checked in a fresh process). A Lambda or a class kcc has no handler
for is traced, so Keras rebuilds it, and only it: the whole model is not
reloaded (``keras.saving.load_model`` is made to fail to prove it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
from keras.src.applications.convnext import LayerScale  # noqa: E402
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer  # noqa: E402

import kcc  # noqa: E402
from kcc.frontends.keras.loader import load_keras_model  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx, seeded  # noqa: E402

L = keras.layers
ROOT = Path(__file__).resolve().parents[2]


@keras.saving.register_keras_serializable(package="kcc_no_tf")
class Shift(L.Layer):
    """A custom class kcc has no handler for: traced, so Keras must rebuild it."""

    def build(self, input_shape):
        self.offset = self.add_weight(shape=(input_shape[-1],), name="offset", initializer="zeros")

    def call(self, x):
        return x + self.offset

    def compute_output_shape(self, input_shape):
        return input_shape


class user:  # noqa: N801 - a namespace, so the class below can share ConvNeXt's class name
    @keras.saving.register_keras_serializable(package="kcc_no_tf")
    class LayerScale(L.Layer):
        """The user's own class called like ConvNeXt's: Keras rebuilds it."""

        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(input_shape[-1],), name="gamma", initializer="ones")

        def call(self, x):
            return x * self.gamma


def _applications_model() -> keras.Model:
    """Conv blocks joined by CustomScaleLayer, then LayerScale; unequal H, W and C."""
    keras.utils.set_random_seed(4)
    x = keras.Input((5, 7, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", name="branch_a")(x)
    b = L.Conv2D(4, 1, activation="relu", name="branch_b")(x)
    y = CustomScaleLayer(0.17, name="residual_scale")([a, b])
    y = LayerScale(0.5, 4, name="layer_scale")(y)
    model = keras.Model(x, L.GlobalAveragePooling2D(name="pool")(y), name="apps")
    model.get_layer("layer_scale").set_weights([np.array([0.5, -1.5, 2.0, 0.25], np.float32)])
    return model


@pytest.fixture(scope="module")
def apps_file(tmp_path_factory) -> tuple[Path, keras.Model]:
    path = tmp_path_factory.mktemp("apps") / "apps.keras"
    model = _applications_model()
    model.save(path)
    return path, model


def test_handled_custom_layers_load_without_keras_or_tensorflow(apps_file, tmp_path):
    path, model = apps_file
    out = tmp_path / "apps.onnx"
    script = (
        "import sys, onnx, kcc\n"
        f"m = kcc.compile({str(path)!r}, target='onnx')\n"
        f"onnx.save(m, {str(out)!r})\n"
        "bad = [n for n in ('tensorflow', 'keras', 'tf_keras') if n in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
    x = seeded((2, 5, 7, 3), seed=1)
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(str(out), [x])[0], 1e-5)


def test_handled_custom_layers_read_their_weights_from_the_file(apps_file):
    path, _ = apps_file
    spec = load_keras_model(path)
    assert all(layer.live is None for layer in spec.layers)
    np.testing.assert_array_equal(list(spec.layer("layer_scale").weights.values())[0],
                                  np.array([0.5, -1.5, 2.0, 0.25], np.float32))


def _traced_model() -> keras.Model:
    """A nested model holding a Lambda, a handler-less custom class and LayerScale."""
    keras.utils.set_random_seed(5)
    inner_in = keras.Input((6, 4), name="inner_in")
    h = L.Dense(5, name="inner_dense")(inner_in)
    h = L.Lambda(lambda t: t * 2.0 - 1.0, name="affine")(h)
    h = Shift(name="shift")(h)
    inner = keras.Model(inner_in, h, name="inner")
    x = keras.Input((6, 4), name="seq")
    y = LayerScale(0.5, 5, name="scale")(inner(x))
    model = keras.Model(x, L.Dense(3, name="head")(y), name="outer")
    model.get_layer("inner").get_layer("shift").set_weights([np.array([0.3, -0.2, 0.0, 1.0, -0.7], np.float32)])
    model.get_layer("scale").set_weights([np.array([1.0, -2.0, 0.5, 3.0, -0.25], np.float32)])
    return model


def test_only_the_traced_layers_are_rebuilt(tmp_path, monkeypatch):
    model = _traced_model()
    path = tmp_path / "traced.keras"
    model.save(path)

    def whole_model_load(*args, **kwargs):
        raise AssertionError("the whole model was rebuilt")

    monkeypatch.setattr(keras.saving, "load_model", whole_model_load)
    spec = load_keras_model(path, safe_mode=False)
    inner = spec.layer("inner").model
    assert inner.layer("affine").live.__class__.__name__ == "Lambda"
    assert isinstance(inner.layer("shift").live, Shift)
    np.testing.assert_array_equal(inner.layer("shift").weights["offset"],
                                  np.array([0.3, -0.2, 0.0, 1.0, -0.7], np.float32))
    assert inner.layer("inner_dense").live is None and spec.layer("scale").live is None
    assert spec.layer("head").live is None

    onnx_model = kcc.compile(path, target="onnx", safe_mode=False)
    x = seeded((2, 6, 4), seed=2)
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(onnx_model, [x])[0], 1e-5)


def test_safe_mode_still_refuses_the_lambda(tmp_path):
    path = tmp_path / "traced.keras"
    _traced_model().save(path)
    from kcc.errors import UnsafeModelError

    with pytest.raises(UnsafeModelError, match="'affine'"):
        load_keras_model(path)


def test_a_same_named_user_class_is_rebuilt_by_keras(tmp_path):
    keras.utils.set_random_seed(6)
    x = keras.Input((3,), name="x")
    model = keras.Model(x, user.LayerScale(name="mine")(L.Dense(3, name="d")(x)))
    path = tmp_path / "copy.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        entry = next(e for e in json.loads(z.read("config.json"))["config"]["layers"] if e["name"] == "mine")
    assert entry["class_name"] == "LayerScale" and not entry["module"].startswith("keras")
    spec = load_keras_model(path)
    assert isinstance(spec.layer("mine").live, user.LayerScale)


def test_a_custom_layer_inside_a_wrapper_rebuilds_the_whole_model(tmp_path, monkeypatch):
    keras.utils.set_random_seed(7)
    x = keras.Input((2, 3), name="x")
    model = keras.Model(x, L.TimeDistributed(Shift(name="s"), name="td")(x))
    path = tmp_path / "wrapped.keras"
    model.save(path)
    calls = []
    original = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(a) or original(*a, **k))
    spec = load_keras_model(path)
    assert calls and spec.layer("td").live is not None


def test_a_layer_read_without_keras_is_rebuilt_alone_on_demand(apps_file):
    """A handler may hand an unusual config to the fallback chain: the layer alone is rebuilt then."""
    path, model = apps_file
    spec = load_keras_model(path)
    scale = spec.layer("layer_scale").rebuild_live()
    assert isinstance(scale, LayerScale)
    np.testing.assert_array_equal(np.array(scale.gamma), np.array([0.5, -1.5, 2.0, 0.25], np.float32))
    conv = spec.layer("branch_b").rebuild_live()
    for got, want in zip(conv.get_weights(), model.get_layer("branch_b").get_weights()):
        np.testing.assert_array_equal(got, want)
    x = seeded((2, 5, 7, 4), seed=3)
    np.testing.assert_array_equal(np.asarray(scale(x)), np.asarray(model.get_layer("layer_scale")(x)))


def test_the_trace_step_rebuilds_a_layer_read_without_keras(apps_file):
    """The fallback chain's trace step gets the live layer by rebuilding that layer alone."""
    from kcc.frontends.keras.fallback import STEPS
    from kcc.frontends.keras.registry import KerasLayerContext
    from kcc.interpreter import run
    from kcc.ir import Graph, TensorType

    path, model = apps_file
    layer = load_keras_model(path).layer("layer_scale")
    assert layer.live is None
    graph = Graph("traced")
    x = graph.add_input("x", TensorType(("N", 4, 5, 7), "f32"))  # IR order of Keras's (N, 5, 7, 4)
    ctx = KerasLayerContext(graph, layer, layer.calls[0], 0, "layer_scale", {})
    (y,) = STEPS.get("trace").fn(ctx, [x])
    assert isinstance(layer.live, LayerScale)
    graph.set_outputs([y], ["y"])
    xk = seeded((2, 5, 7, 4), seed=6)
    got = run(graph, {"x": xk.transpose(0, 3, 1, 2)})["y"].transpose(0, 2, 3, 1)
    assert_close(np.asarray(model.get_layer("layer_scale")(xk)), got, 1e-6)
