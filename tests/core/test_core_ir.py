"""The IR's invariants, the op registry and the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.interpreter import run
from kcc.ir import Graph, TensorType
from kcc.ops.registry import Attr, OpDef, all_ops, get_op, register_op
from kcc.printer import format_graph


def small_graph() -> Graph:
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 4)))
    op = GraphBuilder(g, origin="layer", name="layer")
    w = op.const(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    y = op.relu(op.dense(x, w))
    g.set_outputs([y], ["y"])
    return g


def test_shapes_keep_the_symbolic_batch():
    g = small_graph()
    assert [str(v.type) for v in g.outputs] == ["f32[N,3]"]
    g.validate()


def test_nodes_are_in_deterministic_topological_order():
    texts = {format_graph(small_graph()) for _ in range(3)}
    assert len(texts) == 1
    assert small_graph().op_types() == ["dense", "relu"]


def test_validate_rejects_a_shape_that_disagrees_with_the_shape_function():
    g = small_graph()
    dense = g.nodes()[0]
    g.retype(dense.output, TensorType(("N", 5)))
    with pytest.raises(IRError, match="shape function gives"):
        g.validate()


def test_validate_rejects_a_cycle():
    g = small_graph()
    dense, relu = g.nodes()
    g.set_input(dense, 0, relu.output)
    with pytest.raises(IRError, match="cycle"):
        g.validate()


def test_validate_rejects_a_dangling_use():
    g = small_graph()
    other = Graph("other")
    foreign = other.add_input("z", TensorType(("N", 4)))
    with pytest.raises(IRError, match="not in the graph"):
        g.set_input(g.nodes()[0], 0, foreign)


def test_attributes_are_typed():
    g = small_graph()
    x = g.inputs[0]
    with pytest.raises(IRError, match="has no attribute 'axes'"):
        g.add_node("relu", [x], {"axes": (1,)})
    with pytest.raises(IRError, match="must be an int"):
        g.add_node("softmax", [x], {"axis": 1.5})


def test_registry_refuses_a_duplicate_op():
    class Relu2(OpDef):
        name = "relu"

    with pytest.raises(IRError, match="declared twice"):
        register_op(Relu2)


def test_every_op_declares_shape_function_and_reference():
    for name, op in all_ops().items():
        assert type(op).infer is not OpDef.infer, name
        assert type(op).compute is not OpDef.compute, name
        for key, spec in op.attrs.items():
            assert isinstance(spec, Attr), (name, key)


def test_interpreter_runs_with_numpy_semantics():
    g = small_graph()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    np.testing.assert_allclose(run(g, {"x": x})["y"], np.maximum(x @ w, 0), rtol=1e-6)


def test_conv_reference_matches_a_direct_loop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    attrs = get_op("conv").normalize_attrs({"strides": (2, 1), "pads": (1, 0, 1, 1), "group": 2}, "t")
    y = get_op("conv").compute(attrs, x, w, None)
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (0, 1)])
    ref = np.zeros_like(y)
    for n in range(2):
        for o in range(6):
            gi = o // 3
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    patch = xp[n, gi * 2:(gi + 1) * 2, 2 * i:2 * i + 3, j:j + 2]
                    ref[n, o, i, j] = np.sum(patch * w[o])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_remove_node_refuses_while_used():
    g = small_graph()
    with pytest.raises(IRError, match="still used"):
        g.remove_node(g.nodes()[0])


def test_copy_is_independent():
    g = small_graph()
    c = g.copy()
    relu = c.nodes()[1]
    c.replace_all_uses(relu.output, relu.inputs[0])
    c.remove_node(relu)
    assert g.op_types() == ["dense", "relu"] and c.op_types() == ["dense"]
    g.validate()
    c.validate()


def test_tables_refuse_a_second_entry_and_load_lazily():
    from kcc.table import Table

    loaded = []
    t: Table = Table("test entry", lambda: loaded.append(True))
    t.register("a", "b")(len)
    assert not loaded
    assert t["a"] is len and t.names() == ["a", "b"] and loaded == [True]
    with pytest.raises(AssertionError, match="'a' registered twice"):
        t.register("a")(abs)


def test_table_registered_does_not_run_the_loader():
    """``registered`` is for checks made while a table fills; it must not re-enter the loader."""
    from kcc.table import Table

    loaded = []
    t: Table = Table("test entry", lambda: loaded.append(True))
    assert t.registered("a") is None
    t.register("a")(len)
    assert t.registered("a") is len and t.registered("b") is None and not loaded


def test_every_op_and_attribute_kind_is_in_a_table():
    from kcc.ops.registry import ATTR_KINDS, OPS, all_ops

    assert set(all_ops()) == set(OPS) and len(OPS) > 50
    assert {"int", "float", "bool", "str", "ints", "floats", "strs", "any"} <= set(ATTR_KINDS)
