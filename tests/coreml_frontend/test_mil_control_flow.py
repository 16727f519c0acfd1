"""MIL while_loop, cond and scatter (the patterns coremltools writes for PyTorch GRUs) -> kcc, against numpy.

The programs are written with coremltools' MIL builder (no torch needed) the
way coremltools' PyTorch frontend writes ``nn.GRU``: a counter and a zero
buffer as loop variables, ``less(i, T)`` as the condition, and a body that
gathers step ``i``, computes the new state and ``scatter``s it into row ``i+1``
of the buffer. Each goes through kcc to ONNX (onnxruntime, default session
options) and through ``kcc.coreml.predict``; references are plain numpy.
"""
from __future__ import annotations

import numpy as np
import pytest

import kcc
from kcc.errors import ConversionError
from mlp_helpers import check_package, coremltools, program_to_mlpackage, seeded, with_ties


def _op_counts(pkg) -> dict[str, int]:
    from collections import Counter

    from kcc.frontends.coreml import load_mlprogram
    return dict(Counter(n.op for n in load_mlprogram(pkg).nodes()))


def _builder():
    coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    return mb, types


def test_while_loop_recurrence_with_scatter(tmp_path):
    T, N, F, H = 5, 2, 3, 4
    x = seeded((T, N, F), 1)
    w, u = seeded((H, F), 2, 0.7), seeded((H, H), 3, 0.7)
    b = seeded((H,), 4, 0.3)
    mb, _ = _builder()

    @mb.program(input_specs=[mb.TensorSpec(x.shape)])
    def prog(x):
        def cond(i, buf):
            return mb.less(x=i, y=np.array([T], np.int32))

        def body(i, buf):
            xt = mb.squeeze(x=mb.gather(x=x, indices=i, axis=0), axes=[0])
            ht = mb.squeeze(x=mb.gather(x=buf, indices=i, axis=0), axes=[0])
            h = mb.tanh(x=mb.add(x=mb.linear(x=xt, weight=w, bias=b), y=mb.linear(x=ht, weight=u)))
            nxt = mb.add(x=i, y=np.int32(1))
            buf = mb.scatter(data=buf, indices=nxt, updates=mb.expand_dims(x=h, axes=[0]), axis=0, mode="add")
            return nxt, buf

        _, buf = mb.while_loop(_cond=cond, _body=body,
                               loop_vars=(np.array([0], np.int32), np.zeros((T + 1, N, H), np.float32)))
        return mb.slice_by_index(x=buf, begin=[1, 0, 0], end=[T + 1, N, H], name="y")

    h, ys = np.zeros((N, H), np.float32), []
    for t in range(T):
        h = np.tanh(x[t] @ w.T + b + h @ u.T)
        ys.append(h)
    pkg = program_to_mlpackage(prog, tmp_path / "loop.mlpackage")
    check_package(pkg, {"x": x}, {"y": np.stack(ys)})
    assert _op_counts(pkg).get("tanh") == T  # unrolled: one copy of the body per step


def _cond_program(mb, known: bool):
    @mb.program(input_specs=[mb.TensorSpec((2, 3)), mb.TensorSpec((1,))])
    def prog(x, s):
        if known:
            pred = mb.greater(x=np.float32(3.0), y=np.float32(2.0))
        else:
            pred = mb.squeeze(x=mb.greater(x=s, y=np.float32(0.0)))
        return mb.cond(pred=pred, _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0),
                       name="y")
    return prog


@pytest.mark.parametrize("sign", [1.0, -1.0, 0.0])
def test_cond_on_a_tensor_predicate(tmp_path, sign):
    """Both branches lowered, ``where`` picks: checked with the predicate true, false and at the 0 boundary."""
    mb, _ = _builder()
    x, s = seeded((2, 3), 5), np.array([sign], np.float32)
    pkg = program_to_mlpackage(_cond_program(mb, known=False), tmp_path / "cond.mlpackage")
    check_package(pkg, {"x": x, "s": s}, {"y": x * 2 if sign > 0 else x - 1})


def test_cond_on_a_known_predicate_lowers_one_branch(tmp_path):
    mb, _ = _builder()
    x, s = seeded((2, 3), 6), np.array([-1.0], np.float32)
    pkg = program_to_mlpackage(_cond_program(mb, known=True), tmp_path / "cond.mlpackage")
    check_package(pkg, {"x": x, "s": s}, {"y": x * 2})
    counts = _op_counts(pkg)
    assert "mul" in counts and "sub" not in counts and "where" not in counts


def _scatter_ref(data, indices, updates, axis, mode):
    out = np.moveaxis(data.copy(), axis, 0)
    upd = np.moveaxis(updates, axis, 0)
    ops = {"update": lambda a, b: b, "add": np.add, "sub": np.subtract, "mul": np.multiply,
           "max": np.maximum, "min": np.minimum}
    for j, i in enumerate(indices):
        out[i] = ops[mode](out[i], upd[j])
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("mode", ["update", "add", "sub", "mul", "max", "min"])
def test_scatter_modes(tmp_path, mode):
    """Axis 1 of unequal dims; a repeated index (applied in order) and a negative one; ties for max/min."""
    data = with_ties(seeded((2, 5, 3), 7), 7)
    updates = with_ties(seeded((2, 4, 3), 8), 8)
    updates[:, 0] = data[:, 3]  # exact ties with the row they meet
    indices = np.array([3, 0, -1, 3], np.int32)
    mb, _ = _builder()

    @mb.program(input_specs=[mb.TensorSpec(data.shape), mb.TensorSpec(updates.shape)])
    def prog(data, updates):
        return mb.scatter(data=data, indices=indices, updates=updates, axis=1, mode=mode, name="y")

    pkg = program_to_mlpackage(prog, tmp_path / "scatter.mlpackage")
    ref = _scatter_ref(data, [int(i) % 5 for i in indices], updates, 1, mode)
    check_package(pkg, {"data": data, "updates": updates}, {"y": ref}, tol=1e-6)


def test_while_loop_with_a_tensor_condition_is_refused(tmp_path):
    mb, _ = _builder()

    @mb.program(input_specs=[mb.TensorSpec((1,))])
    def prog(x):
        def cond(a):
            return mb.less(x=a, y=np.float32(10.0))

        def body(a):
            return mb.add(x=a, y=np.float32(1.0))

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(x,))

    pkg = program_to_mlpackage(prog, tmp_path / "dyn.mlpackage")
    with pytest.raises(ConversionError, match=r"while_loop.*trip count is not known"):
        kcc.compile(str(pkg), target="onnx")


def test_scatter_with_tensor_indices_is_refused(tmp_path):
    mb, types = _builder()

    @mb.program(input_specs=[mb.TensorSpec((4, 3)), mb.TensorSpec((2,), dtype=types.int32),
                             mb.TensorSpec((2, 3))])
    def prog(data, idx, upd):
        return mb.scatter(data=data, indices=idx, updates=upd, axis=0, mode="update")

    pkg = program_to_mlpackage(prog, tmp_path / "scatter_dyn.mlpackage")
    with pytest.raises(ConversionError, match=r"scatter indices computed from tensor values"):
        kcc.compile(str(pkg), target="onnx")
