"""Options of NeuralNetwork layers kcc's runtime implements that the frontend once refused or misread.

Rank-5 layers: bilinear and fractional ``upsample``, L2 ``pooling``, ``batchnorm``
computing its statistics across the batch, a ``convolution`` whose weights are a
blob. ND layers: ``concatND(interleave)``, ``oneHot`` with a negative index (all
off in Core ML, where the IR's one_hot would count from the end), ``tile`` /
``cumSum`` / ``oneHot`` / ``constantPad`` with their second, constant input,
``constantPad`` to a given output size. kcc's runtime is the reference;
onnxruntime (default session options) runs kcc's ONNX.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.errors import UnsupportedOpError
from kcc.testing import assert_close, assert_not_degenerate
from nn_helpers import run_onnx
from nn_specs import builder_module

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)


def _compare(spec, feeds, per_sample: bool, tol: float = 1e-5) -> None:
    got = run_onnx(kcc.compile(spec, target="onnx"), feeds)
    if per_sample:   # rank-5 specs: the runtime takes one sample at a time
        n = next(iter(feeds.values())).shape[0]
        runs = [kcc.coreml.predict(spec, {k: v[i] for k, v in feeds.items()}) for i in range(n)]
        ref = {k: np.stack([np.asarray(r[k], np.float32).reshape(got[k].shape[1:]) for r in runs]) for k in got}
    else:
        ref = {k: np.asarray(v, np.float32) for k, v in kcc.coreml.predict(spec, feeds).items()}
    for name, r in ref.items():
        assert_not_degenerate(r, name)
        assert_close(r, got[name].reshape(r.shape), tol, name)


@pytest.mark.parametrize("mode", ["DEFAULT", "ALIGN_CORNERS_TRUE", "ALIGN_CORNERS_FALSE"])
def test_bilinear_and_fractional_upsample(mode):
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(2, 3, 4))], [("bil", None), ("frac", None)])
    b.add_upsample("bil", 2, 3, "x", "bil", mode="BILINEAR", linear_upsample_mode=mode)
    # Fractional factors: bilinear with aligned corners only (coremltools' builder enforces it).
    aligned = "ALIGN_CORNERS_FALSE" if mode == "ALIGN_CORNERS_FALSE" else "ALIGN_CORNERS_TRUE"
    b.add_upsample("frac", 1.5, 2.5, "x", "frac", mode="BILINEAR", linear_upsample_mode=aligned)
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    _compare(b.spec, {"x": x}, per_sample=True)


def test_l2_pooling_and_batch_statistics():
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(1)
    b = NeuralNetworkBuilder([("x", datatypes.Array(3, 5, 6))], [("valid", None), ("same", None), ("glob", None),
                                                                   ("bn", None)])
    b.add_pooling("valid", 2, 3, 1, 2, "L2", "VALID", "x", "valid")
    b.add_pooling("same", 3, 2, 2, 1, "L2", "SAME", "x", "same")
    b.add_pooling("glob", 1, 1, 1, 1, "L2", "VALID", "x", "glob", is_global=True)
    b.add_batchnorm("bn", 3, gamma=rng.standard_normal(3).astype(np.float32),
                    beta=rng.standard_normal(3).astype(np.float32), input_name="x", output_name="bn",
                    compute_mean_var=True, instance_normalization=True)
    b.spec.neuralNetwork.layers[-1].batchnorm.instanceNormalization = False   # the builder refuses to write it
    x = rng.standard_normal((1, 3, 5, 6)).astype(np.float32) * 2 + 1   # batch 1: the runtime's batch
    _compare(b.spec, {"x": x}, per_sample=True)


def test_convolution_with_weights_from_a_blob():
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 3, 5, 7)), ("w", datatypes.Array(4, 3, 3, 2))], [("y", None)],
                             disable_rank5_shape_mapping=True)
    b.add_convolution("conv", kernel_channels=3, output_channels=4, height=3, width=2, stride_height=1,
                      stride_width=2, border_mode="valid", groups=1, W=None, b=None, has_bias=False,
                      input_name=["x", "w"], output_name="y")
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((1, 3, 5, 7)).astype(np.float32),
             "w": rng.standard_normal((4, 3, 3, 2)).astype(np.float32)}
    _compare(b.spec, feeds, per_sample=False)


def test_nd_layer_options_with_constant_second_inputs():
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(2, 3, 4)), ("z", datatypes.Array(2, 3, 4)),
                              ("i", datatypes.Array(2, 3))],
                             [("inter", None), ("hot", None), ("tiled", None), ("cs", None), ("pad", None),
                              ("padto", None)], disable_rank5_shape_mapping=True)
    b.add_concat_nd("inter", ["x", "z"], "inter", axis=1, interleave=True)
    b.add_load_constant_nd("depth", "depth", constant_value=np.array([5.0], np.float32), shape=[1])
    b.add_one_hot("hot", ["i", "depth"], "hot", axis=1, on_value=2.0, off_value=-0.5)
    b.add_load_constant_nd("reps", "reps", constant_value=np.array([2.0, 1.0], np.float32), shape=[2])
    b.add_tile("tile", ["x", "reps"], "tiled")
    b.add_load_constant_nd("axis", "axis", constant_value=np.array([1.0], np.float32), shape=[1])
    b.add_cumsum("cs", ["x", "axis"], "cs", reverse=True, exclusive=True)
    b.add_load_constant_nd("amounts", "amounts", constant_value=np.array([0, 1, 2, 0, 1, 3], np.float32),
                           shape=[6])
    b.add_constant_pad("pad", ["x", "amounts"], "pad", value=-1.5)
    b.add_constant_pad("padto", ["x"], "padto", value=0.25, pad_to_given_output_size_mode=True,
                       pad_amounts=[0, 0, 5, 0, 0, 6])
    rng = np.random.default_rng(3)
    i = np.array([[0, 4, -1], [2, 7, -3]], np.float32)   # -1, -3 and 7: all off in Core ML
    feeds = {"x": rng.standard_normal((2, 3, 4)).astype(np.float32),
             "z": rng.standard_normal((2, 3, 4)).astype(np.float32), "i": i}
    _compare(b.spec, feeds, per_sample=False)
    hot = run_onnx(kcc.compile(b.spec, target="onnx"), feeds)["hot"]
    assert (hot[0, :, 2] == -0.5).all() and hot[0, 4, 1] == 2.0   # -1 is no one's index


def test_run_time_repetitions_are_refused_naming_the_blob():
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(2, 3)), ("r", datatypes.Array(2))], [("y", None)],
                             disable_rank5_shape_mapping=True)
    b.add_tile("tile", ["x", "r"], "y")
    with pytest.raises(UnsupportedOpError, match=r"layer 'tile' \(tile\).*repetitions from the run-time blob 'r'"):
        kcc.compile(b.spec, target="onnx")
