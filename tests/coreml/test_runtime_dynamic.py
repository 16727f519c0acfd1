"""The runtime on flexible-shape specs written by coremltools (an emitter kcc did not write).

Specs are built with coremltools' NeuralNetworkBuilder and made flexible with its
flexible_shape_utils: a rank-5 width range, ND ranges and enumerated shapes, an
image size range. Each runs at two unequal sizes inside its flexibility, compared
with numpy, and a size outside it is refused with the allowed shapes in the message.
"""
from __future__ import annotations

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml import predict
from kcc.errors import RuntimeModelError

from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402
from coremltools.models.neural_network import flexible_shape_utils as fsu  # noqa: E402

RNG = np.random.default_rng(5)


def test_rank5_width_range():
    """(C, 1, W) with W in 2..*: a per-channel scale, then the mean over W."""
    scale, bias = RNG.standard_normal(4).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 1, 3))], [("y", None)])
    b.add_scale("scale", scale, bias, True, "x", "scaled", shape_scale=[4], shape_bias=[4])
    b.add_reduce("mean", "scaled", "y", axis="W", mode="avg")
    shape_range = fsu.NeuralNetworkMultiArrayShapeRange()
    shape_range.add_channel_range((4, 4))
    shape_range.add_height_range((1, 1))
    shape_range.add_width_range((2, -1))
    fsu.update_multiarray_shape_range(b.spec, "x", shape_range)
    for w in (5, 11):
        x = RNG.standard_normal((4, 1, w)).astype(np.float32)
        ref = (x * scale[:, None, None] + bias[:, None, None]).mean(axis=2, keepdims=True)
        np.testing.assert_allclose(predict(b.spec, {"x": x})["y"].reshape(ref.shape), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeModelError, match=r"input 'x' has shape \[4, 1, 1\].*\[4\.\.4, 1\.\.1, 2\.\.\*\]"):
        predict(b.spec, {"x": np.zeros((4, 1, 1), np.float32)})


def _positions_spec():
    """ND: y = x + arange(T) for x (N, T): getShape, gather, rangeDynamic, addBroadcastable."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 3))], [("y", None)], disable_rank5_shape_mapping=True)
    b.add_get_shape("shape", "x", "s")
    b.add_load_constant_nd("one", "i1", np.array([1.0], np.float32), [1])
    b.add_gather("t", ["s", "i1"], "t", axis=0)
    b.add_range_dynamic("range", ["t"], "pos", start=0, step=1)
    b.add_add_broadcastable("add", ["x", "pos"], "y")
    return b.spec


def test_nd_ranges_run_at_any_size_inside():
    spec = _positions_spec()
    fsu.set_multiarray_ndshape_range(spec, "x", [1, 1], [4, -1])
    for n, t in ((1, 5), (3, 11)):
        x = RNG.standard_normal((n, t)).astype(np.float32)
        np.testing.assert_allclose(predict(spec, {"x": x})["y"], x + np.arange(t), rtol=1e-6)
    with pytest.raises(RuntimeModelError, match=r"has shape \[5, 2\].*\[1\.\.4, 1\.\.\*\]"):
        predict(spec, {"x": np.zeros((5, 2), np.float32)})


def test_nd_enumerated_shapes():
    spec = _positions_spec()
    fsu.add_multiarray_ndshape_enumeration(spec, "x", [(2, 5), (1, 9)])
    for shape in ((1, 3), (2, 5), (1, 9)):
        x = RNG.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(predict(spec, {"x": x})["y"], x + np.arange(shape[1]), rtol=1e-6)
    with pytest.raises(RuntimeModelError, match=r"has shape \[2, 9\].*\[1, 3\] or \[2, 5\] or \[1, 9\]"):
        predict(spec, {"x": np.zeros((2, 9), np.float32)})


def test_dynamic_reshape_and_broadcast():
    """reshapeDynamic to getShape of another input, broadcastToDynamic to it: shapes read at run time."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(2, 6)), ("like", datatypes.Array(3, 4))], [("y", None)],
                             disable_rank5_shape_mapping=True)
    b.add_get_shape("shape", "like", "s")
    b.add_reshape_dynamic("reshape", ["x", "s"], "r")
    b.add_load_constant_nd("row", "row", np.arange(4, dtype=np.float32).reshape(1, 4), [1, 4])
    b.add_broadcast_to_dynamic("bcast", ["row", "s"], "rows")
    b.add_add_broadcastable("add", ["r", "rows"], "y")
    fsu.set_multiarray_ndshape_range(b.spec, "x", [1, 1], [-1, -1])
    fsu.set_multiarray_ndshape_range(b.spec, "like", [1, 1], [-1, -1])
    for (n, k) in ((2, 6), (5, 4)):
        x = RNG.standard_normal((n, k)).astype(np.float32)
        like = np.zeros((n * k // 4, 4), np.float32)
        ref = x.reshape(like.shape) + np.arange(4)
        np.testing.assert_allclose(predict(b.spec, {"x": x, "like": like})["y"], ref, rtol=1e-6)


def test_image_size_range():
    b = NeuralNetworkBuilder([("image", datatypes.Array(3, 4, 5))], [("out", None)])
    b.add_activation("id", "LINEAR", "image", "out", params=[2.0, 0.0])
    b.set_pre_processing_parameters(image_input_names=["image"], image_scale=0.5)
    size_range = fsu.NeuralNetworkImageSizeRange()
    size_range.add_height_range((2, 8))
    size_range.add_width_range((3, -1))
    fsu.update_image_size_range(b.spec, "image", size_range)
    for h, w in ((2, 3), (8, 13)):
        pixels = RNG.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
        out = predict(b.spec, {"image": pixels})["out"]
        np.testing.assert_allclose(np.asarray(out).reshape(3, h, w), pixels.transpose(2, 0, 1).astype(np.float32),
                                   rtol=1e-6)
    with pytest.raises(RuntimeModelError, match=r"5x9 .*width 3\.\.\* x height 2\.\.8"):
        predict(b.spec, {"image": np.zeros((9, 5, 3), np.uint8)})
