"""Every Keras layer row of the layer table (tests/layers) and the recurrent cases, through Core ML.

Keras -> kcc Core ML spec -> kcc's Core ML runtime, compared with Keras within 1e-4
of the output's largest magnitude (batch of 2, one runtime call per sample). The
rows are the layer engineers' builders, so every layer the frontend supports is
covered here as soon as it has a row.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recurrent"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras
L = keras.layers

import test_layers_table as table  # noqa: E402
from coreml_backend_helpers import check_coreml, layer_types  # noqa: E402
from recurrent_helpers import randomize as randomize_all  # noqa: E402

def _check(model, inputs=None, **options):
    return check_coreml(model, inputs, **options)


@pytest.mark.parametrize("row", sorted(table.ROWS))
def test_layer_row(row):
    build, _ = table.ROWS[row]
    _check(build())


RECURRENT_OPTIONS = [{}, {"return_sequences": True}, {"return_state": True},
                     {"return_sequences": True, "return_state": True, "go_backwards": True},
                     {"go_backwards": True}, {"activation": "relu", "return_sequences": True}]
RECURRENT = [(cls, opts) for cls in ("SimpleRNN", "LSTM", "GRU") for opts in RECURRENT_OPTIONS] + [
    ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"reset_after": False, "go_backwards": True, "return_state": True}),
    ("LSTM", {"recurrent_activation": "hard_sigmoid", "activation": "softsign", "return_sequences": True}),
    ("LSTM", {"use_bias": False, "return_state": True}),
    ("SimpleRNN", {"activation": "linear", "return_sequences": True}),
]


@pytest.mark.parametrize("cls,opts", RECURRENT, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={v}" for k, v in v.items()) or "default")
def test_recurrent(cls, opts):
    x = keras.Input((6, 3))
    model = keras.Model(x, getattr(L, cls)(4, **opts)(x))
    randomize_all(model)
    mlmodel, _ = _check(model)
    if cls == "GRU" and opts.get("reset_after", True):
        assert mlmodel.get_spec().specificationVersion == 4   # unrolled with ND layers
    elif not opts.get("go_backwards") or not opts.get("return_sequences"):
        # the Keras layer maps to one Core ML recurrent layer between Seq<->W permutes: spec 1
        assert mlmodel.get_spec().specificationVersion == 1


def test_bidirectional_stack_stays_rank5():
    x = keras.Input((6, 3))
    y = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    model = keras.Model(x, L.LSTM(3)(y))
    randomize_all(model)
    mlmodel, _ = _check(model)
    spec = mlmodel.get_spec()
    assert spec.specificationVersion == 1
    assert layer_types(spec).count("uniDirectionalLSTM") == 3


def test_gru_reset_after_with_initial_state():
    x, h = keras.Input((5, 3)), keras.Input((4,))
    model = keras.Model([x, h], L.GRU(4, return_sequences=True, recurrent_activation="hard_sigmoid")(
        x, initial_state=[h]))
    randomize_all(model)
    _check(model)


def test_batch_of_two_in_rank5_layout():
    """The rank-5 layout keeps samples apart: a batch of 2 through the runtime's Batch axis."""
    import kcc
    from kcc.coreml import predict
    model = table.ROWS["Flatten"][0]()
    xs = np.random.default_rng(3).standard_normal((2, 4, 4, 3)).astype(np.float32)
    ref = np.asarray(model(xs))
    spec = kcc.compile(model, target="coreml").get_spec()
    name = spec.description.input[0].name
    out = predict(spec, {name: xs.transpose(0, 3, 1, 2)[None]})  # [Seq=1, Batch=2, C, H, W]
    got = np.asarray(out[spec.description.output[0].name]).reshape(2, -1)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_conv_lstm_unrolled():
    x = keras.Input((4, 6, 6, 2))
    y = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    y = L.ConvLSTM2D(2, (2, 3), strides=2, go_backwards=True, return_state=True, activation="relu")(y)
    model = keras.Model(x, y)
    randomize_all(model)
    mlmodel, _ = _check(model)
    assert mlmodel.get_spec().specificationVersion == 4


def test_conv_lstm1d_initial_state():
    x, h, c = keras.Input((5, 7, 2)), keras.Input((7, 3)), keras.Input((7, 3))
    y = L.ConvLSTM1D(3, 3, padding="same", return_sequences=True, recurrent_activation="hard_sigmoid")(
        x, initial_state=[h, c])
    model = keras.Model([x, h, c], y)
    randomize_all(model)
    _check(model)


APPLICATIONS = {
    "MobileNetV2": lambda A: A.MobileNetV2(input_shape=(32, 32, 3), weights=None, alpha=0.35,
                                           classifier_activation=None),
    "MobileNetV3Small": lambda A: A.MobileNetV3Small(input_shape=(32, 32, 3), weights=None,
                                                     classifier_activation=None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_application_stays_spec1(name):
    """Whole keras.applications nets (BatchNorm calibrated, logits compared) come out as spec 1."""
    from kcc.testing import calibrate_batchnorm

    model = APPLICATIONS[name](keras.applications)
    scale = 255.0 if name == "MobileNetV3Small" else 1.0
    rng = np.random.default_rng(0)
    calibrate_batchnorm(model, rng.uniform(0, scale, (8, 32, 32, 3)).astype(np.float32))
    mlmodel, _ = check_coreml(model, [rng.uniform(0, scale, (2, 32, 32, 3)).astype(np.float32)])
    assert mlmodel.get_spec().specificationVersion == 1


@pytest.mark.parametrize("cls,merge_mode", [("LSTM", "ave"), ("SimpleRNN", "mul"), ("GRU", "sum"),
                                            ("LSTM", "concat")])
def test_bidirectional_merge_modes(cls, merge_mode):
    x = keras.Input((6, 3))
    kwargs = {"reset_after": False} if cls == "GRU" else {}
    y = L.Bidirectional(getattr(L, cls)(4, return_sequences=True, **kwargs), merge_mode=merge_mode)(x)
    model = keras.Model(x, y)
    randomize_all(model)
    mlmodel, _ = _check(model)
    assert mlmodel.get_spec().specificationVersion == 1   # the merge runs on the [T, N, C, 1, 1] blobs


def test_time_distributed_dense_and_conv():
    x = keras.Input((3, 8, 8, 2))
    y = L.TimeDistributed(L.Conv2D(3, 3, padding="same", activation="relu"))(x)
    y = L.TimeDistributed(L.MaxPooling2D(2))(y)
    y = L.TimeDistributed(L.Flatten())(y)
    y = L.LSTM(4, return_sequences=True)(y)
    model = keras.Model(x, L.TimeDistributed(L.Dense(5, activation="relu"))(y))
    randomize_all(model)
    _check(model)


def _lambda_entries():
    from lambda_library import LIBRARY
    return LIBRARY


@pytest.mark.parametrize("entry", _lambda_entries(), ids=lambda e: e[0])
def test_lambda_body(entry):
    """The Lambda library's bodies (traced TensorFlow ops lowered to IR) through Core ML."""
    from lambda_helpers import lambda_model, seeded_inputs

    _, shapes, body, kwargs = entry
    model = lambda_model(shapes, body, **kwargs)
    _check(model, seeded_inputs(model, batch=2))
