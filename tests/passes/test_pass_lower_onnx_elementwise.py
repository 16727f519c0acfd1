"""lower_onnx_elementwise: silu, gelu < 20, mish < 18, scaled_tanh, rsqrt, square -> ops ONNX has.

Each case: the op list after the pass, golden text, interpreter numbers before
== after, then the lowered graph through the ONNX emitter and onnxruntime (its
default options) against the interpreter; and the must-not-fire cases (the
opset has the op natively, or the op is one to one).
"""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import apply_pass, check_rewrite, check_unchanged, graph_with
from kcc.backends.onnx import emit_onnx
from kcc.interpreter import run
from kcc.testing import assert_close, run_onnx

# Ties and boundaries: zeros of both signs, small and large magnitudes, exact halves.
_X = np.array([[-6.0, -2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, 6.0],
               [-3.0, -1.5, -0.25, -1e-4, 1e-4, 0.25, 1.5, 3.0, 4.0, -4.0]], np.float32)


def _unary(op_name: str, **attrs):
    g, op, x = graph_with()
    g.set_outputs([getattr(op, op_name)(x, **attrs)], ["y"])
    return g


def _check_in_onnxruntime(g, opset: int, feeds) -> None:
    ref = run(g, feeds)["y"]
    got = run_onnx(emit_onnx(g, opset=opset), feeds)[0]
    assert_close(ref, got, 1e-5, what=f"lowered graph at opset {opset}")


CASES = {
    # case -> (op, attrs, opset, ops after)
    "silu": ("silu", {}, 17, ["sigmoid", "mul"]),
    "gelu_erf": ("gelu", {}, 17, ["div", "erf", "add", "mul", "mul"]),
    "gelu_tanh": ("gelu", {"approximate": True}, 19, ["mul", "mul", "add", "mul", "mul", "tanh", "add", "mul", "mul"]),
    "mish": ("mish", {}, 17, ["softplus", "tanh", "mul"]),
    "scaled_tanh": ("scaled_tanh", {"alpha": 1.7159, "beta": 0.6667}, 21, ["mul", "tanh", "mul"]),
    "square": ("square", {}, 21, ["mul"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lowered_where_onnx_lacks_the_op(case):
    op_name, attrs, opset, ops = CASES[case]
    g = _unary(op_name, **attrs)
    check_rewrite(g, "lower_onnx_elementwise", case, ops, options={"opset": opset}, feeds={"x": _X})
    _check_in_onnxruntime(g, opset, {"x": _X})


@pytest.mark.parametrize("approximate,fused", [(False, "Gelu"), (True, "FastGelu")])
def test_onnxruntime_fuses_the_lowered_gelu_back_into_one_kernel(tmp_path, approximate, fused):
    """Below opset 20 the decomposed GELU is spelled the way onnxruntime's GeluFusion /
    FastGeluFusion match (default session options), so it runs as one kernel, not eight."""
    import onnx
    import onnxruntime as ort

    g, op, x = graph_with()
    y = op.gelu(x, approximate=approximate)
    g.set_outputs([op.mul(y, op.scalar(2.0, y))], ["y"])   # a graph output is never fused
    assert apply_pass("lower_onnx_elementwise", g, opset=17)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(emit_onnx(g, opset=17).SerializeToString(), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    assert fused in ops and "Tanh" not in ops and "Erf" not in ops, ops


def test_rsqrt_becomes_reciprocal_of_sqrt():
    g = _unary("rsqrt")
    feeds = {"x": np.abs(_X) + np.float32(0.25)}
    check_rewrite(g, "lower_onnx_elementwise", "rsqrt", ["sqrt", "reciprocal"], feeds=feeds)
    _check_in_onnxruntime(g, 17, feeds)


@pytest.mark.parametrize("op_name,opset", [("gelu", 20), ("gelu", 21), ("mish", 18), ("hard_silu", 17),
                                           ("relu", 17), ("sigmoid", 17)])
def test_native_op_is_left_alone(op_name, opset):
    g = _unary(op_name)
    check_unchanged(g, "lower_onnx_elementwise", options={"opset": opset})
    _check_in_onnxruntime(g, opset, {"x": _X})


def test_check_says_why_it_does_not_fire():
    from kcc.passes.lower_onnx_elementwise import _rules

    g = _unary("gelu")
    node = g.nodes()[0]
    rule = next(r for r in _rules(20) if r.name == "gelu_erf")
    match, reason = rule.find(g, node)
    assert match is None and reason == "ONNX opset 20 has Gelu (from opset 20)"
    below = next(r for r in _rules(19) if r.name == "gelu_erf")
    assert below.find(g, node)[0] is not None


def test_an_opset_kcc_cannot_emit_is_refused():
    from kcc.errors import OptionError
    from kcc.pipeline import get_pass

    with pytest.raises(OptionError, match="opset=9 is out of range"):
        get_pass("lower_onnx_elementwise").configure(opset=9)


def test_onnx_pipeline_is_the_standard_one_then_the_lowering_at_the_target_opset():
    from kcc.backends import STANDARD_PIPELINE, get_target
    from kcc.backends.onnx import ONNX_LOWERING
    from kcc.errors import IRError
    from kcc.pipeline import Pipeline

    target = get_target("onnx")
    at = STANDARD_PIPELINE.index("sink_transposes")   # attention's formula goes before the layout passes
    assert target.pipeline == (STANDARD_PIPELINE[:at] + ("lower_onnx_attention",) + STANDARD_PIPELINE[at:]
                               + ONNX_LOWERING)
    spec = target.pipeline_spec({"opset": 19})
    assert [name for name, opts in spec if opts.get("opset") == 19] == [
        "lower_onnx_attention", "lower_onnx_dense", "lower_onnx_fused_activation", "lower_onnx_layer_norm", "lower_onnx_rms_norm",
        "lower_onnx_elementwise", "lower_onnx_one_hot"]
    Pipeline.from_spec(spec)
    # Ordering is checked data: a fusion after the lowering would undo it.
    with pytest.raises(IRError, match="lower_onnx_elementwise must come after fuse_gelu"):
        Pipeline.from_spec(["lower_onnx_elementwise", "fuse_gelu"])
