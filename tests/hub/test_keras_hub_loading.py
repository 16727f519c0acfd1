"""How KerasHub models are read: their live functional graph, in memory and from files.

A KerasHub Backbone or Task is a Functional subclass whose config holds its
constructor arguments, not its layers. kcc reads its layer graph from the live
model (load_memory.py / live_graph.py), or, for a ``.keras`` file, from the model
Keras rebuilds under the caller's safe mode (load_subclass.py). These tests pin
the structure (dict inputs keep their names, a Task nests its backbone), the
safety checks that still run first, and the errors for what cannot be read.
"""
from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

import kcc
from hub_helpers import bert_classifier, gpt2, hub_inputs, saved
from kcc.errors import ConversionError, ModelFileError, UnsafeModelError
from kcc.frontends.keras.loader import load_keras_model
from kcc.frontends.keras.spec import TensorRef



def _check(spec, model):
    """A BertTextClassifier: dict inputs in Keras's (sorted) order, the backbone a nested model."""
    assert [r.layer for r in spec.inputs] == ["padding_mask", "segment_ids", "token_ids"]
    backbone = spec.layer(model.backbone.name)
    assert backbone.class_name == "BertBackbone" and backbone.model is not None
    assert [r.layer for r in backbone.model.inputs] == ["padding_mask", "segment_ids", "token_ids"]
    # Keras flattens the backbone's dict outputs by key: index 0 is "pooled_output".
    assert [r.layer for r in backbone.model.outputs] == ["pooled_dense", "transformer_layer_0"]
    assert spec.layer("classifier_dropout").calls[0].args == TensorRef(model.backbone.name, 0, 0)
    encoder = backbone.model.layer("transformer_layer_0")
    assert encoder.calls[0].kwargs["padding_mask"] == TensorRef("padding_mask", 0, 0)
    assert encoder.live is not None
    assert "GetItem" in [layer.class_name for layer in backbone.model.layers]  # x[:, 0, :]
    assert backbone.model.layer("pooled_dense").weights["kernel"].shape == (16, 16)


def test_task_in_memory_is_its_live_graph():
    model = bert_classifier()
    _check(load_keras_model(model), model)


def test_task_file_is_rebuilt_by_keras_under_safe_mode(tmp_path):
    model = bert_classifier()
    spec = load_keras_model(saved(model, tmp_path), safe_mode=True)
    assert spec.source == "keras" and spec.keras_version == keras.__version__
    _check(spec, model)
    np.testing.assert_array_equal(spec.layer("logits").weights["kernel"],
                                  model.get_layer("logits").kernel.numpy())


def _rewrite_config(path, edit):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_code_in_a_backbone_file_is_refused_before_keras_reads_it(tmp_path):
    path = saved(gpt2(), tmp_path)
    _rewrite_config(path, lambda c: c["config"].update(
        {"dtype": {"class_name": "__lambda__", "config": {"code": "payload", "defaults": None}}}))
    with pytest.raises(UnsafeModelError, match=r"gpt2_backbone.*lambda.*safe_mode=False"):
        load_keras_model(path)


def test_unloadable_subclass_file_names_the_class(tmp_path):
    path = saved(gpt2(), tmp_path)
    _rewrite_config(path, lambda c: c.update({"class_name": "NoSuchBackbone",
                                              "registered_name": "keras_hub>NoSuchBackbone"}))
    with pytest.raises(kcc.errors.UnsupportedLayerError, match=r"'NoSuchBackbone'.*constructor arguments"):
        load_keras_model(path)


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


def test_subclassed_model_without_graph_is_a_clear_error():
    model = _Subclassed(name="sub")
    model(np.zeros((1, 4), np.float32))
    with pytest.raises(ConversionError, match=r"'sub' \(_Subclassed\).*no functional layer graph"):
        load_keras_model(model)


def test_subclassed_model_file_is_a_clear_error(tmp_path):
    keras.saving.register_keras_serializable("kcc_test")(_Subclassed)
    model = _Subclassed(name="sub")
    model(np.zeros((1, 4), np.float32))
    path = tmp_path / "sub.keras"
    model.save(path)
    with pytest.raises(ModelFileError, match=r"'_Subclassed'.*no functional layer graph"):
        load_keras_model(path, custom_objects={"kcc_test>_Subclassed": _Subclassed})


def test_gpt2_mask_is_read_every_row_differs_from_unmasked():
    """The converted GPT-2 reads its padding mask: feeding all ones changes the padded rows."""
    model = gpt2()
    x = hub_inputs(model)
    onnx_model = kcc.compile(model, target="onnx", input_name_shape_dict={k: v.shape for k, v in x.items()})
    from kcc.testing import run_onnx

    masked = run_onnx(onnx_model, x)
    unmasked = run_onnx(onnx_model, {**x, "padding_mask": np.ones_like(x["padding_mask"])})
    padded_rows = np.flatnonzero(x["padding_mask"].min(axis=1) == 0)
    assert len(padded_rows) == 2
    for out_masked, out_unmasked in zip(masked, unmasked):
        assert np.abs(out_masked[padded_rows] - out_unmasked[padded_rows]).max() > 1e-3
        np.testing.assert_allclose(out_masked[0], out_unmasked[0], atol=1e-6)


def test_same_named_foreign_class_is_not_given_the_keras_handler(tmp_path):
    """KerasHub's Gemma RMSNormalization computes x * (1 + scale); Keras's handler would use x * scale."""
    from keras_hub.src.models.gemma.rms_normalization import RMSNormalization

    from kcc.testing import assert_close, run_onnx

    x = keras.Input((5, 6), name="x")
    norm = RMSNormalization(name="norm")
    model = keras.Model(x, norm(x))
    norm.scale.assign(np.linspace(-0.5, 0.5, 6).astype("float32"))
    feeds = {"x": np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")}
    want = np.asarray(model(feeds["x"]))
    path = tmp_path / "norm.keras"
    model.save(path)
    for source in (model, path):
        assert_close(want, run_onnx(kcc.compile(source, target="onnx"), feeds)[0])
