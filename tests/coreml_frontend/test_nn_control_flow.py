"""NeuralNetwork branch / loop / loopBreak / loopContinue, lowered by predication (nn_control.py).

Specs are written with coremltools' NeuralNetworkBuilder (nested networks
through ``NeuralNetworkBuilder(nn_spec=...)``); kcc's runtime runs the real
control flow, onnxruntime runs kcc's straight-line ONNX, and they must agree
for conditions on both sides of the proto's ``|c| > 1e-6`` threshold and for
loops that stop at different iterations for different inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.errors import UnsupportedOpError
from kcc.testing import assert_close
from nn_helpers import run_onnx
from nn_specs import builder_module

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)


def _builder(inputs, outputs):
    datatypes, NeuralNetworkBuilder = builder_module()
    return NeuralNetworkBuilder([(n, datatypes.Array(*s)) for n, s in inputs.items()], [(o, None) for o in outputs],
                                disable_rank5_shape_mapping=True)


def _nested(network):
    _, NeuralNetworkBuilder = builder_module()
    return NeuralNetworkBuilder(nn_spec=network, disable_rank5_shape_mapping=True)


def _compare(spec, feeds, names):
    """The runtime's real control flow against onnxruntime and against the straight-line Core ML re-emitted."""
    ref = kcc.coreml.predict(spec, feeds)
    runs = {"onnxruntime": run_onnx(kcc.compile(spec, target="onnx"), feeds),
            "Core ML again": kcc.coreml.predict(kcc.compile(spec, target="coreml").get_spec(), feeds)}
    for run, got in runs.items():
        for n in names:
            assert_close(np.asarray(ref[n], np.float32), np.asarray(got[n], np.float32).reshape(np.shape(ref[n])),
                         1e-6, f"{run} {n}")
    return ref


def _branch_model():
    """y = 2x if |c| > 1e-6 else x - 1 (y is first written inside the branches)."""
    b = _builder({"x": (2, 3), "c": (1,)}, ["y"])
    br = b.add_branch("br", "c")
    _nested(br.branch.ifBranch).add_activation("double", "LINEAR", "x", "y", params=[2.0, 0.0])
    _nested(br.branch.elseBranch).add_activation("less_one", "LINEAR", "x", "y", params=[1.0, -1.0])
    return b.spec


@pytest.mark.parametrize("c", [0.5, -2.0, 0.0, 5e-7, -2e-6, 1e-6, float(np.nextafter(np.float32(1e-6), np.float32(1)))])
def test_branch_both_sides_of_the_threshold(c):
    spec = _branch_model()
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    ref = _compare(spec, {"x": x, "c": np.array([c], np.float32)}, ["y"])
    assert np.allclose(ref["y"], 2 * x if abs(np.float32(c)) > np.float32(1e-6) else x - 1)


def _loop_model():
    """acc = x; for i in 1..6: if i is odd: continue; acc = 1.5 acc + x; if max(acc) > t: break."""
    b = _builder({"x": (2, 3), "t": (1,)}, ["y", "n"])
    b.add_load_constant_nd("zero", "i", constant_value=np.zeros(1, np.float32), shape=[1])
    b.add_load_constant_nd("two", "two", constant_value=np.full(1, 2.0, np.float32), shape=[1])
    b.add_copy("start", "x", "acc")
    loop = b.add_loop("loop", max_iterations=6)
    body = _nested(loop.loop.bodyNetwork)
    body.add_activation("inc", "LINEAR", "i", "i1", params=[1.0, 1.0])
    body.add_copy("count", "i1", "i")
    body.add_mod_broadcastable("odd", ["i", "two"], "m")
    _nested(body.add_branch("skip", "m").branch.ifBranch).add_loop_continue("cont")
    body.add_activation("grow", "LINEAR", "acc", "g", params=[1.5, 0.0])
    body.add_add_broadcastable("plus", ["g", "x"], "g2")
    body.add_copy("keep", "g2", "acc")
    body.add_reduce_max("mx", "acc", "s", reduce_all=True, keepdims=True)
    body.add_greater_than("big", ["s", "t"], "stop")
    _nested(body.add_branch("end", "stop").branch.ifBranch).add_loop_break("brk")
    b.add_activation("out", "LINEAR", "acc", "y", params=[1.0, 0.0])
    b.add_activation("iters", "LINEAR", "i", "n", params=[1.0, 0.0])
    return b.spec


def test_for_loop_with_continue_and_a_data_dependent_break():
    spec = _loop_model()
    x = np.abs(np.random.default_rng(1).standard_normal((2, 3))).astype(np.float32) + 0.5
    seen = set()
    for t in (0.0, 3.0 * x.max(), 6.0 * x.max(), 1e6):  # break after the 2nd, 4th, 6th even step, or never
        ref = _compare(spec, {"x": x, "t": np.array([t], np.float32)}, ["y", "n"])
        seen.add(float(ref["n"].reshape(-1)[0]))
    assert len(seen) >= 3, seen  # the loop really stopped at different iterations


def test_while_loop_with_a_condition_network_and_a_bound():
    """acc doubles while sum(acc) < t, at most 7 times."""
    b = _builder({"x": (2, 3), "t": (1,)}, ["y"])
    b.add_copy("start", "x", "acc")
    loop = b.add_loop("loop", max_iterations=7, condition="go")
    cond = _nested(loop.loop.conditionNetwork)
    cond.add_reduce_sum("sum", "acc", "s", reduce_all=True, keepdims=True)
    cond.add_less_than("lt", ["s", "t"], "go")
    body = _nested(loop.loop.bodyNetwork)
    body.add_activation("double", "LINEAR", "acc", "d", params=[2.0, 0.0])
    body.add_copy("keep", "d", "acc")
    b.add_activation("out", "LINEAR", "acc", "y", params=[1.0, 0.0])
    x = np.abs(np.random.default_rng(2).standard_normal((2, 3))).astype(np.float32) + 0.1
    outs = set()
    for t in (0.0, 5 * x.sum(), 1e9):
        ref = _compare(b.spec, {"x": x, "t": np.array([t], np.float32)}, ["y"])
        outs.add(round(float(ref["y"].reshape(-1)[0] / x[0, 0])))
    assert outs == {1, 8, 128}, outs


def test_unbounded_while_loop_is_refused_naming_the_layer():
    b = _builder({"x": (2, 3)}, ["y"])
    b.add_copy("start", "x", "acc")
    loop = b.add_loop("forever", condition="go")
    cond = _nested(loop.loop.conditionNetwork)
    cond.add_reduce_sum("sum", "acc", "s", reduce_all=True, keepdims=True)
    cond.add_less_than("lt", ["s"], "go", alpha=10.0)
    _nested(loop.loop.bodyNetwork).add_activation("double", "LINEAR", "acc", "acc2", params=[2.0, 0.0])
    b.add_activation("out", "LINEAR", "acc", "y", params=[1.0, 0.0])
    with pytest.raises(UnsupportedOpError, match=r"loop layer 'forever' is a while loop with no bound"):
        kcc.compile(b.spec, target="onnx")


def test_run_time_iteration_count_is_refused():
    b = _builder({"x": (2, 3), "n": (1,)}, ["y"])
    loop = b.add_loop("counted", input_name="n")
    _nested(loop.loop.bodyNetwork).add_activation("double", "LINEAR", "x", "x2", params=[2.0, 0.0])
    b.add_activation("out", "LINEAR", "x", "y", params=[1.0, 0.0])
    with pytest.raises(UnsupportedOpError, match=r"loop layer 'counted' takes its iteration count from blob 'n'"):
        kcc.compile(b.spec, target="onnx")


def test_a_blob_growing_in_a_loop_unrolls_unless_a_condition_guards_it():
    """A pure for loop needs no predicate, so a blob may grow; under a condition it would need two shapes."""
    for guarded in (False, True):
        b = _builder({"x": (2, 3), "t": (1,)}, ["y"])
        b.add_copy("start", "x", "acc")
        loop = b.add_loop("grow", max_iterations=3, condition="go" if guarded else None)
        if guarded:
            _nested(loop.loop.conditionNetwork).add_greater_than("gt", ["t"], "go", alpha=0.0)
        body = _nested(loop.loop.bodyNetwork)
        body.add_concat_nd("cat", ["acc", "x"], "bigger", axis=0)
        body.add_copy("keep", "bigger", "acc")
        b.add_activation("out", "LINEAR", "acc", "y", params=[1.0, 0.0])
        feeds = {"x": np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32),
                 "t": np.ones(1, np.float32)}
        if not guarded:
            assert _compare(b.spec, feeds, ["y"])["y"].shape == (8, 3)
            continue
        with pytest.raises(UnsupportedOpError, match=r"layer 'keep' writes blob 'acc' as f32\[4, 3\].*one shape"):
            kcc.compile(b.spec, target="onnx")
