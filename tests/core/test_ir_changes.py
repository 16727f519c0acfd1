"""What keeps compile time linear: the IR's change tracking, its own topological sort,
its op counts, and the rewrite engine's per-node rule filter, each checked against
the plain computation it replaces."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.ir import Graph, Node, TensorType
from kcc.pattern import RewriteRule, alive, apply_rules
from kcc.printer import format_graph


def small_graph() -> Graph:
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 4)))
    op = GraphBuilder(g, origin="layer", name="layer")
    w = op.const(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    y = op.relu(op.dense(x, w))
    g.set_outputs([y], ["y"])
    return g


def test_validate_changes_passes_a_graph_built_by_the_methods():
    g = small_graph()
    g.validate_changes()
    g.validate()


def test_validate_changes_rejects_a_retyped_value():
    g = small_graph()
    g.validate_changes()
    dense = g.nodes()[0]
    g.retype(dense.output, TensorType(("N", 5)))
    with pytest.raises(IRError, match="shape function gives"):
        g.validate_changes()


def test_validate_changes_rejects_a_cycle():
    g = small_graph()
    dense, relu = g.nodes()
    g.set_input(dense, 0, relu.output)
    with pytest.raises(IRError, match="cycle"):
        g.validate_changes()


def test_validate_changes_rejects_an_output_from_another_graph():
    g = small_graph()
    foreign = Graph("other").add_input("z", TensorType(("N", 3)))
    g.replace_all_uses(g.outputs[0], foreign)
    with pytest.raises(IRError, match="not in the graph"):
        g.validate_changes()


def test_validate_changes_rejects_an_attribute_that_changes_the_types():
    g = small_graph()
    x = g.inputs[0]
    s = g.add_node("softmax", [g.add_node("transpose", [x], {"perm": (1, 0)}).output], {"axis": 1})
    g.set_outputs([s.output], ["s"])
    g.validate_changes()
    g.set_attr(g.nodes()[-2], "perm", (0, 1))  # the transpose now keeps (N, 4): its output says (4, N)
    with pytest.raises(IRError, match="shape function gives"):
        g.validate_changes()


def _networkx_order(g: Graph) -> list[str]:
    order = nx.lexicographical_topological_sort(g.to_networkx(), key=lambda o: o._seq)
    return [o.name for o in order if isinstance(o, Node)]


def test_order_is_the_lexicographic_topological_sort_of_the_value_node_graph():
    # Rewiring older nodes to read newer values makes creation order and data order differ.
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 4)))
    op = GraphBuilder(g, name="t")
    a = op.relu(x)
    b = op.sigmoid(x)
    c = op.add(a, b)
    d = op.tanh(x)
    e = op.mul(d, d)
    f = op.split(e, axis=1, sizes=(1, 3))  # two outputs
    k = op.exp(op.neg(f[0]))
    g.set_input(g.producer(a), 0, e)
    g.set_input(g.producer(b), 0, d)
    h = op.concat(f[1], k, axis=1)
    g.set_outputs([c, h], ["c", "h"])
    g.validate()
    creation = sorted(g.nodes(), key=lambda n: n._seq)
    assert [n.name for n in g.nodes()] != [n.name for n in creation]
    assert [n.name for n in g.nodes()] == _networkx_order(g)
    assert [n.name for n in g.copy().nodes()] == _networkx_order(g)


def test_op_counts_follow_adds_and_removes():
    g = small_graph()
    assert g.has_op("relu") and g.has_op("softmax", "dense") and not g.has_op("softmax")
    relu = g.nodes()[1]
    g.set_outputs([relu.inputs[0]], ["y"])
    g.remove_node(relu)
    assert not g.has_op("relu") and g.copy().has_op("dense")


def _sweep_everything(graph: Graph, rules: list[RewriteRule]) -> bool:
    """The rewrite engine without its filters: every rule at every node, every sweep."""
    changed = False
    for _ in range(100):
        fired = False
        for node in graph.nodes():
            if not alive(graph, node):
                continue
            for rule in rules:
                m, _ = rule.find(graph, node)
                if m is not None:
                    rule.apply(graph, m)
                    fired = changed = True
                    break
        if not fired:
            return changed
    return changed


def _rules() -> list[RewriteRule]:
    def one(op, x, y):
        return op.add(x, op.mul(y, 1.0))
    return [
        # commutative: matches add(mul(y, 1), x) too
        RewriteRule("add_mul_one", one, lambda op, x, y: op.add(x, y)),
        RewriteRule("relu_relu", lambda op, x: op.relu(op.relu(x)), lambda op, x: op.relu(x)),
        # an attribute in the pattern: only softmax over axis 1 of a transpose (0, 1) is folded
        RewriteRule("softmax_of_identity_transpose",
                    lambda op, x: op.softmax(op.transpose(x, perm=(0, 1)), axis=1),
                    lambda op, x: op.softmax(x, axis=1)),
        # an omitted optional input in the pattern
        RewriteRule("dense_nobias_relu", lambda op, x, w: op.relu(op.dense(x, w, None)),
                    lambda op, x, w: op.dense(x, w, None, activation="relu")),
    ]


def _rewrite_case() -> Graph:
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", 4)))
    y = g.add_input("y", TensorType(("N", 4)))
    op = GraphBuilder(g, name="t")
    one = op.const(np.ones((), np.float32))
    s1 = op.add(op.mul(y, one), x)          # reversed order
    s2 = op.add(x, op.mul(y, one))
    s3 = op.add(x, op.mul(y, op.const(np.full((), 2.0, np.float32))))  # no match: the constant is 2
    r = op.relu(op.relu(op.relu(s1)))
    t1 = op.softmax(op.transpose(s2, perm=(0, 1)), axis=1)
    t2 = op.softmax(op.transpose(s3, perm=(1, 0)), axis=1)  # no match: another perm
    w = op.const(np.eye(4, dtype=np.float32))
    d = op.relu(op.dense(r, w))
    g.set_outputs([d, t1, t2], ["d", "t1", "t2"])
    return g


def test_rule_filters_give_what_trying_every_rule_everywhere_gives():
    fast, slow = _rewrite_case(), _rewrite_case()
    assert apply_rules(fast, _rules())
    assert _sweep_everything(slow, _rules())
    fast.validate()
    assert format_graph(fast) == format_graph(slow)
    assert sorted(fast.op_types()) == ["add", "add", "add", "dense", "mul", "relu", "softmax", "softmax",
                                       "transpose"]


def test_rules_whose_ops_are_absent_leave_the_graph_alone():
    g = small_graph()
    text = format_graph(g)
    assert not apply_rules(g, [_rules()[2]])
    assert format_graph(g) == text
