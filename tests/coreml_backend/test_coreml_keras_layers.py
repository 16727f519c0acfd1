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

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
L = keras.layers

import test_layers_table as table  # noqa: E402
from coreml_backend_helpers import check_coreml, layer_types  # noqa: E402
from recurrent_helpers import randomize as randomize_all  # noqa: E402

# Layers the kcc Core ML runtime cannot run yet (the spec is still built and loaded).
RUNTIME_LACKS = {"convolution3d", "pooling3d"}


def _check(model, **options):
    try:
        return check_coreml(model, **options)
    except Exception as e:  # noqa: BLE001
        if "kcc Core ML runtime does not implement" in str(e) and any(t in str(e) for t in RUNTIME_LACKS):
            import kcc
            spec = kcc.compile(model, target="coreml", **options).get_spec()
            assert set(layer_types(spec)) & RUNTIME_LACKS
            return None, []
        raise


@pytest.mark.parametrize("row", sorted(table.ROWS))
def test_layer_row(row):
    build, _ = table.ROWS[row]
    _check(build())


RECURRENT_OPTIONS = [{}, {"return_sequences": True}, {"return_state": True},
                     {"return_sequences": True, "return_state": True, "go_backwards": True},
                     {"go_backwards": True}, {"activation": "relu", "return_sequences": True}]
RECURRENT = [(cls, opts) for cls in ("SimpleRNN", "LSTM") for opts in RECURRENT_OPTIONS] + [
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
    if not opts.get("go_backwards") or not opts.get("return_sequences"):
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


def test_gru_reset_after_is_refused_clearly():
    import kcc
    x = keras.Input((6, 3))
    model = keras.Model(x, L.GRU(4)(x))
    with pytest.raises(kcc.ConversionError, match="reset_after=True"):
        kcc.compile(model, target="coreml")


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
