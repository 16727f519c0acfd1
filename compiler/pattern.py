"""Pattern rewriting in the IR's own builder language (after onnxscript's rewriter).

A rule is three functions:

    def pattern(op, x):            return op.relu(op.relu(x))
    def rewrite(op, x):            return op.relu(x)
    def check(graph, x) -> str | None:   ...   # optional: a reason when it must not fire

``pattern``'s parameters are pattern variables: each binds to one IR value, and
a variable used twice must bind to the same value (``op.mul(x, x)``). A number
in a pattern (``op.max(x, 0.0)``) matches a constant whose every element equals
it. ``_capture="name"`` on a pattern op binds the matched Node under that name,
so ``check``/``rewrite`` can read its attributes; attributes given in the
pattern must be equal for a match. Commutative ops (declared so in the
registry) match in either input order.

``rewrite`` receives a GraphBuilder positioned at the matched root (new nodes
take its origin) and the bindings; it returns the replacement value(s).
Intermediate matched nodes must not be read outside the match (otherwise the
rewrite would duplicate work): such a match is skipped.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.ir import Graph, Node, Value
from kcc.ops.registry import get_op


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Literal:
    value: float


@dataclass
class PatternOp:
    op: str
    inputs: list[Any]
    attrs: dict[str, Any]
    capture: str | None = None
    output: int = 0
    outputs: list["PatternOp"] = field(default_factory=list)
    # ``attrs`` as the op declares them (normalized), computed on the first match attempt.
    _normalized: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def normalized_attrs(self) -> dict[str, Any]:
        if self._normalized is None:
            opdef = get_op(self.op)
            self._normalized = {k: opdef.normalize_attrs({k: want}, "pattern")[k] for k, want in self.attrs.items()}
        return self._normalized

    def heads(self, graph: Graph, v: Value) -> Node | None:
        """The node producing ``v`` when it passes this pattern op's own tests (op, output
        slot, attributes), before its inputs are looked at; else None."""
        node = graph.producer(v)
        if node is None or node.op != self.op or node.outputs[self.output] is not v:
            return None
        if self.attrs:
            attrs = node.attrs
            for k, want in self.normalized_attrs().items():
                if attrs.get(k) != want:
                    return None
        return node


class PatternBuilder:
    """``op.<name>(...)`` in a pattern function builds a PatternOp tree."""

    def __getattr__(self, op: str) -> Callable[..., PatternOp]:
        if op.startswith("_"):
            raise AttributeError(op)
        get_op(op)

        def make(*inputs: Any, _capture: str | None = None, _output: int = 0, **attrs: Any) -> PatternOp:
            ins = [Literal(float(x)) if isinstance(x, (int, float)) else x for x in inputs]
            return PatternOp(op, ins, attrs, _capture, _output)

        return make


@dataclass
class Match:
    root: Node
    bindings: dict[str, Any]
    nodes: list[Node]


def _const_equals(v: Value, target: float) -> bool:
    if not v.is_const or v.const.size == 0:
        return False
    c = np.asarray(v.const, dtype=np.float64)
    # Relative to the target only: float32 rounding of a written-out constant. A target of
    # 0 matches 0 exactly (an RMS norm's epsilon 1e-6 is not a neutral "+ 0").
    return bool(np.all(np.abs(c - target) <= 1e-6 * abs(target)))


class Matcher:
    def __init__(self, graph: Graph):
        self.graph = graph

    def match_value(self, pat: Any, v: Value, b: dict[str, Any], nodes: list[Node]) -> Iterator[tuple[dict, list]]:
        if isinstance(pat, Var):
            bound = b.get(pat.name)
            if bound is None:
                yield {**b, pat.name: v}, nodes
            elif bound is v:
                yield b, nodes
            return
        if isinstance(pat, Literal):
            if _const_equals(v, pat.value):
                yield b, nodes
            return
        if not isinstance(pat, PatternOp):
            raise IRError(f"bad pattern element {pat!r}")
        node = pat.heads(self.graph, v)
        if node is None:
            return
        if pat.capture:
            if pat.capture in b and b[pat.capture] is not node:
                return
            b = {**b, pat.capture: node}
        if node in nodes:
            # Shared subexpression reached twice: it matched already.
            yield b, nodes
            return
        nodes = nodes + [node]
        orders = [list(node.inputs)]
        if get_op(node.op).commutative and len(node.inputs) == 2:
            orders.append(list(reversed(node.inputs)))
        if len(pat.inputs) != len(node.inputs):
            return
        for ins in orders:
            yield from self._match_inputs(pat.inputs, ins, b, nodes)

    def _match_inputs(self, pats: list[Any], vals: list[Value | None], b: dict, nodes: list) -> Iterator[tuple[dict, list]]:
        if not pats:
            yield b, nodes
            return
        p, v = pats[0], vals[0]
        if v is None:
            if p is None:
                yield from self._match_inputs(pats[1:], vals[1:], b, nodes)
            return
        if p is None:
            return
        for b2, n2 in self.match_value(p, v, b, nodes):
            yield from self._match_inputs(pats[1:], vals[1:], b2, n2)


@dataclass
class RewriteRule:
    """A named pattern -> replacement rule with an optional side condition."""

    name: str
    pattern: Callable[..., PatternOp]
    rewrite: Callable[..., Any]
    check: Callable[..., str | None] | None = None

    def __post_init__(self) -> None:
        params = list(inspect.signature(self.pattern).parameters)[1:]
        self._vars = params
        self._root = self.pattern(PatternBuilder(), *[Var(p) for p in params])
        if not isinstance(self._root, PatternOp):
            raise IRError(f"rule {self.name}: a pattern must end in an op")

    @property
    def root_op(self) -> str:
        """The IR op at the root of the pattern (the op the rule rewrites)."""
        return self._root.op

    def find(self, graph: Graph, node: Node) -> tuple[Match | None, str | None]:
        """The first match rooted at ``node`` that passes check; else (None, last reason)."""
        root = self._root
        if node.op != root.op:
            return None, None
        if not self._may_match(graph, node):
            return None, None
        reason = None
        matcher = Matcher(graph)
        for b, nodes in matcher.match_value(root, node.outputs[root.output], {}, []):
            inner = set(id(n) for n in nodes[1:])
            escaped = False
            for n in nodes[1:]:
                for out in n.outputs:
                    if graph.is_output(out) or any(id(u) not in inner and u is not node for u in graph.users(out)):
                        escaped = True
            if escaped:
                reason = "an intermediate value is used outside the pattern"
                continue
            if self.check is not None:
                reason = self.check(graph, **b)
                if reason:
                    continue
            return Match(node, b, nodes), None
        return None, reason

    def _may_match(self, graph: Graph, node: Node) -> bool:
        """False when no match can be rooted at ``node``: a quick look at the root and its inputs.

        It repeats the tests the matcher makes first (the root's output slot,
        attributes and arity; each input pattern op's own tests on the value
        at its slot, in either order for a commutative op), without the
        generators: most candidate nodes of a large graph fail there.
        """
        root = self._root
        if root.heads(graph, node.outputs[root.output]) is not node:
            return False
        pats, ins = root.inputs, node.inputs
        if len(pats) != len(ins):
            return False
        if self._inputs_may_match(graph, pats, ins):
            return True
        return len(ins) == 2 and get_op(node.op).commutative and self._inputs_may_match(graph, pats, ins[::-1])

    def fits(self, shape: tuple[str | None, ...]) -> bool:
        """Whether a node of ``shape`` (``input_shape``) may root a match: each input
        pattern op's op is the op producing the value at its slot, an omitted input
        where the pattern has one, in either order for a commutative op."""
        root = self._root
        pats = root.inputs
        if shape[0] != root.op or len(shape) != len(pats) + 1:
            return False
        ins = shape[1:]
        if _fits(pats, ins):
            return True
        return len(ins) == 2 and get_op(root.op).commutative and _fits(pats, ins[::-1])

    @staticmethod
    def _inputs_may_match(graph: Graph, pats: list[Any], ins: list[Value | None]) -> bool:
        for p, v in zip(pats, ins):
            if (p is None) != (v is None):
                return False
            if isinstance(p, PatternOp) and p.heads(graph, v) is None:
                return False
        return True

    def apply(self, graph: Graph, match: Match) -> None:
        root = match.root
        op = GraphBuilder(graph, origin=root.origin, name=root.origin)
        new = self.rewrite(op, **match.bindings)
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        olds = [root.outputs[self._root.output]] if len(new) == 1 else root.outputs
        for old, nv in zip(olds, new):
            if old.type != nv.type:
                raise IRError(f"rule {self.name} replaced {old!r} by {nv!r} of another type")
            graph.replace_all_uses(old, nv)
        # Remove the matched nodes that are now dead, users before producers:
        # repeat until nothing more goes (a shared inner node dies last).
        pending = list(match.nodes)
        while True:
            dead = [n for n in pending if alive(graph, n)
                    and all(not graph.uses(o) and not graph.is_output(o) for o in n.outputs)]
            if not dead:
                break
            for n in dead:
                graph.remove_node(n)
                # A constant only the removed node read goes with it.
                for v in n.inputs:
                    if v is not None and v.is_const and graph.has_value(v.name) and graph.value(v.name) is v \
                            and not graph.uses(v) and not graph.is_output(v):
                        graph.remove_value(v)
            pending = [n for n in pending if n not in dead]


def _fits(pats: list[Any], ins: tuple[str | None, ...]) -> bool:
    for p, got in zip(pats, ins):
        if (p is None) != (got is None) or (isinstance(p, PatternOp) and p.op != got):
            return False
    return True


def input_shape(graph: Graph, node: Node) -> tuple[str | None, ...]:
    """``node``'s op, then per input slot the op producing it (``""`` for a constant or
    a graph input, None for an omitted input): what ``RewriteRule.fits`` reads."""
    producer = graph.producer
    shape: list[str | None] = [node.op]
    for v in node.inputs:
        if v is None:
            shape.append(None)
        else:
            p = producer(v)
            shape.append("" if p is None else p.op)
    return tuple(shape)


def apply_rules(graph: Graph, rules: list[RewriteRule], max_iterations: int = 100) -> bool:
    """Apply rules until none fires (a fixed point) or ``max_iterations`` sweeps.

    A sweep visits the graph's nodes in order and, at each node still alive,
    applies the first rule (in list order) that matches there. Only the rules
    that fit the node's ``input_shape`` are tried (the others cannot match; the
    answer is kept per shape, of which a graph has few), only nodes of an op some
    rule is rooted at are visited, and a graph with none of those ops is not
    swept at all.
    """
    by_op: dict[str, list[RewriteRule]] = {}
    for rule in rules:
        by_op.setdefault(rule.root_op, []).append(rule)
    fitting: dict[tuple[str | None, ...], list[RewriteRule]] = {}
    changed = False
    for _ in range(max_iterations):
        if not graph.has_op(*by_op):
            return changed
        fired = False
        for node in graph.nodes():
            candidates = by_op.get(node.op)
            if candidates is None or not alive(graph, node):
                continue
            shape = input_shape(graph, node)
            here = fitting.get(shape)
            if here is None:
                here = fitting[shape] = [r for r in candidates if r.fits(shape)]
            for rule in here:
                m, _ = rule.find(graph, node)
                if m is not None:
                    rule.apply(graph, m)
                    fired = changed = True
                    break
        if not fired:
            return changed
    warnings.warn(f"rewrite rules {[r.name for r in rules]} still firing after {max_iterations} sweeps; stopped there")
    return changed


def alive(graph: Graph, node: Node) -> bool:
    """Whether ``node`` is still in ``graph`` (a rewrite may have removed it meanwhile)."""
    try:
        return graph.node(node.name) is node
    except KeyError:
        return False
