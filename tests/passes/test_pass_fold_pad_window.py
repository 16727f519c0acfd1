"""fold_pad_window: a zero pad folds into the next conv's pads, or a max_pool's when its input is never negative."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.testing import assert_close, run_onnx

# Unequal spatial sizes and unequal begin/end pads: a swapped axis or side shows.
_SHAPE = ("N", 3, 9, 7)


def _w(*shape):
    return np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32) * 0.3


def test_pad_adds_to_a_strided_conv_own_pads():
    g, op, x = graph_with(_SHAPE, origin="conv")
    p = op.pad(x, pads=(0, 0, 1, 2, 0, 0, 2, 1))
    y = op.conv(p, c(op, _w(4, 3, 3, 3)), c(op, _w(4)), strides=(2, 2), pads=(0, 1, 1, 0))
    g.set_outputs([y], ["y"])
    out = check_rewrite(g, "fold_pad_window", "pad_conv", ["conv"])
    assert out.nodes()[0].attrs["pads"] == (1, 3, 3, 1)


def test_pad_folds_into_a_bias_free_dilated_conv():
    g, op, x = graph_with(_SHAPE, origin="conv")
    p = op.pad(x, pads=(0, 0, 2, 0, 0, 0, 0, 3))
    g.set_outputs([op.conv(p, c(op, _w(5, 3, 2, 3)), dilations=(2, 1))], ["y"])
    check_rewrite(g, "fold_pad_window", "pad_conv_no_bias", ["conv"])


@pytest.mark.parametrize("producer", ["relu", "relu6"])
def test_pad_folds_into_max_pool_after_a_non_negative_op(producer):
    g, op, x = graph_with(_SHAPE, origin="stem")
    r = op.relu(x) if producer == "relu" else op.clip(x, min=0.0, max=6.0)
    p = op.pad(r, pads=(0, 0, 1, 0, 0, 0, 1, 2))
    g.set_outputs([op.max_pool(p, kernel=(3, 3), strides=(2, 2))], ["y"])
    check_rewrite(g, "fold_pad_window", f"pad_max_pool_{producer}",
                  ["relu" if producer == "relu" else "clip", "max_pool"])


def _pad_pool(op, x, pool="max_pool", pads=(0, 0, 1, 1, 0, 0, 1, 1), kernel=(3, 3), **pad_attrs):
    return getattr(op, pool)(op.pad(x, pads=pads, **pad_attrs), kernel=kernel, strides=(2, 2))


@pytest.mark.parametrize("case", ["input_may_be_negative", "avg_pool", "channel_pad", "non_zero_value",
                                  "negative_zero", "reflect", "padding_only_window", "same_conv", "shared_pad"])
def test_left_alone(case):
    g, op, x = graph_with(_SHAPE, origin="block")
    r = op.relu(x)
    if case == "input_may_be_negative":
        y = _pad_pool(op, x)
    elif case == "avg_pool":
        y = _pad_pool(op, r, pool="avg_pool")
    elif case == "channel_pad":
        y = _pad_pool(op, r, pads=(0, 1, 1, 1, 0, 0, 1, 1))
    elif case in ("non_zero_value", "negative_zero"):
        y = _pad_pool(op, r, value=0.5 if case == "non_zero_value" else -0.0)
    elif case == "reflect":
        y = _pad_pool(op, r, mode="reflect")
    elif case == "padding_only_window":
        y = _pad_pool(op, r, pads=(0, 0, 2, 0, 0, 0, 0, 0), kernel=(2, 2))
    elif case == "same_conv":
        y = op.conv(op.pad(r, pads=(0, 0, 1, 1, 0, 0, 1, 1)), c(op, _w(4, 3, 3, 3)), auto_pad="same")
    else:
        p = op.pad(r, pads=(0, 0, 1, 1, 0, 0, 1, 1))
        y = op.mul(p, c(op, 2.0))
        g.set_outputs([y, op.max_pool(p, kernel=(3, 3), strides=(2, 2))], ["y", "z"])
        check_unchanged(g, "fold_pad_window")
        return
    g.set_outputs([y], ["y"])
    check_unchanged(g, "fold_pad_window")


def test_pad_of_a_symbolic_dim_is_left_alone():
    """[N,3,T,7] pads to [N,3,?,9]: folding would give the conv a T-derived output type, not '?'."""
    g, op, x = graph_with(("N", 3, "T", 7), origin="conv")
    p = op.pad(x, pads=(0, 0, 1, 1, 0, 0, 1, 1))
    g.set_outputs([op.conv(p, c(op, _w(4, 3, 3, 3)), c(op, _w(4)))], ["y"])
    assert p.shape[2] == "?"
    check_unchanged(g, "fold_pad_window")


def test_keras_zero_padding_stems_lose_their_pad_and_match_in_onnxruntime():
    """ZeroPadding2D before a strided Conv2D and before a MaxPooling2D fed by ReLU:
    no ONNX Pad is left, and onnxruntime (default options) equals Keras."""
    import keras

    import kcc

    keras.utils.set_random_seed(3)
    inp = keras.Input((13, 11, 3))
    y = keras.layers.ZeroPadding2D(((1, 2), (2, 1)))(inp)
    y = keras.layers.Conv2D(6, 3, strides=2)(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.ZeroPadding2D(1)(y)
    y = keras.layers.MaxPooling2D(3, strides=2)(y)
    model = keras.Model(inp, y)
    x = np.random.default_rng(0).normal(size=(2, 13, 11, 3)).astype(np.float32)
    onnx_model = kcc.compile(model, target="onnx")
    ops = [n.op_type for n in onnx_model.graph.node]
    assert "Pad" not in ops, ops
    want = np.asarray(model(x))
    assert (want == 0).any(), "the ReLU must produce zeros at some borders for the test to mean anything"
    assert_close(want, run_onnx(onnx_model, [x])[0],
                 1e-5, what="pad folded into conv and max_pool")
