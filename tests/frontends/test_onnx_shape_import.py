"""ONNX shape arithmetic through kcc: the patterns traced TensorFlow produces, with a dynamic batch AND length.

Each model is built by hand the way tf2onnx writes it (Shape -> Gather ->
Concat -> Reshape, Range + comparison + Where, Expand of positions, Trilu,
Equal against a dim), imported, emitted and run in onnxruntime (default
options) at two sizes, (2, 5) and (3, 9), against onnxruntime running the
original. The emitted inputs keep named dim_params; the same model with fixed
dims folds every shape computation (no Shape op is left).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import kcc
from kcc.errors import KccError
from kcc.frontends.onnx import import_onnx_model
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

SIZES = [(2, 5), (3, 9)]
F = 8


def _const(name: str, value) -> onnx.NodeProto:
    return h.make_node("Constant", [], [name], value=nh.from_array(np.asarray(value), name))


def _model(nodes, outputs, inits=(), batch="batch", seq="seq") -> onnx.ModelProto:
    x = h.make_tensor_value_info("x", TP.FLOAT, [batch, seq, F])
    outs = [h.make_tensor_value_info(n, t, [batch if d == "B" else seq if d == "T" else d for d in dims])
            for n, t, dims in outputs]
    g = h.make_graph(nodes, "g", [x], outs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def heads(**dims) -> onnx.ModelProto:
    """(B,T,8) -> (B,T,2,4) from Shape, per-head MatMul, back through (B*T, 8) to (B,T,8)."""
    w = nh.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        _const("i0", np.int64(0)), _const("i1", np.int64(1)), _const("ax0", np.array([0], np.int64)),
        h.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        h.make_node("Gather", ["s", "i1"], ["t"], axis=0),
        h.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        h.make_node("Unsqueeze", ["t", "ax0"], ["t1"]),
        _const("hd", np.array([2, 4], np.int64)),
        h.make_node("Concat", ["b1", "t1", "hd"], ["shp"], axis=0),
        h.make_node("Reshape", ["x", "shp"], ["xh"]),
        h.make_node("Transpose", ["xh"], ["xt"], perm=[0, 2, 1, 3]),
        h.make_node("MatMul", ["xt", "w"], ["y"]),
        h.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 1, 3]),
        h.make_node("Mul", ["b1", "t1"], ["bt"]),
        _const("eight", np.array([F], np.int64)),
        h.make_node("Concat", ["bt", "eight"], ["shp2"], axis=0),
        h.make_node("Reshape", ["yt", "shp2"], ["flat"]),
        _const("m1", np.array([-1], np.int64)),
        h.make_node("Concat", ["b1", "m1", "eight"], ["shp3"], axis=0),
        h.make_node("Reshape", ["flat", "shp3"], ["out"]),
    ]
    return _model(nodes, [("out", TP.FLOAT, ("B", "T", F))], [w], **dims)


def causal(**dims) -> onnx.ModelProto:
    """Self-attention scores x x^T with the future masked by Range + Greater + Where, tf2onnx's int32 style."""
    nodes = [
        h.make_node("Transpose", ["x"], ["xT"], perm=[0, 2, 1]),
        h.make_node("MatMul", ["x", "xT"], ["sc"]),
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Cast", ["s"], ["s32"], to=TP.INT32),
        _const("i1", np.int64(1)),
        h.make_node("Gather", ["s32", "i1"], ["t"], axis=0),
        _const("z", np.int32(0)), _const("one", np.int32(1)),
        h.make_node("Range", ["z", "t", "one"], ["r"]),
        _const("a0", np.array([0], np.int64)), _const("a1", np.array([1], np.int64)),
        h.make_node("Unsqueeze", ["r", "a0"], ["rj"]),
        h.make_node("Unsqueeze", ["r", "a1"], ["ri"]),
        h.make_node("Greater", ["rj", "ri"], ["future"]),
        _const("neg", np.float32(-1e9)),
        h.make_node("Where", ["future", "neg", "sc"], ["msc"]),
        h.make_node("Softmax", ["msc"], ["p"], axis=-1),
        h.make_node("MatMul", ["p", "x"], ["out"]),
    ]
    return _model(nodes, [("out", TP.FLOAT, ("B", "T", F))], **dims)


def positions(**dims) -> onnx.ModelProto:
    """Range(T) expanded to (B, T) and added to the feature mean; the positions are an output too."""
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        _const("idx", np.array([0, 1], np.int64)),
        h.make_node("Gather", ["s", "idx"], ["bt"], axis=0),
        _const("i1", np.int64(1)),
        h.make_node("Gather", ["s", "i1"], ["t"], axis=0),
        _const("z", np.int64(0)), _const("one", np.int64(1)),
        h.make_node("Range", ["z", "t", "one"], ["r"]),
        _const("a0", np.array([0], np.int64)),
        h.make_node("Unsqueeze", ["r", "a0"], ["r1"]),
        h.make_node("Expand", ["r1", "bt"], ["pos"]),
        h.make_node("Cast", ["pos"], ["posf"], to=TP.FLOAT),
        h.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
        h.make_node("Add", ["m", "posf"], ["out"]),
        h.make_node("Identity", ["pos"], ["pos_out"]),
    ]
    return _model(nodes, [("out", TP.FLOAT, ("B", "T")), ("pos_out", TP.INT64, ("B", "T"))], **dims)


def flatten_trilu(**dims) -> onnx.ModelProto:
    """Shape -> Gather -> Concat -> Reshape to (B, -1); a running sum by a Trilu of ConstantOfShape((T, T))."""
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        _const("i0", np.array([0], np.int64)), _const("i1", np.array([1], np.int64)),
        h.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        _const("m1", np.array([-1], np.int64)),
        h.make_node("Concat", ["b", "m1"], ["shp"], axis=0),
        h.make_node("Reshape", ["x", "shp"], ["flat"]),
        h.make_node("Gather", ["s", "i1"], ["t"], axis=0),
        h.make_node("Concat", ["t", "t"], ["tt"], axis=0),
        h.make_node("ConstantOfShape", ["tt"], ["ones"], value=nh.from_array(np.array([1.0], np.float32))),
        h.make_node("Trilu", ["ones"], ["tri"], upper=0),
        h.make_node("Transpose", ["x"], ["xT"], perm=[0, 2, 1]),
        h.make_node("MatMul", ["xT", "tri"], ["cum"]),
    ]
    return _model(nodes, [("flat", TP.FLOAT, ("B", "BF")), ("cum", TP.FLOAT, ("B", F, "T"))], **dims)


def length_switch(**dims) -> onnx.ModelProto:
    """Equal of a dim against a constant picks a branch (x * 2 when T == 5), plus the Size of x."""
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        _const("i1", np.int64(1)),
        h.make_node("Gather", ["s", "i1"], ["t"], axis=0),
        _const("five", np.int64(5)),
        h.make_node("Equal", ["t", "five"], ["is5"]),
        _const("two", np.float32(2.0)),
        h.make_node("Mul", ["x", "two"], ["x2"]),
        h.make_node("Where", ["is5", "x2", "x"], ["sel"]),
        h.make_node("Size", ["x"], ["n"]),
        h.make_node("Cast", ["n"], ["nf"], to=TP.FLOAT),
        h.make_node("Div", ["sel", "nf"], ["out"]),
    ]
    return _model(nodes, [("out", TP.FLOAT, ("B", "T", F))], **dims)


MODELS = [heads, causal, positions, flatten_trilu, length_switch]


def _feed(b: int, t: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(10 * b + t).standard_normal((b, t, F)).astype(np.float32)}


def _dims(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value") else None
            for d in vi.type.tensor_type.shape.dim]


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_dynamic_batch_and_length_match_onnxruntime_at_two_sizes(build):
    source = build()
    emitted = kcc.compile(source, target="onnx")
    assert _dims(emitted.graph.input[0]) == ["N", "seq", F]
    for out in emitted.graph.output:
        assert all(isinstance(d, int) or d for d in _dims(out)), f"output {out.name} has an unnamed dim"
    for b, t in SIZES:
        feed = _feed(b, t)
        want = run_onnx(source, feed)
        got = run_onnx(emitted, feed)
        for name, w, g in zip([o.name for o in source.graph.output], want, got):
            assert_not_degenerate(w, f"{build.__name__} {name}")
            assert g.shape == w.shape, (name, g.shape, w.shape)
            assert_close(w, g, 1e-5, what=f"{build.__name__} {name} at {(b, t)}")


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_fixed_dims_fold_every_shape_computation(build):
    b, t = SIZES[1]
    for source, options in ((build(batch=b, seq=t), {}), (build(), {"input_name_shape_dict": {"x": (b, t, F)}})):
        emitted = kcc.compile(source, target="onnx", **options)
        ops = [n.op_type for n in emitted.graph.node]
        assert not {"Shape", "Range", "Expand", "ConstantOfShape", "Trilu", "Size", "Gather", "Concat"} & set(ops), \
            ops
        feed = _feed(b, t)
        for w, g in zip(run_onnx(build(), feed), run_onnx(emitted, feed)):
            assert_close(w, g, 1e-5, what=build.__name__)


def test_only_the_reshape_that_needs_the_run_time_reads_a_shape():
    """The split into heads is a static Reshape (0, 0, 2, 4); only the merge from (B*T, 8) reads Shape(x)."""
    graph = import_onnx_model(heads())
    reshapes = [n for n in graph.nodes() if n.op in ("reshape", "reshape_to")]
    assert [n.op for n in reshapes] == ["reshape", "reshape", "reshape_to"]
    assert reshapes[0].attrs["shape"] == (0, 0, 2, 4)
    assert reshapes[1].output.shape == ("N*seq", F)
    assert reshapes[2].output.shape == ("N", "seq", F)
    emitted = kcc.compile(heads(), target="onnx")
    assert [n.op_type for n in emitted.graph.node].count("Shape") == 1


def test_a_shape_output_is_computed_at_run_time():
    nodes = [h.make_node("Shape", ["x"], ["s"]), _const("idx", np.array([1, 0], np.int64)),
             h.make_node("Gather", ["s", "idx"], ["ts"], axis=0)]
    source = _model(nodes, [("ts", TP.INT64, (2,))])
    emitted = kcc.compile(source, target="onnx")
    for b, t in SIZES:
        np.testing.assert_array_equal(run_onnx(emitted, _feed(b, t))[0], [t, b])


def test_allowzero_with_a_run_time_shape_is_refused():
    nodes = [h.make_node("Shape", ["x"], ["s"]), _const("idx", np.array([1, 0], np.int64)),
             h.make_node("Gather", ["s", "idx"], ["ts"], axis=0), _const("f", np.array([F], np.int64)),
             h.make_node("Concat", ["ts", "f"], ["shp"], axis=0),
             h.make_node("Reshape", ["x", "shp"], ["out"], allowzero=1)]
    source = _model(nodes, [("out", TP.FLOAT, ("T", "B", F))])
    with pytest.raises(KccError, match="allowzero"):
        kcc.compile(source, target="onnx")


def test_tile_by_the_batch_of_a_size_one_axis_is_a_broadcast():
    """tf.tile(bias, [batch, 1, 1]) as tf2onnx writes it: repeats concatenated from Shape(x)."""
    bias = nh.from_array(np.random.default_rng(1).standard_normal((1, 1, F)).astype(np.float32), "bias")
    nodes = [h.make_node("Shape", ["x"], ["s"]), _const("i0", np.array([0], np.int64)),
             h.make_node("Gather", ["s", "i0"], ["b"], axis=0), _const("ones", np.array([1, 1], np.int64)),
             h.make_node("Concat", ["b", "ones"], ["reps"], axis=0),
             h.make_node("Tile", ["bias", "reps"], ["tiled"]),
             h.make_node("Add", ["x", "tiled"], ["out"])]
    source = _model(nodes, [("out", TP.FLOAT, ("B", "T", F))], [bias])
    emitted = kcc.compile(source, target="onnx")
    for b, t in SIZES:
        feed = _feed(b, t)
        assert_close(run_onnx(source, feed)[0], run_onnx(emitted, feed)[0], 1e-6)


@pytest.mark.parametrize("fmod", [0, 1])
def test_integer_mod_of_negative_values_matches_onnxruntime(fmod):
    """Mod of (k - T) by T and by -T: negative dividends and divisors, both sign conventions."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), _const("k", np.array([-7, -1, 0, 6, 7, 9], np.int64)),
             h.make_node("Gather", ["s", "k1"], ["t"], axis=0), h.make_node("Sub", ["k", "t"], ["kt"]),
             h.make_node("Neg", ["t"], ["nt"]), h.make_node("Concat", ["t", "nt"], ["tt"], axis=0),
             _const("a1", np.array([1], np.int64)), h.make_node("Unsqueeze", ["kt", "a1"], ["kt1"]),
             h.make_node("Mod", ["kt1", "tt"], ["m"], fmod=fmod), h.make_node("Cast", ["m"], ["mf"], to=TP.FLOAT),
             h.make_node("ReduceMean", ["x"], ["xs"], axes=[1, 2], keepdims=0),
             _const("a12", np.array([1, 2], np.int64)), h.make_node("Unsqueeze", ["xs", "a12"], ["xs1"]),
             h.make_node("Add", ["xs1", "mf"], ["out"])]
    k1 = nh.from_array(np.array([1], np.int64), "k1")
    source = _model(nodes, [("out", TP.FLOAT, ("B", 6, 2))], [k1])
    emitted = kcc.compile(source, target="onnx")
    for b, t in SIZES:
        feed = _feed(b, t)
        np.testing.assert_allclose(run_onnx(emitted, feed)[0], run_onnx(source, feed)[0], rtol=1e-6)


def test_non_zero_rows_come_from_the_values():
    """NonZero of relu(x) (about half zeros; an input of only zeros gives no rows), then a count
    per axis: the ONNX round trip keeps the run-time row count."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("NonZero", ["r"], ["nz"]),
             h.make_node("Cast", ["nz"], ["nzf"], to=TP.FLOAT),
             _const("a1", np.array([1], np.int64)), h.make_node("ReduceSum", ["nzf", "a1"], ["sums"], keepdims=0)]
    source = _model(nodes, [("nz", TP.INT64, (3, "K")), ("sums", TP.FLOAT, (3,))])
    emitted = kcc.compile(source, target="onnx")
    assert "NonZero" in [n.op_type for n in emitted.graph.node]
    for b, t in SIZES:
        feed = _feed(b, t)
        for x in (feed["x"], np.zeros_like(feed["x"])):
            want, got = run_onnx(source, {"x": x}), run_onnx(emitted, {"x": x})
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            assert (want[0].shape[1] > 0) == bool(x.max() > 0)   # rows when relu(x) has non-zeros
