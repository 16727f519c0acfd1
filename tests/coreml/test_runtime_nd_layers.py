"""Spec-4+ ND layers on hand-built specs (EXACT_ARRAY_MAPPING), each checked
against a numpy expression written independently here."""
from __future__ import annotations

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml import predict

from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402

RNG = np.random.default_rng(321)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
IDX = np.array([[2, 0], [1, 1]], dtype=np.float32)


def _run(add_layers, x=X, extra=None, n_out=1):
    inputs = [("x", datatypes.Array(*x.shape))] + [(k, datatypes.Array(*v.shape)) for k, v in (extra or {}).items()]
    outputs = [(f"y{i}", None) for i in range(n_out)]
    b = NeuralNetworkBuilder(inputs, outputs, disable_rank5_shape_mapping=True)
    add_layers(b)
    assert b.spec.neuralNetwork.arrayInputShapeMapping == 1
    res = predict(b.spec, {"x": x, **(extra or {})})
    return [res[f"y{i}"] for i in range(n_out)]


CASES = {
    "transpose": (lambda b: b.add_transpose("l", [2, 0, 1], "x", "y0"), lambda x: x.transpose(2, 0, 1)),
    "softmaxND": (lambda b: b.add_softmax_nd("l", "x", "y0", axis=1),
                  lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
    "reduceLogSumExp": (lambda b: b.add_reduce_logsumexp("l", "x", "y0", axes=[-1], keepdims=False),
                        lambda x: np.log(np.exp(x).sum(axis=-1))),
    "reduceProd": (lambda b: b.add_reduce_prod("l", "x", "y0", axes=[0, 2], keepdims=True),
                   lambda x: x.prod(axis=(0, 2), keepdims=True)),
    "argMax": (lambda b: b.add_argmax("l", "x", "y0", axis=1, keepdims=False), lambda x: x.argmax(axis=1)),
    "argMin": (lambda b: b.add_argmin("l", "x", "y0", axis=-1, keepdims=True),
               lambda x: x.argmin(axis=-1)[..., None]),
    "concatND": (lambda b: b.add_concat_nd("l", ["x", "x"], "y0", axis=-2), lambda x: np.concatenate([x, x], -2)),
    "stack": (lambda b: b.add_stack("l", ["x", "x"], "y0", axis=1), lambda x: np.stack([x, x], 1)),
    "tile": (lambda b: b.add_tile("l", "x", "y0", reps=[2, 1, 3]), lambda x: np.tile(x, (2, 1, 3))),
    "expandDims": (lambda b: b.add_expand_dims("l", "x", "y0", axes=[0, -1]), lambda x: x[None, ..., None]),
    "squeeze": (lambda b: (b.add_expand_dims("e", "x", "e", axes=[1]), b.add_squeeze("l", "e", "y0", axes=[1])),
                lambda x: x),
    "flattenTo2D": (lambda b: b.add_flatten_to_2d("l", "x", "y0", axis=1), lambda x: x.reshape(2, 12)),
    "reshapeStatic": (lambda b: b.add_reshape_static("l", "x", "y0", [4, -1]), lambda x: x.reshape(4, 6)),
    "sliceStatic": (lambda b: b.add_slice_static("l", "x", "y0", begin_ids=[0, 1, -1], end_ids=[2, 3, 0],
                                                  strides=[1, 1, -2], begin_masks=[False] * 3,
                                                  end_masks=[False, False, True]),
                    lambda x: x[0:2, 1:3, -1::-2]),
    "constantPad": (lambda b: b.add_constant_pad("l", ["x"], "y0", value=2.0, pad_amounts=[0, 1, 2, 0, 1, 1]),
                    lambda x: np.pad(x, ((0, 1), (2, 0), (1, 1)), constant_values=2.0)),
    "clip": (lambda b: b.add_clip("l", "x", "y0", min_value=-0.5, max_value=0.7), lambda x: np.clip(x, -0.5, 0.7)),
    "gelu_tanh": (lambda b: b.add_gelu("l", "x", "y0", mode="TANH_APPROXIMATION"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    "gelu_sigmoid": (lambda b: b.add_gelu("l", "x", "y0", mode="SIGMOID_APPROXIMATION"),
                     lambda x: x / (1 + np.exp(-1.702 * x))),
    "cumSum": (lambda b: b.add_cumsum("l", ["x"], "y0", axis=1, reverse=True, exclusive=True),
               lambda x: np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x),
    "splitND": (lambda b: b.add_split_nd("l", "x", ["y0", "y1"], axis=-1, split_sizes=[1, 3]),
                lambda x: x[..., :1]),
    "topK": (lambda b: b.add_topk("l", ["x"], ["y0", "y1"], k=2, axis=-1), lambda x: -np.sort(-x, -1)[..., :2]),
    "argSort": (lambda b: b.add_argsort("l", "x", "y0", axis=2, descending=True),
                lambda x: np.argsort(-x, axis=2, kind="stable")),
    "layerNormalization": (lambda b: b.add_layer_normalization("l", "x", "y0", [3, 4], np.full((3, 4), 2.0),
                                                               np.full((3, 4), 0.5), eps=1e-5),
                           lambda x: 2.0 * (x - x.mean((1, 2), keepdims=True))
                           / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5) + 0.5),
    "erf": (lambda b: b.add_erf("l", "x", "y0"), lambda x: np.vectorize(__import__("math").erf)(x)),
    "round": (lambda b: b.add_round("l", "x", "y0"), lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)),
    "broadcastToStatic": (lambda b: b.add_broadcast_to_static("l", "x", "y0", [5, 2, 3, 4]),
                          lambda x: np.broadcast_to(x, (5, 2, 3, 4))),
    "whereNonZero": (lambda b: (b.add_greater_than("g", ["x"], "g", alpha=0.5),
                                b.add_where_nonzero("l", "g", "y0")),
                     lambda x: np.argwhere(x > 0.5)),
    "lowerTriangular": (lambda b: b.add_lower_triangular("l", "x", "y0", k=1), lambda x: np.tril(x, 1)),
    "rangeStatic": (lambda b: (b.add_range_static("r", "r", end=5, start=1, step=1.5),
                               b.add_add_broadcastable("l", ["r", "r"], "y0")),
                    lambda x: 2 * np.arange(1, 5, 1.5)),
    "oneHot": (lambda b: (b.add_argmax("a", "x", "a", axis=-1, keepdims=False),
                          b.add_one_hot("l", ["a"], "y0", one_hot_vector_size=4, axis=-1, on_value=3.0,
                                        off_value=-1.0)),
               lambda x: np.where(np.arange(4) == x.argmax(-1)[..., None], 3.0, -1.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nd_layer(name):
    build, ref = CASES[name]
    n_out = 2 if name in ("splitND", "topK") else 1
    got = _run(build, n_out=n_out)[0]
    want = ref(X.astype(np.float64))
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gather_family_and_batched_matmul():
    data = RNG.standard_normal((3, 4)).astype(np.float32)

    def build(b):
        b.add_gather("g", ["x", "idx"], "y0", axis=0)
        b.add_gather_nd("gnd", ["x", "idx"], "y1")
        b.add_gather_along_axis("ga", ["x", "idx3"], "y2", axis=1)
        b.add_batched_mat_mul("mm", ["x", "x"], "y3", transpose_b=True)
        b.add_scatter("sc", ["x", "row", "upd"], "y4", axis=0, mode="ADD")
    idx3 = np.array([[3, 0], [1, 1], [-1, 2]], dtype=np.float32)
    extra = {"idx": IDX, "idx3": idx3, "row": np.array([2.0], np.float32), "upd": np.ones((1, 4), np.float32)}
    inputs = [("x", datatypes.Array(3, 4))] + [(k, datatypes.Array(*v.shape)) for k, v in extra.items()]
    b = NeuralNetworkBuilder(inputs, [(f"y{i}", None) for i in range(5)], disable_rank5_shape_mapping=True)
    build(b)
    res = predict(b.spec, {"x": data, **extra})
    idx = IDX.astype(int)
    np.testing.assert_allclose(res["y0"], data[idx], rtol=1e-6)
    np.testing.assert_allclose(res["y1"], data[idx[:, 0], idx[:, 1]], rtol=1e-6)
    np.testing.assert_allclose(res["y2"], np.take_along_axis(data, idx3.astype(int) % 4, 1), rtol=1e-6)
    np.testing.assert_allclose(res["y3"], data @ data.T, rtol=1e-5)
    scattered = data.copy()
    scattered[2] += 1
    np.testing.assert_allclose(res["y4"], scattered, rtol=1e-6)


def test_branch_and_loop_layers():
    """y = x doubled 3 times if sum(x) > 0 (a loop inside a branch), else x + 1."""
    b = NeuralNetworkBuilder([("x", datatypes.Array(3))], [("y", None)], disable_rank5_shape_mapping=True)
    b.add_reduce_sum("s", "x", "s", axes=[0], keepdims=True)
    b.add_greater_than("gt", ["s"], "cond", alpha=0.0)
    b.add_copy("init", "x", "y")
    branch = b.add_branch("br", "cond")
    if_b = NeuralNetworkBuilder(nn_spec=branch.branch.ifBranch, disable_rank5_shape_mapping=True)
    loop = if_b.add_loop("lp", max_iterations=3)
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_elementwise("dbl", ["y", "y"], "y2", "ADD")
    body.add_copy("back", "y2", "y")
    else_b = NeuralNetworkBuilder(nn_spec=branch.branch.elseBranch, disable_rank5_shape_mapping=True)
    else_b.add_activation("inc", "LINEAR", "x", "y3", params=[1.0, 1.0])
    else_b.add_copy("back2", "y3", "y")
    pos = np.array([1.0, 2.0, -0.5], np.float32)
    np.testing.assert_allclose(predict(b.spec, {"x": pos})["y"], pos * 8)
    np.testing.assert_allclose(predict(b.spec, {"x": -pos})["y"], -pos + 1)
