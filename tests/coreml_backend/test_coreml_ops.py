"""Every IR op with a Core ML meaning: the IR interpreter vs the Core ML runtime on the emitted spec.

Each case builds a small IR graph directly, runs the Core ML lowering
(``COREML_LOWERING``), emits it in the layout the analysis picks (rank 5 when
every node has a rank-5 form) and with ``force_nd=True``, runs both in kcc's Core ML
runtime and compares with the interpreter within 1e-4 of the output's largest
magnitude. ``test_every_op_is_covered`` keeps the table complete as ops are added.
"""
from __future__ import annotations

import os
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kcc.backends.coreml import COREML_LOWERING, EARLY_LOWERING, build_spec, supported_ops  # noqa: E402
from kcc.backends.coreml.options import parse_options  # noqa: E402
from kcc.builder import GraphBuilder  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.interpreter import run as run_ir  # noqa: E402
from kcc.ir import Graph, TensorType  # noqa: E402
from kcc.ops import all_ops  # noqa: E402
from kcc.pipeline import Pipeline  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate  # noqa: E402

R = np.random.default_rng(0)
X4 = (3, 4, 5)          # (C, H, W) after the batch axis
Build = Callable[[GraphBuilder, Any], Any]


def w(*shape: int, positive: bool = False) -> np.ndarray:
    a = R.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


# case id -> (builder(op, *inputs), input shapes without batch, input kind)
CASES: dict[str, tuple[Build, list[tuple[int, ...]], str]] = {}


def case(name: str, build: Build, shapes: list[tuple[int, ...]] | None = None, kind: str = "normal") -> None:
    CASES[name] = (build, shapes or [X4], kind)


for _name in ("relu", "sigmoid", "tanh", "softsign", "softplus", "selu", "silu", "hard_silu", "mish", "neg",
              "abs", "exp", "square", "sin", "cos", "tan", "atan", "erf", "floor", "ceil", "sign", "identity"):
    case(_name, lambda op, x, n=_name: getattr(op, n)(x))
for _name in ("log", "sqrt", "rsqrt", "reciprocal"):
    case(_name, lambda op, x, n=_name: getattr(op, n)(x), kind="positive")
case("round", lambda op, x: op.round(op.mul(x, op.const(np.float32(3.3)))))
for _name in ("asin", "acos", "atanh"):   # inside their domain (-1, 1)
    case(_name, lambda op, x, n=_name: getattr(op, n)(op.tanh(x)))
case("asinh", lambda op, x: op.asinh(x))
case("acosh", lambda op, x: op.acosh(op.add(op.square(x), op.const(np.float32(1.0)))))
case("leaky_relu", lambda op, x: op.leaky_relu(x, alpha=0.3))
case("elu", lambda op, x: op.elu(x, alpha=0.5))
case("thresholded_relu", lambda op, x: op.thresholded_relu(x, alpha=0.2))
case("hard_sigmoid", lambda op, x: op.hard_sigmoid(x, alpha=0.3, beta=0.4))
case("scaled_tanh", lambda op, x: op.scaled_tanh(x, alpha=1.5, beta=0.7))
case("clip", lambda op, x: op.clip(x, min=-0.5, max=0.7))
case("clip-relu6", lambda op, x: op.clip(x, min=0.0, max=0.6))
case("gelu", lambda op, x: op.gelu(x))
case("gelu-tanh", lambda op, x: op.gelu(x, approximate=True))
case("prelu-channel", lambda op, x: op.prelu(x, op.const(w(3, 1, 1))))
case("prelu-full", lambda op, x: op.prelu(x, op.const(w(3, 4, 5))))
case("prelu-rank2", lambda op, x: op.prelu(x, op.const(w(6))), [(6,)])
case("softmax", lambda op, x: op.softmax(x, axis=1))
case("softmax-axis3", lambda op, x: op.softmax(x, axis=3))
case("log_softmax", lambda op, x: op.log_softmax(x, axis=1))
for _name in ("add", "sub", "mul", "div", "max", "min"):
    case(f"{_name}", lambda op, x, y, n=_name: getattr(op, n)(x, y), [X4, X4],
         "positive" if _name == "div" else "normal")
    case(f"{_name}-scalar", lambda op, x, n=_name: getattr(op, n)(x, op.const(np.float32(0.7))))
    case(f"{_name}-scalar-first", lambda op, x, n=_name: getattr(op, n)(op.const(np.float32(0.7)), x),
         kind="positive")
    case(f"{_name}-channel", lambda op, x, n=_name: getattr(op, n)(x, op.const(w(3, 1, 1, positive=True))))
    case(f"{_name}-pixel-first", lambda op, x, n=_name: getattr(op, n)(op.const(w(1, 4, 5, positive=True)), x),
         kind="positive")
    case(f"{_name}-broadcast", lambda op, x, y, n=_name: getattr(op, n)(x, y), [X4, (3, 1, 1)], "positive")
case("add-odd-broadcast", lambda op, x: op.add(x, op.const(w(4, 1))))
case("pow-scalar", lambda op, x: op.pow(x, op.const(np.float32(1.7))), kind="positive")
case("pow-scalar-base", lambda op, x: op.pow(op.const(np.float32(1.7)), x))
case("pow", lambda op, x, y: op.pow(x, y), [X4, X4], "positive")
case("cast-int", lambda op, x: op.cast(op.cast(op.mul(x, op.const(np.float32(3.0))), to="i32"), to="f32"))
case("conv", lambda op, x: op.conv(x, op.const(w(6, 3, 3, 2)), op.const(w(6)), pads=(1, 0, 1, 1)))
case("conv-group-stride", lambda op, x: op.conv(x, op.const(w(4, 1, 2, 2)), None, group=2, strides=(2, 2),
                                                dilations=(1, 2)), [(2, 6, 7)])
case("conv-same", lambda op, x: op.conv(x, op.const(w(2, 3, 3, 3)), None, auto_pad="same", strides=(2, 2)))
case("conv1d", lambda op, x: op.conv(x, op.const(w(4, 3, 3)), op.const(w(4)), pads=(2, 0)), [(3, 7)])
case("conv3d", lambda op, x: op.conv(x, op.const(w(2, 2, 2, 2, 2)), op.const(w(2)), pads=(1, 0, 0, 0, 1, 0)),
     [(2, 3, 4, 4)])
case("conv_transpose", lambda op, x: op.conv_transpose(x, op.const(w(3, 4, 3, 3)), op.const(w(4)),
                                                       strides=(2, 2), pads=(1, 0, 1, 1), output_padding=(1, 0)))
case("conv_transpose-dilated-group", lambda op, x: op.conv_transpose(x, op.const(w(4, 1, 2, 2)), None, group=2,
                                                                     dilations=(2, 1)), [(4, 3, 3)])
case("conv_transpose1d", lambda op, x: op.conv_transpose(x, op.const(w(3, 2, 3)), None, strides=(3,)), [(3, 5)])
case("conv_transpose3d", lambda op, x: op.conv_transpose(x, op.const(w(2, 2, 2, 2, 2)), None, strides=(2, 2, 2)),
     [(2, 2, 3, 3)])
case("max_pool", lambda op, x: op.max_pool(x, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)))
case("avg_pool", lambda op, x: op.avg_pool(x, kernel=(2, 3), pads=(0, 1, 1, 1)))
case("avg_pool-include-pad", lambda op, x: op.avg_pool(x, kernel=(2, 2), pads=(1, 1, 0, 0), count_include_pad=True))
case("max_pool1d", lambda op, x: op.max_pool(x, kernel=(2,), strides=(2,)), [(3, 7)])
case("avg_pool3d", lambda op, x: op.avg_pool(x, kernel=(2, 2, 2)), [(2, 4, 4, 4)])
case("dense", lambda op, x: op.dense(x, op.const(w(6, 4)), op.const(w(4))), [(6,)])
case("dense-rank3", lambda op, x: op.dense(x, op.const(w(3, 4)), None), [(3, 5)])
case("dense-rank4", lambda op, x: op.dense(x, op.const(w(3, 2)), op.const(w(2))))
case("dense-rank5", lambda op, x: op.dense(x, op.const(w(2, 3)), op.const(w(3))), [(2, 2, 3, 3)])
case("dense-computed", lambda op, x, y: op.dense(x, op.reshape(y, shape=(4, 3)), None), [(4,), (12,)])
case("batch_norm", lambda op, x: op.batch_norm(x, *(op.const(w(3, positive=True)) for _ in range(4))))
case("batch_norm-rank2", lambda op, x: op.batch_norm(x, *(op.const(w(6, positive=True)) for _ in range(4))),
     [(6,)])
case("batch_norm-rank5", lambda op, x: op.batch_norm(x, *(op.const(w(2, positive=True)) for _ in range(4))),
     [(2, 3, 3, 3)])
case("matmul", lambda op, x: op.matmul(x, op.const(w(5, 2))), [(4, 5)])
case("matmul-two", lambda op, x, y: op.matmul(x, y), [(3, 4, 5), (3, 5, 2)])
# attention is lowered (EARLY_LOWERING) to matmuls and a softmax: 4 query heads over
# 2 key/value heads, 5 queries, 6 keys, head dims 3 and 7; the bias hides keys 1 and 4.
_MASK = np.zeros((1, 1, 5, 6), np.float32)
_MASK[..., [1, 4]] = -1e9
case("attention", lambda op, q, k, v: op.attention(q, k, v, scale=0.5), [(4, 5, 3), (2, 6, 3), (2, 6, 7)])
case("attention-bias", lambda op, q, k, v: op.attention(q, k, v, op.const(_MASK), scale=0.4),
     [(4, 5, 3), (2, 6, 3), (2, 6, 7)])
case("flatten", lambda op, x: op.flatten(x, axis=1))
case("flatten-keras-order", lambda op, x: op.flatten(op.transpose(x, perm=(0, 2, 3, 1)), axis=1))
case("flatten-axis2", lambda op, x: op.flatten(x, axis=2))
case("reshape", lambda op, x: op.reshape(x, shape=(0, 12, 5)))
case("reshape-rank5", lambda op, x: op.reshape(x, shape=(0, 3, 2, 2, 5)))
case("transpose", lambda op, x: op.transpose(x, perm=(0, 2, 3, 1)))
case("transpose-rank3", lambda op, x: op.transpose(x, perm=(0, 2, 1)), [(3, 5)])
case("transpose-batch", lambda op, x: op.transpose(x, perm=(1, 0, 2, 3)))
case("squeeze", lambda op, x: op.squeeze(x, axes=(2,)), [(3, 1, 5)])
case("unsqueeze", lambda op, x: op.unsqueeze(x, axes=(2,)), [(3, 5)])
case("concat", lambda op, x, y: op.concat(x, y, axis=1), [X4, (2, 4, 5)])
case("concat-axis2", lambda op, x, y: op.concat(x, y, axis=2), [X4, (3, 2, 5)])
case("pad", lambda op, x: op.pad(x, pads=(0, 0, 1, 2, 0, 0, 0, 1), value=0.5))
case("pad-reflect", lambda op, x: op.pad(x, pads=(0, 0, 1, 2, 0, 0, 2, 1), mode="reflect"))
case("pad-edge", lambda op, x: op.pad(x, pads=(0, 0, 1, 0, 0, 0, 2, 1), mode="edge"))
case("pad-channels", lambda op, x: op.pad(x, pads=(0, 1, 0, 0, 0, 2, 0, 0)))
case("slice", lambda op, x: op.slice(x, starts=(1, 0), ends=(3, 100), axes=(1, 3), steps=(1, 2)))
case("slice-reverse", lambda op, x: op.slice(x, starts=(-1,), ends=(-100,), axes=(2,), steps=(-1,)))
case("split", lambda op, x: op.split(x, axis=1, sizes=(1, 2))[1])
case("split-width", lambda op, x: op.split(x, axis=3, sizes=(2, 3))[0])
case("tile", lambda op, x: op.tile(x, repeats=(1, 2, 1, 2)))
case("gather", lambda op, x: op.gather(x, op.const(np.array([2, 0, 3], np.int32)), axis=2))
for _name in ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
    case(f"{_name}-hw", lambda op, x, n=_name: getattr(op, n)(x, axes=(2, 3)))
    case(f"{_name}-c-keep", lambda op, x, n=_name: getattr(op, n)(x, axes=(1,), keepdims=True))
case("reduce_mean-c", lambda op, x: op.reduce_mean(x, axes=(1,)))
case("reduce_sum-all", lambda op, x: op.reduce_sum(x, axes=(1, 2, 3)))
case("reduce_max-batch", lambda op, x: op.reduce_max(x, axes=(0, 2)))
case("resize-nearest", lambda op, x: op.resize(x, mode="nearest", sizes=(8, 15)))
case("resize-bilinear", lambda op, x: op.resize(x, mode="bilinear", sizes=(8, 10)))
case("resize-bilinear-down", lambda op, x: op.resize(x, mode="bilinear", sizes=(3, 7)))
case("resize-nearest-down", lambda op, x: op.resize(x, mode="nearest", sizes=(2, 3)))
case("resize1d", lambda op, x: op.resize(x, mode="nearest", sizes=(14,)), [(3, 7)])
case("layer_norm", lambda op, x: op.layer_norm(x, op.const(w(3, 4, 5)), op.const(w(3, 4, 5)), axes=(1, 2, 3)))
case("layer_norm-hw", lambda op, x: op.layer_norm(x, op.const(w(4, 5)), None, axes=(2, 3)))
case("layer_norm-channels", lambda op, x: op.layer_norm(x, op.const(w(3)), op.const(w(3)), axes=(1,)))
case("layer_norm-plain", lambda op, x: op.layer_norm(x, axes=(3,)))
case("rms_norm", lambda op, x: op.rms_norm(x, op.const(w(3)), axes=(1,), epsilon=1e-3))
case("rms_norm-hw", lambda op, x: op.rms_norm(x, op.const(w(4, 5)), axes=(2, 3)))
case("argmax", lambda op, x: op.argmax(x, axis=1))
case("argmin", lambda op, x: op.argmin(x, axis=3, keepdims=True))
case("one_hot", lambda op, x: op.one_hot(x, depth=5, axis=1, on_value=2.0, off_value=-1.0), [(4,)], "index")
case("rnn", lambda op, x: op.rnn(x, op.const(w(4, 3)), op.const(w(4, 4)), op.const(w(8)))[0], [(2, 3)], "seq")
case("lstm", lambda op, x: op.lstm(x, op.const(w(16, 3)), op.const(w(16, 4)), op.const(w(32)),
                                   direction="reverse")[2], [(2, 3)], "seq")
case("gru", lambda op, x: op.gru(x, op.const(w(12, 3)), op.const(w(12, 4)), op.const(w(24)),
                                 reset_after=False)[0], [(2, 3)], "seq")
case("gru-reset-after", lambda op, x: op.gru(x, op.const(w(12, 3)), op.const(w(12, 4)), op.const(w(24)),
                                             direction="reverse")[0], [(2, 3)], "seq")
case("conv_lstm", lambda op, x: op.conv_lstm(x, op.const(w(8, 2, 3, 3)), op.const(w(8, 2, 3, 3)), op.const(w(8)),
                                             pads=(1, 0, 1, 2), direction="reverse")[0], [(0, 2, 4, 4)], "seq")
case("conv_lstm-1d", lambda op, x: op.conv_lstm(x, op.const(w(8, 2, 3)), op.const(w(8, 2, 3)), None,
                                                auto_pad="same")[1], [(0, 2, 6)], "seq")
case("conv_lstm-3d", lambda op, x: op.conv_lstm(x, op.const(w(8, 2, 2, 2, 2)), op.const(w(8, 2, 2, 2, 2)),
                                                op.const(w(8)), auto_pad="same")[0], [(0, 2, 3, 4, 4)], "seq")
for _name in ("greater", "less", "equal", "greater_equal", "less_equal"):
    case(_name, lambda op, x, n=_name: getattr(op, n)(op.round(x), op.const(np.float32(0.0))))
for _name in ("logical_and", "logical_or", "logical_xor"):
    case(_name, lambda op, x, y, n=_name: getattr(op, n)(op.greater(x, op.const(np.float32(0.0))),
                                                        op.less(y, op.const(np.float32(0.0)))), [X4, X4])
case("logical_not", lambda op, x: op.logical_not(op.greater(x, op.const(np.float32(0.0)))))
case("is_nan", lambda op, x: op.is_nan(op.log(x)))
case("is_inf", lambda op, x: op.is_inf(op.exp(op.mul(x, op.const(np.float32(100.0))))))
case("where", lambda op, x, y: op.where(op.greater(x, op.const(np.float32(0.0))), x, y), [X4, (4, 5)])
case("cumsum", lambda op, x: op.cumsum(x, axis=2, exclusive=True, reverse=True))
# About half the entries are zeros after relu: the row count is known only from the values.
case("nonzero", lambda op, x: op.nonzero(op.relu(x)))
case("fill_like", lambda op, x: op.add(op.fill_like(x, value=2.5), x))
# Shape arithmetic (test_coreml_shape_ops.py runs it at two sequence lengths).
_I64 = np.int64
case("shape", lambda op, x: op.add(x, op.cast(op.slice(op.shape(x), starts=(3,), ends=(4,), axes=(0,)), to="f32")))
case("range", lambda op, x: op.add(x, op.cast(op.range(op.const(_I64(0)), op.gather(
    op.shape(x), op.const(_I64(3)), axis=0), op.const(_I64(1))), to="f32")))
case("expand", lambda op, x: op.add(x, op.expand(op.const(w(3, 1, 1)), op.shape(x))))
case("reshape_to", lambda op, x: op.reshape_to(x, op.concat(
    op.slice(op.shape(x), starts=(0,), ends=(2,), axes=(0,)), op.const(np.asarray([-1], _I64)), axis=0)))
case("slice_to", lambda op, x: op.add(x, op.slice_to(op.const(w(6, 3, 1, 1)), op.const(np.asarray([0], _I64)),
                                                  op.slice(op.shape(x), starts=(0,), ends=(1,), axes=(0,)), axes=(0,))))

# Ops whose runtime check lives elsewhere: custom layers have no implementation to run
# (test_coreml_custom.py checks their spec).
ELSEWHERE = {"custom_layer"}


def _graph(name: str) -> tuple[Graph, dict[str, np.ndarray]]:
    build, shapes, kind = CASES[name]
    g = Graph(name)
    feeds = {}
    inputs = []
    for i, s in enumerate(shapes):
        if kind == "seq":   # recurrent ops are time-major: (T, N, F)
            shape, batch_shape = ("5", "N") + s[1:], (5, 1) + s[1:]
            shape = (5, "N") + s[1:]
        else:
            shape, batch_shape = ("N",) + s, (1,) + s
        dtype = "i32" if kind == "index" else "f32"
        v = g.add_input(f"in{i}", TensorType(shape, dtype))
        rng = np.random.default_rng(i + 1)
        if kind == "index":
            x = rng.integers(0, 5, batch_shape).astype(np.int32)
        elif kind == "positive":
            x = rng.uniform(0.5, 2.0, batch_shape).astype(np.float32)
        else:
            x = rng.standard_normal(batch_shape).astype(np.float32)
        feeds[v.name] = x
        inputs.append(v)
    out = build(GraphBuilder(g, name="t"), *inputs)
    g.set_outputs([out], ["out"])
    g.validate()
    return g, feeds


def _run(name: str, force_nd: bool) -> tuple[Any, float]:
    graph, feeds = _graph(name)
    ref = run_ir(graph.copy(), feeds)["out"]
    Pipeline.from_spec(list(EARLY_LOWERING + COREML_LOWERING)).run(graph)
    spec = build_spec(graph, parse_options({}), force_nd=force_nd)
    mapping_nd = getattr(spec, spec.WhichOneof("Type")).arrayInputShapeMapping == 1
    rt_feeds = {}
    for f in spec.description.input:
        x = feeds[f.name].astype(np.float32)
        rt_feeds[f.name] = x if mapping_nd else x.reshape([int(d) for d in f.type.multiArrayType.shape])
    got = np.asarray(predict(spec, rt_feeds)["out"], dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    if ref.size > 1:
        assert_not_degenerate(ref)
    return spec, assert_close(ref, got.reshape(ref.shape), 1e-4, what=f"{name} output")


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_rank5_first(name):
    spec, _ = _run(name, force_nd=False)
    assert spec.specificationVersion >= 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_nd(name):
    spec, _ = _run(name, force_nd=True)
    assert spec.specificationVersion >= 4
    assert getattr(spec, spec.WhichOneof("Type")).arrayInputShapeMapping == 1


def test_every_op_is_covered():
    tested = {n.split("-")[0] for n in CASES} | ELSEWHERE
    missing = sorted(set(all_ops()) - tested)
    assert not missing, f"IR ops without a Core ML op test: {missing}"
    assert set(all_ops()) <= set(supported_ops()) | set(), sorted(set(all_ops()) - set(supported_ops()))


def test_spec1_ops_stay_in_spec1():
    """Classic layers do not raise the specification version."""
    for name in ("conv", "max_pool", "dense", "batch_norm", "flatten-keras-order", "concat", "pad", "slice",
                 "reshape", "transpose", "softmax", "clip", "selu", "mish", "add-channel", "sub-scalar-first",
                 "reduce_mean-hw", "layer_norm", "resize-nearest", "conv_transpose", "split"):
        spec, _ = _run(name, force_nd=False)
        assert spec.specificationVersion == 1, name
