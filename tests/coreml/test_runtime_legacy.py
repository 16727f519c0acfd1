"""Rank-5 (legacy) NeuralNetwork semantics on specs built by hand with
coremltools' NeuralNetworkBuilder, checked against numpy formulas written here."""
from __future__ import annotations

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml import predict

from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402

RNG = np.random.default_rng(123)


def _builder(in_shape, out_shape=None, **kw):
    out = datatypes.Array(*out_shape) if out_shape else None
    return NeuralNetworkBuilder([("data", datatypes.Array(*in_shape))], [("out", out)], **kw)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _close(got, ref, tol=1e-5):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.max(np.abs(got - ref)) <= tol * max(1.0, np.max(np.abs(ref)))


def test_spec_uses_rank5_mapping():
    b = _builder((3,), (3,))
    b.add_activation("a", "RELU", "data", "out")
    assert b.spec.neuralNetwork.arrayInputShapeMapping == 0
    assert b.spec.specificationVersion <= 3


def test_inner_product_on_chw_input():
    b = _builder((3, 2, 2), (5,))
    w, bias = _rand(5, 12), _rand(5)
    b.add_inner_product("ip", w, bias, 12, 5, True, "data", "out")
    x = _rand(3, 2, 2)
    _close(predict(b.spec, {"data": x})["out"], w @ x.reshape(-1) + bias)


@pytest.mark.parametrize("mode", [0, 1])  # CHANNEL_FIRST, CHANNEL_LAST
def test_flatten_orders(mode):
    b = _builder((2, 3, 4), (24,))
    b.add_flatten("f", mode, "data", "out")
    x = _rand(2, 3, 4)
    ref = x.reshape(-1) if mode == 0 else x.transpose(1, 2, 0).reshape(-1)
    _close(predict(b.spec, {"data": x})["out"], ref)


@pytest.mark.parametrize("mode", [0, 1])
def test_reshape_orders(mode):
    b = _builder((2, 3, 4), (4, 3, 2))
    b.add_reshape("r", "data", "out", (4, 3, 2), mode)
    x = _rand(2, 3, 4)
    if mode == 0:
        ref = x.reshape(4, 3, 2)
    else:  # channel-last: flatten in H, W, C order, fill H_out, W_out, C_out, back to C, H, W
        ref = x.transpose(1, 2, 0).reshape(3, 2, 4).transpose(2, 0, 1)
    _close(predict(b.spec, {"data": x})["out"], ref)


def test_permute_chw():
    b = _builder((2, 3, 4), (4, 2, 3))
    b.add_permute("p", (0, 3, 1, 2), "data", "out")  # [Seq, B, C, H, W] -> [Seq, B, W, C, H]
    x = _rand(2, 3, 4)
    _close(predict(b.spec, {"data": x})["out"], x.transpose(2, 0, 1))


@pytest.mark.parametrize("kind", ["constant", "reflection", "replication"])
def test_padding(kind):
    b = _builder((2, 4, 5), (2, 7, 8))
    b.add_padding("p", left=2, right=1, top=1, bottom=2, value=1.5, input_name="data",
                  output_name="out", padding_type=kind)
    x = _rand(2, 4, 5)
    mode = {"constant": "constant", "reflection": "reflect", "replication": "edge"}[kind]
    extra = {"constant_values": 1.5} if kind == "constant" else {}
    ref = np.pad(x, ((0, 0), (1, 2), (2, 1)), mode=mode, **extra)
    _close(predict(b.spec, {"data": x})["out"], ref)


def test_crop_one_and_two_inputs():
    b = NeuralNetworkBuilder([("data", datatypes.Array(2, 6, 7)), ("ref", datatypes.Array(2, 3, 4))],
                             [("out", None), ("out2", None)])
    b.add_crop("c1", left=1, right=2, top=2, bottom=1, offset=[0, 0], input_names=["data"], output_name="out")
    b.add_crop("c2", 0, 0, 0, 0, offset=[1, 2], input_names=["data", "ref"], output_name="out2")
    x = _rand(2, 6, 7)
    res = predict(b.spec, {"data": x, "ref": _rand(2, 3, 4)})
    _close(res["out"], x[:, 2:5, 1:5])
    _close(res["out2"], x[:, 1:4, 2:6])


def _bilinear_ref(x, out_h, out_w, grid_fn):
    """Independent bilinear resize: np.interp row by row, then column by column."""
    h, w = x.shape[-2:]
    gh, gw = grid_fn(h, out_h), grid_fn(w, out_w)
    rows = np.stack([[np.interp(gh, np.arange(h), x[c, :, j]) for j in range(w)] for c in range(x.shape[0])])
    rows = rows.transpose(0, 2, 1)  # [C, out_h, w]
    return np.stack([[np.interp(gw, np.arange(w), rows[c, i]) for i in range(out_h)] for c in range(x.shape[0])])


@pytest.mark.parametrize("mode,grid", [
    ("ALIGN_CORNERS_TRUE", lambda n, m: np.linspace(0, n - 1, m)),
    ("ALIGN_CORNERS_FALSE", lambda n, m: np.clip((np.arange(m) + 0.5) * n / m - 0.5, 0, n - 1)),
    ("DEFAULT", lambda n, m: np.minimum(np.arange(m) * (n - n / m) / (m - 1), n - 1)),
])
def test_upsample_bilinear_modes(mode, grid):
    b = _builder((2, 3, 4))
    b.add_upsample("u", 2, 3, "data", "out", mode="BILINEAR", linear_upsample_mode=mode)
    x = _rand(2, 3, 4)
    _close(predict(b.spec, {"data": x})["out"], _bilinear_ref(x, 6, 12, grid))


def test_upsample_nearest():
    b = _builder((2, 3, 4))
    b.add_upsample("u", 2, 3, "data", "out")
    x = _rand(2, 3, 4)
    _close(predict(b.spec, {"data": x})["out"], x.repeat(2, axis=1).repeat(3, axis=2))


def test_softmax_concat_split_and_elementwise():
    b = NeuralNetworkBuilder([("a", datatypes.Array(3, 2, 2)), ("b", datatypes.Array(3, 2, 2))],
                             [("out", None), ("s0", None), ("s1", None)])
    b.add_elementwise("add", ["a", "b"], "sum", "ADD")
    b.add_elementwise("mul", ["a", "b"], "prod", "MULTIPLY")
    b.add_elementwise("avg", ["a", "b", "sum"], "avg", "AVE")
    b.add_elementwise("mx", ["a", "b"], "mx", "MAX")
    b.add_elementwise("cat", ["sum", "prod", "avg", "mx"], "cat", "CONCAT")
    b.add_softmax("sm", "cat", "out")
    b.add_elementwise("cat2", ["a", "b"], "ab", "CONCAT")
    b.add_split("sp", "ab", ["s0", "s1"])
    a, bb = _rand(3, 2, 2), _rand(3, 2, 2)
    res = predict(b.spec, {"a": a, "b": bb})
    cat = np.concatenate([a + bb, a * bb, (a + bb + a + bb) / 3, np.maximum(a, bb)])
    e = np.exp(cat - cat.max(axis=0))
    _close(res["out"], e / e.sum(axis=0))
    _close(res["s0"], a)
    _close(res["s1"], bb)


def test_batchnorm_scale_bias_unary_and_reduce():
    b = _builder((3, 2, 4))
    gamma, beta, mean, var = _rand(3), _rand(3), _rand(3), np.abs(_rand(3)) + 0.5
    b.add_batchnorm("bn", 3, gamma, beta, mean, var, "data", "bn", epsilon=1e-3)
    sc, bi = _rand(3), _rand(3)
    b.add_scale("sc", sc, bi, True, "bn", "sc", shape_scale=[3], shape_bias=[3])
    b.add_unary("un", "sc", "un", "abs")
    b.add_unary("pw", "un", "pw", "power", alpha=1.5, shift=0.1, scale=2.0)
    b.add_reduce("red", "pw", "out", axis="HW", mode="sum")
    x = _rand(3, 2, 4)
    y = gamma[:, None, None] * (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) + beta[:, None, None]
    y = np.abs(y * sc[:, None, None] + bi[:, None, None])
    y = (2.0 * y + 0.1) ** 1.5
    _close(predict(b.spec, {"data": x})["out"], y.sum(axis=(1, 2), keepdims=True))


def test_convolution_and_pooling_modes():
    b = _builder((2, 7, 6))
    w = _rand(4, 2, 3, 3)
    b.add_convolution("conv", 2, 4, 3, 3, 2, 2, "same", 1, w.transpose(2, 3, 1, 0), None, False,
                      input_name="data", output_name="c", same_padding_asymmetry_mode="TOP_LEFT_HEAVY")
    b.add_pooling("pool", 3, 3, 1, 1, "AVERAGE", "VALID", "c", "p", padding_top=1, padding_bottom=1,
                  padding_left=1, padding_right=1, exclude_pad_area=False)
    b.add_pooling("pool2", 2, 2, 2, 2, "MAX", "INCLUDE_LAST_PIXEL", "p", "out")
    x = _rand(2, 7, 6)
    # conv: out 4x3, total pad H = (4-1)*2+3-7 = 2 -> (1, 1); W = (3-1)*2+3-6 = 1 -> top-left heavy (1, 0)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 0)))
    conv = np.zeros((4, 4, 3))
    for i in range(4):
        for j in range(3):
            conv[:, i, j] = np.tensordot(w, xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], axes=3)
    cp = np.pad(conv, ((0, 0), (1, 1), (1, 1)))
    avg = np.stack([[[cp[c, i:i + 3, j:j + 3].mean() for j in range(3)] for i in range(4)] for c in range(4)])
    # include-last-pixel max 2x2 stride 2 on 4x3: ceil mode -> 2x2 windows, last column partial
    mx = np.stack([[[avg[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max() for j in range(2)] for i in range(2)]
                   for c in range(4)])
    _close(predict(b.spec, {"data": x})["out"], mx)


def test_sequence_input_and_lstm_against_keras():
    import keras
    keras.utils.set_random_seed(7)
    seq, cin, hid = 5, 3, 4
    lstm = keras.layers.LSTM(hid, return_sequences=True)
    xs = _rand(1, seq, cin)
    ref = np.asarray(lstm(xs))[0]
    kernel, recurrent, bias = (np.asarray(v) for v in lstm.get_weights())
    split = lambda m: [m[..., k * hid:(k + 1) * hid] for k in range(4)]  # noqa: E731  keras order i, f, c, o
    wi, wf, wc, wo = split(kernel)
    ri, rf, rc, ro = split(recurrent)
    bi, bf, bc, bo = split(bias)
    b = NeuralNetworkBuilder([("data", datatypes.Array(cin))], [("out", None)])
    # coremltools order: input, forget, output, block input
    b.add_unilstm("lstm", [ri.T, rf.T, ro.T, rc.T], [wi.T, wf.T, wo.T, wc.T], [bi, bf, bo, bc],
                  hid, cin, ["data"], ["out", "h", "c"], output_all=True)
    got = predict(b.spec, {"data": xs[0]})["out"]  # a (Seq, C) array: the leading axis is Seq
    assert got.shape == (seq, 1, hid, 1, 1)
    _close(got.reshape(seq, hid), ref, 1e-4)


def test_gru_against_keras_reset_before():
    import keras
    keras.utils.set_random_seed(8)
    seq, cin, hid = 6, 2, 3
    gru = keras.layers.GRU(hid, reset_after=False, return_sequences=False)
    xs = _rand(1, seq, cin)
    ref = np.asarray(gru(xs))[0]
    kernel, recurrent, bias = (np.asarray(v) for v in gru.get_weights())
    split = lambda m: [m[..., k * hid:(k + 1) * hid] for k in range(3)]  # noqa: E731  keras order z, r, h
    (wz, wr, wh), (rz, rr, rh), (bz, br, bh) = split(kernel), split(recurrent), split(bias)
    b = NeuralNetworkBuilder([("data", datatypes.Array(cin))], [("out", None)])
    b.add_gru("gru", [rz.T, rr.T, rh.T], [wz.T, wr.T, wh.T], [bz, br, bh], hid, cin,
              ["data"], ["out", "h"], inner_activation="SIGMOID")
    got = predict(b.spec, {"data": xs[0]})["out"]
    _close(got.reshape(hid), ref, 1e-4)


def test_float16_and_quantized_weights():
    w, bias = _rand(4, 6), _rand(4)
    b = _builder((6,), (4,))
    b.add_inner_product("ip", w, bias, 6, 4, True, "data", "out")
    spec = b.spec
    params = spec.neuralNetwork.layers[0].innerProduct
    params.weights.ClearField("floatValue")
    params.weights.float16Value = w.astype("<f2").tobytes()
    x = _rand(6)
    _close(predict(spec, {"data": x})["out"], w.astype(np.float16).astype(np.float32) @ x + bias)
    # 8-bit linear quantization: W = q * scale + bias
    q = RNG.integers(0, 256, size=(4, 6)).astype(np.uint8)
    params.weights.ClearField("float16Value")
    params.weights.rawValue = q.tobytes()
    params.weights.quantization.numberOfBits = 8
    params.weights.quantization.linearQuantization.scale.append(0.01)
    params.weights.quantization.linearQuantization.bias.append(-1.0)
    _close(predict(spec, {"data": x})["out"], (q * 0.01 - 1.0) @ x + bias, 1e-4)


def test_updatable_model_still_runs_inference():
    b = _builder((4,), (3,))
    w, bias = _rand(3, 4), _rand(3)
    b.add_inner_product("ip", w, bias, 4, 3, True, "data", "logits")
    b.add_softmax("sm", "logits", "out")
    b.make_updatable(["ip"])
    b.set_categorical_cross_entropy_loss("loss", "out")
    from coremltools.models.neural_network import SgdParams
    b.set_sgd_optimizer(SgdParams(lr=0.01, batch=1))
    b.set_epochs(2)
    assert b.spec.isUpdatable and b.spec.neuralNetwork.layers[0].isUpdatable
    x = _rand(4)
    z = w @ x + bias
    _close(predict(b.spec, {"data": x})["out"], np.exp(z) / np.exp(z).sum())
