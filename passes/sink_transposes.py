"""sink_transposes: hold a region in the layout a transpose came from, so the transposes around it cancel.

The frontends write the IR channels-first (kcc.layout) and put explicit
``transpose`` nodes where a computation needs Keras order (a model's
boundary, an attention block, a Flatten). For a sequence ``(N, T, F)`` that
puts a transpose at the input, ``dense`` becomes a 1x1 conv and last-axis
LayerNormalization a decomposition. This pass moves transposes down through
the ops that do not care about layout (``kcc.passes._layout_rules``), until
they meet their inverses and vanish.

Before (a Keras ``Input((T, 16))`` -> Dense(8) -> LayerNormalization, ONNX boundary)::

    %x_to_ir: f32[N,16,T] = transpose(%x) {perm=(0, 2, 1)}
    %d: f32[N,8,T] = dense(%x_to_ir, %w, %b)
    %ln: f32[N,8,T] = layer_norm(%d, %g, %beta) {axes=(1,)}
    %y: f32[N,T,8] = transpose(%ln) {perm=(0, 2, 1)}

After::

    %mm: f32[N,T,8] = matmul(%x, %w)
    %d: f32[N,T,8] = add(%mm, %b)
    %y: f32[N,T,8] = layer_norm(%d, %g, %beta) {axes=(2,)}

How: each transpose ``t = transpose(x, q)`` seeds a *region* (and when that
does not pay, so does a value above ``t``: the transpose moves up through the
layout-agnostic ops that produce its input, ``hoist_tops``, and the region
grows from there; that is how a sequence reshaped from an image in IR layout
reaches the Keras-order attention below it with one transpose). Walking the
graph in order, a node joins when it reads region values and its rule accepts
them (every other input a constant, or another transpose's output, which joins
as a further seed); a transpose that reads a region value joins and composes.
Every region value ``v`` is then held as ``v_new`` with ``v == transpose(v_new,
q_v)``. The region is rewritten only when that pays: seeds and composed-away
transposes count -1, each region value that a node outside the region (or a
graph output) reads with a non-identity ``q_v`` costs one new transpose, +1,
and so does the transpose a region started above ``t`` begins with. The sum
(``delta``) must not be positive. Nodes the held layout makes cheaper
(``dense`` on rank > 2 -> ``matmul``; ``layer_norm``/``rms_norm`` onto the
trailing axes, one ONNX op) count +1, dearer -1 (``gain``); the region is
rewritten when ``gain - delta > 0``. So the graph never gains a transpose; a
region seeded at a transpose also never puts one more on any path (every path
into it starts at a seed), while one started above a transpose may put the one
it begins with on a path that had none (a residual around the attention it
reaches), paid for by the transposes it removes. Transposes of constants fold
into new constants first.

Not moved (``plan().reasons`` says why, per node): ops without a rule (conv,
pooling, reshape, matmul, recurrent ops ...), operands computed outside the
region that are not transposes, ranks that differ, a dense whose contracted
axis would not be the last. A CNN's input transpose meets a conv first: its
region is empty and it stays.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from kcc.builder import GraphBuilder
from kcc.ir import Graph, Node, Value
from kcc.passes._layout_rules import BROADCAST, ELEMENTWISE, RULES, Perm, Site, compose, inverse, is_identity
from kcc.passes.base import Pass, register_pass
from kcc.pattern import alive


@dataclass
class Plan:
    """A candidate region grown from one seed transpose."""

    seed: Node
    # Hoisting: the region starts at this value (its producer stays), held as a new
    # ``transpose(top, inverse(q))`` that the rewrite adds (+1).
    top: Value | None = None
    held: dict[str, Perm] = field(default_factory=dict)    # value name -> q: value == transpose(held value, q)
    seeds: list[Node] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)        # member nodes that are not transposes
    composed: list[Node] = field(default_factory=list)     # member transposes reading region values
    reasons: dict[str, str] = field(default_factory=dict)  # node name -> why it stayed outside
    cheaper: list[str] = field(default_factory=list)     # nodes the held layout makes cheaper (+) or dearer (-)
    gain: int = 0
    delta: int = 0                                         # transposes after minus before

    def members(self) -> set[str]:
        return {n.name for n in self.seeds} | {s.node.name for s in self.sites} | {n.name for n in self.composed}

    @property
    def fires(self) -> bool:
        # Never more transposes; then each transpose removed and each op made cheaper counts one.
        return self.delta <= 0 and self.gain - self.delta > 0

    def why(self) -> str:
        """One line: what the region would do, and why it does or does not fire."""
        verdict = "fires" if self.fires else "stays"
        stays = "; ".join(f"{k}: {v}" for k, v in self.reasons.items())
        return (f"{self.seed.name}: {verdict} (transposes {self.delta:+d}, {len(self.sites)} ops moved"
                + (f", work: {', '.join(self.cheaper)}" if self.cheaper else "")
                + (f"; outside: {stays}" if stays else "") + ")")


def _seed(plan: Plan, t: Node) -> None:
    plan.seeds.append(t)
    plan.held[t.output.name] = t.attrs["perm"]


def plan(graph: Graph, seed: Node, top: Value | None = None) -> Plan:
    """Grow the region of ``seed`` (a transpose) and count what rewriting it would save.

    With ``top`` (a value above ``seed``, see ``hoist_tops``) the region starts at
    ``top`` instead: ``top`` is held as ``transpose(top, seed's perm)``, one new
    transpose, and ``seed`` joins the region where it reads a held value.
    """
    p = Plan(seed, top)
    order = graph.nodes()
    if top is None:
        _seed(p, seed)
        start = order.index(seed) + 1
    else:
        p.held[top.name] = inverse(seed.attrs["perm"])
        prod = graph.producer(top)
        start = order.index(prod) + 1 if prod is not None else 0
    for node in order[start:]:
        ins = node.inputs
        if not any(v is not None and v.name in p.held and not is_identity(p.held[v.name]) for v in ins):
            continue
        if node.op == "transpose":
            p.composed.append(node)
            p.held[node.output.name] = compose(p.held[ins[0].name], node.attrs["perm"])
            continue
        rule = RULES.get(node.op)
        if rule is None:
            p.reasons[node.name] = f"{node.op} has no layout rule"
            continue
        perms: list[Perm | None] = []
        joined: list[Node] = []
        for i, v in enumerate(ins):
            if v is not None and v.name in p.held:
                perms.append(p.held[v.name])
                continue
            prod = graph.producer(v) if v is not None else None
            if prod is not None and prod.op == "transpose" and not is_identity(prod.attrs["perm"]) \
                    and (rule.held_inputs is None or i in rule.held_inputs):
                joined.append(prod)
                perms.append(prod.attrs["perm"])
            else:
                perms.append(None)
        site = Site(node, perms)
        reason = rule.check(site)
        if reason is None and joined and any(q is not None and q != site.q for q in perms):
            reason = "its inputs are held with different transposes"
        if reason:
            p.reasons[node.name] = reason
            continue
        for t in joined:
            if t.output.name not in p.held:
                _seed(p, t)
        p.sites.append(site)
        gain = rule.cheaper(site)
        if gain:
            p.gain += gain
            p.cheaper.append(f"{node.name} {gain:+d}")
        for out, q in zip(node.outputs, _out_perms(site)):
            p.held[out.name] = q
    _count(graph, p)
    return p


def _out_perms(site: Site) -> list[Perm]:
    """The output permutations of a site, from a dry run of its rule on a scratch graph."""
    scratch = Graph("scratch")
    ins = []
    for v, q in zip(site.node.inputs, site.perms):
        if v is None:
            ins.append(None)
        elif v.is_const:
            ins.append(scratch.add_const(v.const, v.name))
        else:
            shape = v.shape if q is None else tuple(v.shape[i] for i in np.argsort(q))
            ins.append(scratch.add_input(v.name, v.type.__class__(shape, v.dtype)))
    _, perms = RULES[site.node.op].rewrite(GraphBuilder(scratch), site, ins)
    return perms


def _count(graph: Graph, p: Plan) -> None:
    members = p.members()
    delta = -len(p.seeds) - len(p.composed) + (p.top is not None)
    for name, q in p.held.items():
        if is_identity(q) or (p.top is not None and name == p.top.name):
            continue
        v = graph.value(name)
        if graph.is_output(v) or any(u.name not in members for u in graph.users(v)):
            delta += 1
    p.delta = delta


def rewrite(graph: Graph, p: Plan) -> None:
    """Rewrite the region of ``p``: members compute on held values; outside readers get one transpose each."""
    new: dict[str, Value] = {t.output.name: t.inputs[0] for t in p.seeds}
    perm: dict[str, Perm] = {t.output.name: t.attrs["perm"] for t in p.seeds}
    if p.top is not None:
        op = GraphBuilder(graph, origin=p.seed.origin, name=p.seed.origin)
        new[p.top.name] = op.transpose(p.top, perm=p.seed.attrs["perm"])
        perm[p.top.name] = inverse(p.seed.attrs["perm"])
    members = p.members()
    composed = {n.name for n in p.composed}
    sites = {s.node.name: s for s in p.sites}
    region_order = [n for n in graph.nodes() if n.name in sites or n.name in composed]
    for node in region_order:
        op = GraphBuilder(graph, origin=node.origin, name=node.origin)
        if node.name in composed:
            src = node.inputs[0]
            new[node.output.name] = new[src.name]
            perm[node.output.name] = compose(perm[src.name], node.attrs["perm"])
            continue
        site = sites[node.name]
        site.perms = [perm.get(v.name) if v is not None else None for v in node.inputs]
        ins = [new.get(v.name, v) if v is not None else None for v in node.inputs]
        outs, qs = RULES[node.op].rewrite(op, site, ins)
        for old, nv, q in zip(node.outputs, outs, qs):
            new[old.name], perm[old.name] = nv, q
    # Outside readers and graph outputs read the held value back in IR layout.
    for name in list(new):
        if p.top is not None and name == p.top.name:
            continue  # its producer stays; its readers outside the region read it as before
        v = graph.value(name)
        outside = [(u, k) for u, k in graph.uses(v) if u.name not in members]
        if not outside and not graph.is_output(v):
            continue
        q, src = perm[name], new[name]
        prod = graph.producer(v)
        op = GraphBuilder(graph, origin=prod.origin if prod else None, name=prod.origin if prod else None)
        if is_identity(q):
            back = src
            if graph.is_output(v) and (src in graph.inputs or graph.is_output(src)):
                back = op.identity(src)
        else:
            back = op.transpose(src, perm=q)
        for u, k in outside:
            graph.set_input(u, k, back)
        if graph.is_output(v):
            graph.replace_all_uses(v, back)
    _remove_dead(graph, [n for n in graph.nodes() if n.name in members])


def _remove_dead(graph: Graph, nodes: list[Node]) -> None:
    for n in reversed(nodes):
        if all(not graph.uses(o) and not graph.is_output(o) for o in n.outputs):
            graph.remove_node(n)
            for v in n.inputs:
                if v is not None and v.is_const and not graph.uses(v) and not graph.is_output(v) \
                        and graph.has_value(v.name) and graph.value(v.name) is v:
                    graph.remove_value(v)


def fold_constant_transposes(graph: Graph) -> bool:
    """transpose(constant) -> the permuted constant."""
    changed = False
    for n in graph.nodes():
        if n.op == "transpose" and n.inputs[0].is_const:
            c = graph.add_const(np.ascontiguousarray(np.transpose(n.inputs[0].const, n.attrs["perm"])),
                                f"{n.inputs[0].name}_t")
            graph.replace_all_uses(n.output, c)
            _remove_dead(graph, [n])
            changed = True
    return changed


@register_pass
@dataclass
class SinkTransposes(Pass):
    """Move transposes through layout-agnostic ops where that removes transposes (see the module docstring)."""

    name = "sink_transposes"
    after = ("fold_flatten_transpose", "fold_layout_reshape", "fuse_normalization")
    max_rounds: int = 50

    def run(self, graph: Graph) -> bool:
        changed = fold_constant_transposes(graph)
        for _ in range(self.max_rounds):
            fired = False
            for t in graph.nodes():
                if t.op != "transpose" or not alive(graph, t) or is_identity(t.attrs["perm"]):
                    continue
                for top in (None, *hoist_tops(graph, t)):
                    p = plan(graph, t, top)
                    if p.fires:
                        rewrite(graph, p)
                        fired = changed = True
                        break
            if not fired:
                return changed
        warnings.warn(f"sink_transposes still moving transposes after {self.max_rounds} rounds; stopped there")
        return changed


# Ops a transpose can move above: one non-constant input of the output's rank, no other effect on layout.
HOISTABLE = frozenset(ELEMENTWISE) | frozenset(BROADCAST) | {"softmax", "log_softmax", "cumsum", "layer_norm",
                                                             "rms_norm"}


def hoist_tops(graph: Graph, t: Node) -> list[Value]:
    """Where a region for transpose ``t`` may start above it: the highest value reached by walking up
    through HOISTABLE producers, then ``t``'s own input (the region then takes ``t``'s other readers)."""
    v = t.inputs[0]
    prod = graph.producer(v)
    if prod is not None and prod.op == "transpose":
        return []  # a chain: the plain plan composes it
    tops, cur = [v], v
    while (prod := graph.producer(cur)) is not None and prod.op in HOISTABLE:
        moving = [x for x in prod.inputs if x is not None and not x.is_const]
        if len(moving) != 1 or moving[0].rank != cur.rank:
            break
        cur = moving[0]
    if cur is not v:
        tops.insert(0, cur)
    return tops


def explain(graph: Graph) -> list[str]:
    """``Plan.why()`` of every transpose in ``graph`` (what the pass would do with each)."""
    return [plan(graph, t).why() for t in graph.nodes() if t.op == "transpose" and not is_identity(t.attrs["perm"])]
