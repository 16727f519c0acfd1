"""The NeuralNetwork layers kcc's Core ML runtime implements that the frontend lowers by composition.

Each spec is written with coremltools' NeuralNetworkBuilder (ND layout, unequal
dims), run by kcc's runtime (``kcc.coreml.predict``, the reference: Core ML's
semantics as NeuralNetwork.proto states them) and through ``kcc.compile(spec,
target="onnx")`` in onnxruntime with default session options. Inputs carry what
catches a mistake: negative indices, repeated indices for the accumulating
scatters, exact ties for topK/argSort, domain boundaries for the inverse trig.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.frontends.coreml.neuralnetwork import load_neuralnetwork
from kcc.testing import assert_close, assert_not_degenerate
from nn_helpers import run_onnx
from nn_specs import builder_module

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)


def _builder(inputs: dict[str, tuple[int, ...]], outputs: list[str]):
    datatypes, NeuralNetworkBuilder = builder_module()
    return NeuralNetworkBuilder([(n, datatypes.Array(*s)) for n, s in inputs.items()], [(o, None) for o in outputs],
                                disable_rank5_shape_mapping=True)


def _check(spec, feeds: dict[str, np.ndarray], tol: float = 1e-5, exact: tuple[str, ...] = (),
           reemit: bool = True) -> dict[str, float]:
    """kcc.coreml.predict (reference) against onnxruntime on kcc's ONNX; ``exact`` outputs must be equal.

    With ``reemit`` the spec also goes back out as Core ML (``kcc.compile(spec, target="coreml")``, an ND
    model here) and kcc's runtime must give the same numbers from it.
    """
    ref = kcc.coreml.predict(spec, feeds)
    runs = {"onnxruntime": run_onnx(kcc.compile(spec, target="onnx"), feeds)}
    if reemit:
        again = kcc.compile(spec, target="coreml").get_spec()
        assert again.neuralNetwork.arrayInputShapeMapping == 1
        runs["Core ML again"] = kcc.coreml.predict(again, feeds)
    errors = {}
    for run, got in runs.items():
        for name, r in ref.items():
            r = np.asarray(r, np.float32)
            g = np.asarray(got[name], np.float32).reshape(r.shape)
            assert_not_degenerate(r, name)
            if name in exact:
                np.testing.assert_array_equal(g, r, err_msg=f"{run} {name}")
            errors[f"{run} {name}"] = assert_close(r, g, tol, f"{run} {name}")
    return errors


def test_inverse_trig_at_their_domain_edges():
    b = _builder({"u": (2, 3, 4), "v": (2, 3, 4)}, ["asin", "acos", "atanh", "asinh", "acosh"])
    for op in ("asin", "acos", "atanh", "asinh"):
        getattr(b, f"add_{op}")(op, "u", op)
    b.add_acosh("acosh", "v", "acosh")
    rng = np.random.default_rng(0)
    u = rng.uniform(-0.99, 0.99, (2, 3, 4)).astype(np.float32)
    u[0, 0, :3] = (0.0, -0.5, 0.5)
    v = 1 + np.abs(rng.standard_normal((2, 3, 4))).astype(np.float32)
    v[0, 0, 0] = 1.0   # acosh(1) = 0, the domain's edge
    _check(b.spec, {"u": u, "v": v}, reemit=False)   # elementwise only: re-emitted in the rank-5 layout
    ops = kcc.compile_model(b.spec, target="onnx").graph.op_types()
    assert {"asin", "acos", "atanh", "asinh", "acosh"} <= set(ops)
    edge = np.array([1.0, -1.0], np.float32).reshape(1, 1, 2)  # asin/acos at +-1 exactly
    b2 = _builder({"e": (1, 1, 2)}, ["asin", "acos"])
    b2.add_asin("asin", "e", "asin")
    b2.add_acos("acos", "e", "acos")
    _check(b2.spec, {"e": edge}, reemit=False)


def test_gather_nd_and_along_axis_with_negative_indices():
    b = _builder({"x": (4, 3, 5), "i": (6, 2), "j": (4, 2, 5)}, ["nd", "along"])
    b.add_gather_nd("gnd", ["x", "i"], "nd")                          # (6, 5)
    b.add_gather_along_axis("gaa", ["x", "j"], "along", axis=-2)       # (4, 2, 5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    i = np.array([[0, 0], [3, 2], [-1, -3], [-4, 1], [2, -1], [1, 1]], np.float32)
    j = rng.integers(-3, 3, (4, 2, 5)).astype(np.float32)
    assert (j < 0).any() and (j >= 0).any()
    _check(b.spec, {"x": x, "i": i, "j": j}, exact=("nd", "along"))


@pytest.mark.parametrize("mode", ["UPDATE", "ADD", "SUB", "MUL", "DIV", "MAX", "MIN"])
def test_scatter_family(mode):
    """scatter (axis 1), scatterND and scatterAlongAxis (axis -1); repeated indices accumulate except in UPDATE."""
    b = _builder({"c": (3, 4, 5), "i": (2,), "u": (3, 2, 5), "n": (3, 2), "un": (3, 5), "a": (3, 4, 2),
                  "ua": (3, 4, 2)}, ["s", "snd", "saa"])
    b.add_scatter("sc", ["c", "i", "u"], "s", axis=1, mode=mode)
    b.add_scatter_nd("scnd", ["c", "n", "un"], "snd", mode=mode)
    b.add_scatter_along_axis("scaa", ["c", "a", "ua"], "saa", axis=-1, mode=mode)
    rng = np.random.default_rng(2)
    c = rng.standard_normal((3, 4, 5)).astype(np.float32)
    update = mode == "UPDATE"
    i = np.array([1, -1] if update else [-3, 1], np.float32)            # -3 is 1 again: a repeat
    n = np.array([[0, 1], [2, -1], [-3, 2] if update else [2, 3]], np.float32)   # (2, 3) == (2, -1)
    a = np.array([0, -1], np.float32)[None, None, :] + np.zeros((3, 4, 1), np.float32)
    if not update:
        a[..., 1] = -5                                                   # the same column twice
    # Updates away from 0 keep DIV finite; unequal magnitudes make the order of accumulation visible.
    u, un, ua = (np.sign(r) * (0.5 + np.abs(r)) for r in (rng.standard_normal(s).astype(np.float32)
                                                           for s in ((3, 2, 5), (3, 5), (3, 4, 2))))
    errors = _check(b.spec, {"c": c, "i": i, "u": u, "n": n, "un": un, "a": a, "ua": ua})
    assert max(errors.values()) < 1e-6


def test_top_k_and_arg_sort_break_ties_by_index():
    b = _builder({"x": (2, 7, 3)}, ["top", "topi", "bot", "boti", "asc", "desc"])
    b.add_topk("tk", ["x"], ["top", "topi"], k=3, axis=1)
    b.add_topk("bk", ["x"], ["bot", "boti"], k=2, axis=-1, use_bottom_k=True)
    b.add_argsort("as", "x", "asc", axis=1)
    b.add_argsort("ds", "x", "desc", axis=2, descending=True)
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (2, 7, 3)).astype(np.float32)   # few distinct values: many exact ties
    x[0, :, 0] = 1.0                                         # a column of equal values
    _check(b.spec, {"x": x}, exact=("top", "topi", "bot", "boti", "asc", "desc"))


def test_slice_by_size_reverse_seq_sliding_windows():
    b = _builder({"x": (3, 6, 4), "begin": (1,), "lengths": (3,)}, ["sbs", "rev", "win"])
    b.add_slice_by_size("sbs", ["x", "begin"], "sbs", axis=1, size=3)
    b.add_reverse_sequence("rev", ["x", "lengths"], "rev", batch_axis=0, seq_axis=1)
    b.add_sliding_windows("win", "x", "win", axis=1, window_size=3, step=2)
    x = np.random.default_rng(4).standard_normal((3, 6, 4)).astype(np.float32)
    lengths = np.array([6, 2, 4], np.float32)
    for begin in (2.0, -4.0):        # -4 is 2 counted from the end
        _check(b.spec, {"x": x, "begin": np.array([begin], np.float32), "lengths": lengths},
               exact=("sbs", "rev", "win"))


def test_band_triangles_range_reshape_like_resize_bilinear():
    b = _builder({"x": (2, 4, 5), "like": (5, 8)}, ["band", "low", "up", "rng", "rl", "rb"])
    b.add_matrix_band_part("band", "x", "band", num_lower=1, num_upper=2)
    b.add_lower_triangular("low", "x", "low", k=-1)
    b.add_upper_triangular("up", "x", "up", k=1)
    b.add_range_static("rng", "rng", end=2.5, start=-1.0, step=0.75)
    b.add_reshape_like("rl", ["x", "like"], "rl")
    b.add_resize_bilinear("rb", "x", "rb", target_height=7, target_width=3, mode="ALIGN_ENDPOINTS_MODE")
    x = np.random.default_rng(5).standard_normal((2, 4, 5)).astype(np.float32)
    _check(b.spec, {"x": x, "like": np.zeros((5, 8), np.float32) + 1}, exact=("band", "low", "up", "rng", "rl"))


@pytest.mark.parametrize("mode", ["STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE", "UPSAMPLE_MODE",
                                  "ROI_ALIGN_MODE"])
def test_resize_bilinear_sampling_modes(mode):
    b = _builder({"x": (2, 3, 4, 5)}, ["up", "down"])
    b.add_resize_bilinear("up", "x", "up", target_height=7, target_width=9, mode=mode)
    b.add_resize_bilinear("down", "x", "down", target_height=1, target_width=3, mode=mode)
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5)).astype(np.float32)
    _check(b.spec, {"x": x})


@pytest.mark.parametrize("method, box_mode, normalized, with_index", [
    ("STRICT_ALIGN_ENDPOINTS_MODE", "CORNERS_HEIGHT_FIRST", False, True),
    ("ALIGN_ENDPOINTS_MODE", "CORNERS_WIDTH_FIRST", True, False),
    ("UPSAMPLE_MODE", "CENTER_SIZE_HEIGHT_FIRST", False, False),
    ("ROI_ALIGN_MODE", "CENTER_SIZE_WIDTH_FIRST", True, True),
])
def test_crop_resize_boxes_from_a_blob(method, box_mode, normalized, with_index):
    k = 5 if with_index else 4
    b = _builder({"x": (1, 2, 3, 6, 7), "rois": (3, 1, k, 1, 1)}, ["y"])
    b.add_crop_resize("crop", ["x", "rois"], "y", target_height=4, target_width=3, mode=method,
                      normalized_roi=normalized, box_indices_mode=box_mode, spatial_scale=1.0 if normalized else 0.9)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 3, 6, 7)).astype(np.float32)
    if box_mode.startswith("CORNERS"):
        lo, hi = rng.uniform(0, 0.4, (3, 2)), rng.uniform(0.6, 1.0, (3, 2))
        boxes = np.concatenate([lo, hi], 1)
    else:
        boxes = np.concatenate([rng.uniform(0.3, 0.7, (3, 2)), rng.uniform(0.2, 0.6, (3, 2))], 1)
    if not normalized:
        boxes = boxes * np.array([5, 6, 5, 6])       # pixel units (height first)
    if box_mode.endswith("WIDTH_FIRST"):
        boxes = boxes[:, [1, 0, 3, 2]]
    if with_index:
        boxes = np.concatenate([np.array([[1], [0], [1]]), boxes], 1)
    rois = boxes.astype(np.float32).reshape(3, 1, k, 1, 1)
    _check(b.spec, {"x": x, "rois": rois})


def test_where_non_zero_rows_known_only_at_run_time():
    """whereNonZero's row count comes from the values: zeros at the start, the middle and the end
    of the data, and an input of only zeros (no rows), through ONNX, Core ML again and Keras."""
    b = _builder({"x": (3, 4, 5)}, ["y", "s"])
    b.add_where_nonzero("nz", "x", "y")
    b.add_reduce_sum("count", "y", "s", axes=[0], keepdims=False)   # a consumer of the "?" dim
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, 0, 0] = x[1, 2, 3] = x[2, 3, 4] = 0.0
    x[1, 1, :] = 0.0
    x[2, 0, 1] = -0.0                                               # negative zero is zero
    model = kcc.compile(b.spec, target="onnx")
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim][1:] == [3]
    keras_model = kcc.compile(b.spec, target="keras")
    again = kcc.compile(b.spec, target="coreml").get_spec()
    shapes = {f.name: list(f.type.multiArrayType.shape) for f in again.description.output}
    assert shapes == {"y": [], "s": [3]}   # the row count is declared by no one
    for feed in (x, np.zeros_like(x), np.abs(x) + 1):
        ref = kcc.coreml.predict(b.spec, {"x": feed})
        np.testing.assert_array_equal(ref["y"], np.argwhere(feed != 0))  # the runtime, the reference
        runs = {"onnxruntime": run_onnx(model, {"x": feed}),
                "Core ML again": kcc.coreml.predict(again, {"x": feed})}
        got_y, got_s = keras_model(feed)
        runs["keras"] = {"y": np.asarray(got_y), "s": np.asarray(got_s)}
        for run, got in runs.items():
            for name in ("y", "s"):
                np.testing.assert_array_equal(np.asarray(got[name], np.float32).reshape(np.shape(ref[name])),
                                              np.asarray(ref[name], np.float32), err_msg=f"{run} {name}")


def test_flexible_nd_batch_is_named_n():
    """A flexible axis 0 of an ND input is the batch ``N`` (both inputs share it); the index arithmetic of
    gatherAlongAxis and topK then runs on a batch only known at run time."""
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(1, 4, 3)), ("j", datatypes.Array(1, 2, 3))],
                             [("y", None), ("g", None), ("top", None)], disable_rank5_shape_mapping=True)
    b.add_acos("acos", "x", "a")
    b.add_reduce_sum("sum", "a", "y", axes=[1], keepdims=False)
    b.add_gather_along_axis("gaa", ["x", "j"], "g", axis=1)
    b.add_topk("tk", ["x"], ["top", "topi"], k=2, axis=1)
    spec = b.spec
    for feature, fixed in zip(spec.description.input, (4, 2)):
        at = feature.type.multiArrayType
        for lo, hi in ((1, -1), (fixed, fixed), (3, 3)):
            r = at.shapeRange.sizeRanges.add()
            r.lowerBound, r.upperBound = lo, hi
    graph = load_neuralnetwork(spec)
    assert [v.shape for v in graph.inputs] == [("N", 4, 3), ("N", 2, 3)]
    model = kcc.compile(spec, target="onnx")
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", 4, 3]
    rng = np.random.default_rng(7)
    for n in (1, 3):
        feeds = {"x": rng.uniform(-1, 1, (n, 4, 3)).astype(np.float32),
                 "j": rng.integers(-4, 4, (n, 2, 3)).astype(np.float32)}
        ref = kcc.coreml.predict(spec, feeds)
        got = run_onnx(model, feeds)
        for name in ("y", "g", "top"):
            assert_close(np.asarray(ref[name], np.float32), got[name], 1e-5, f"batch {n} {name}")


def test_every_runtime_layer_is_lowered():
    from kcc.coreml.registry import LAYERS
    from kcc.frontends.coreml.nn_context import NN_LAYERS
    from kcc.frontends.coreml.nn_control import CONTROL_LAYERS
    import kcc.coreml.runtime  # noqa: F401  (fills the runtime's table)

    missing = set(LAYERS.names()) - set(NN_LAYERS.names()) - set(CONTROL_LAYERS)
    assert not missing, sorted(missing)
