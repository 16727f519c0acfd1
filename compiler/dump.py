"""Debugging dumps of the IR: the text form and a picture per pipeline step that changed the graph.

Files are ``NN-<pass>.txt``, ``NN-<pass>.dot`` and ``NN-<pass>.svg`` (NN = the
pass's position in the pipeline, 00 = the frontend's graph), written for the
frontend's graph and for every pass after which the graph's text differs from
the last one written (LLVM's ``-print-changed``); ``every_pass`` writes them
all. ``passes.log`` lists every pass, changed or not.

Pictures stay readable for graphs of a few hundred nodes: weights are not
boxes of their own but a small grey line in their consumer's box
(``w f32[64,3,7,7]``); the nodes one Keras layer became are framed together
and titled with the layer's name (a Graphviz cluster); edges carry no labels
past ``EDGE_LABEL_LIMIT`` nodes (every box shows its output's type). The SVG
comes from Graphviz's ``dot`` when it is on the PATH, else from a built-in
layered renderer that routes edges skipping rows (residual connections)
around the boxes instead of through them.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kcc.ir import Graph, Node
from kcc.printer import format_graph, format_node

EDGE_LABEL_LIMIT = 60
_ATTRS_SHOWN = ("strides", "kernel", "perm", "axis", "axes", "activation", "shape", "dilations", "groups")


def banner(step: str, graph: Graph) -> str:
    return f"// ----- IR after {step} ({len(graph)} nodes) -----\n{format_graph(graph)}"


def _q(s: str) -> str:
    # Backslashes are kept: labels use Graphviz's own \\n line breaks.
    return '"' + s.replace('"', '\\"') + '"'


def _esc(t: str) -> str:
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _weights(node: Node) -> str:
    """The node's constant inputs as one short line: ``w f32[64,3,7,7], b f32[64]``."""
    consts = [v for v in node.inputs if v is not None and v.is_const]
    return ", ".join(str(c.type) for c in consts)


def _attrs(node: Node) -> str:
    shown = {k: v for k, v in node.attrs.items() if k in _ATTRS_SHOWN and v not in ((), "linear", None)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _groups(graph: Graph) -> dict[str, list[Node]]:
    """Nodes by the Keras layer (origin) they came from, for origins with two or more nodes."""
    groups: dict[str, list[Node]] = {}
    for node in graph.nodes():
        if node.origin:
            groups.setdefault(node.origin, []).append(node)
    return {k: v for k, v in groups.items() if len(v) > 1}


def _edges(graph: Graph) -> list[tuple[str, str, str]]:
    """(source key, target key, value type) for every data edge, outputs included."""
    out = []
    for node in graph.nodes():
        for v in node.inputs:
            if v is None or v.is_const:
                continue
            prod = graph.producer(v)
            out.append(("in:" + v.name if prod is None else "n:" + prod.name, "n:" + node.name, str(v.type)))
    for name, v in zip(graph.output_names, graph.outputs):
        prod = graph.producer(v)
        out.append(("in:" + v.name if prod is None else "n:" + prod.name, "out:" + name, str(v.type)))
    return out


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: op boxes (weights as a line inside), inputs/outputs as ellipses, layers as clusters."""
    nl = "\\n"
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB; newrank=true;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8, color="#667"];']
    for v in graph.inputs:
        lines.append(f'  {_q("in:" + v.name)} [shape=ellipse, fillcolor="#dff0d8", label={_q(v.name + nl + str(v.type))}];')
    for name, v in zip(graph.output_names, graph.outputs):
        lines.append(f'  {_q("out:" + name)} [shape=ellipse, fillcolor="#f2dede", label={_q(name + nl + str(v.type))}];')

    def node_line(node: Node, indent: str) -> str:
        label = f"{node.op}{nl}{node.name}{nl}{', '.join(str(v.type) for v in node.outputs)}"
        for extra in (_attrs(node), _weights(node)):
            if extra:
                label += nl + extra
        return f"{indent}{_q('n:' + node.name)} [label={_q(label)}, tooltip={_q(format_node(node))}];"

    grouped = _groups(graph)
    in_group = {n.name for nodes in grouped.values() for n in nodes}
    for i, (origin, nodes) in enumerate(grouped.items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label={_q(origin)}; style="rounded,dashed"; color="#8899aa"; fontname="Helvetica"; '
                     f'fontsize=9;')
        lines += [node_line(n, "    ") for n in nodes]
        lines.append("  }")
    lines += [node_line(n, "  ") for n in graph.nodes() if n.name not in in_group]
    labelled = len(graph) <= EDGE_LABEL_LIMIT
    for src, dst, vtype in _edges(graph):
        label = f" [label={_q(vtype)}]" if labelled and dst.startswith("n:") else ""
        lines.append(f"  {_q(src)} -> {_q(dst)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(graph: Graph) -> str:
    """A self-contained SVG picture of the graph, for machines without Graphviz.

    Layered layout: each node sits one row below the deepest of its producers;
    rows are centred. An edge to the next row is a straight line; an edge that
    skips rows and would cross a box bows around the boxes on the right.
    Nodes of one Keras layer get a dashed frame titled with the layer's name.
    """
    nodes = graph.nodes()
    depth: dict[str, int] = {}
    for n in nodes:
        preds = [graph.producer(v) for v in n.inputs if v is not None and not v.is_const]
        depth[n.name] = 1 + max((depth[p.name] for p in preds if p is not None), default=0)
    rows: dict[int, list[str]] = {0: ["in:" + v.name for v in graph.inputs]}
    row_of: dict[str, int] = {k: 0 for k in rows[0]}
    for n in nodes:
        rows.setdefault(depth[n.name], []).append("n:" + n.name)
        row_of["n:" + n.name] = depth[n.name]
    last = max(rows) + 1
    rows[last] = ["out:" + name for name in graph.output_names]
    row_of.update({k: last for k in rows[last]})
    labels: dict[str, list[str]] = {}
    for v in graph.inputs:
        labels["in:" + v.name] = [v.name, str(v.type)]
    for n in nodes:
        labels["n:" + n.name] = [f"{n.op}  {n.name}", ", ".join(str(v.type) for v in n.outputs)]
        extra = "; ".join(x for x in (_attrs(n), _weights(n)) if x)
        if extra:
            labels["n:" + n.name].append(extra)
    for name, v in zip(graph.output_names, graph.outputs):
        labels["out:" + name] = [name, str(v.type)]

    box_w, line_h, gap_x, gap_y, margin = 300, 14, 40, 26, 30
    box_h = 10 + 3 * line_h
    width = max(len(r) for r in rows.values()) * (box_w + gap_x) + 2 * margin + 160
    pos: dict[str, tuple[float, float]] = {}
    for r, keys in rows.items():
        x0 = (width - 160 - len(keys) * (box_w + gap_x) + gap_x) / 2
        for i, k in enumerate(keys):
            pos[k] = (x0 + i * (box_w + gap_x), margin + 20 + r * (box_h + gap_y))
    height = margin + 20 + (last + 1) * (box_h + gap_y) + margin

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#667"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{margin}" y="{margin}" font-size="13" font-weight="bold">{_esc(graph.name)}: '
           f'{len(nodes)} nodes</text>']
    for origin, members in _groups(graph).items():
        xs = [pos["n:" + n.name][0] for n in members]
        ys = [pos["n:" + n.name][1] for n in members]
        x, y = min(xs) - 8, min(ys) - 16
        w, h = max(xs) + box_w + 8 - x, max(ys) + box_h + 6 - y
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="8" fill="#f7f9fc" '
                   f'stroke="#8899aa" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 6:.0f}" y="{y + 11:.0f}" font-size="9" fill="#556">{_esc(origin)}</text>')
    detour = 0
    for src, dst, _ in _edges(graph):
        (xa, ya), (xb, yb) = pos[src], pos[dst]
        x1, y1, x2, y2 = xa + box_w / 2, ya + box_h, xb + box_w / 2, yb
        between = [pos[k] for r in range(row_of[src] + 1, row_of[dst]) for k in rows[r]]
        blocked = [p for p in between if p[0] - 4 < max(x1, x2) and min(x1, x2) < p[0] + box_w + 4]
        if not blocked:
            out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#667" '
                       f'stroke-width="1" marker-end="url(#arrow)"/>')
            continue
        detour = (detour + 1) % 4
        side = max(p[0] for p in blocked) + box_w + 14 + 10 * detour
        xs1, xs2 = xa + box_w, xb + box_w
        ys1, ys2 = ya + box_h / 2, yb + box_h / 2
        out.append(f'<path d="M{xs1:.0f},{ys1:.0f} C{side:.0f},{ys1:.0f} {side:.0f},{ys1:.0f} {side:.0f},'
                   f'{(ys1 + ys2) / 2:.0f} S{side:.0f},{ys2:.0f} {xs2:.0f},{ys2:.0f}" fill="none" '
                   f'stroke="#c0504d" stroke-width="1.2" marker-end="url(#arrow)"/>')
    fills = {"in": "#dff0d8", "n": "#eef3fb", "out": "#f2dede"}
    for k, (x, y) in pos.items():
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="6" '
                   f'fill="{fills[k.split(":", 1)[0]]}" stroke="#456"/>')
        for i, line in enumerate(labels[k]):
            text = _esc(line if len(line) <= 48 else line[:46] + "...")
            style = ' fill="#777" font-size="9"' if i == 2 else (' font-weight="bold"' if i == 0 else "")
            out.append(f'<text x="{x + 8:.0f}" y="{y + 15 + i * line_h:.0f}"{style}>{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


class Dumper:
    """Writes a pipeline's dumps into one directory: the frontend's graph, then each pass that changed it.

    A pass counts as changed when the graph's text form differs from the last
    one written (what a reader sees), whatever the pass reported; with
    ``every_pass`` every pass is written. ``passes.log`` lists every pass with
    its number, node count and whether it changed the graph, so the gaps in
    the numbering are explained.
    """

    def __init__(self, directory: str | Path, *, every_pass: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.every_pass = every_pass
        self._last: str | None = None
        self._index = self.directory / "passes.log"
        self._index.write_text(f"{'NN':<4}{'pass':<32}{'nodes':>7}  graph\n")

    def write(self, graph: Graph, index: int, step: str, reported_changed: bool = True) -> list[Path]:
        text = format_graph(graph)
        changed = text != self._last
        written = changed or self.every_pass or index == 0
        state = "frontend" if index == 0 else ("changed" if changed else "unchanged")
        if index > 0 and changed != reported_changed:
            state += f" (the pass reported {'a change' if reported_changed else 'no change'})"
        if written:
            state += f", written as {index:02d}-{step}.*"
        with self._index.open("a") as f:
            f.write(f"{index:02d}  {step:<32}{len(graph):>7}  {state}\n")
        self._last = text
        return write(graph, self.directory, index, step, text=text) if written else []


def write(graph: Graph, directory: Path, index: int, step: str, text: str | None = None) -> list[Path]:
    """Write the text, the DOT source and an SVG picture of ``graph`` after step ``index``."""
    stem = directory / f"{index:02d}-{step}"
    txt, dot, svg = stem.with_suffix(".txt"), stem.with_suffix(".dot"), stem.with_suffix(".svg")
    txt.write_text(format_graph(graph) if text is None else text)
    dot.write_text(to_dot(graph))
    exe = shutil.which("dot")
    if exe:
        subprocess.run([exe, "-Tsvg", str(dot), "-o", str(svg)], check=False, capture_output=True, timeout=60)
    if not svg.exists():
        svg.write_text(to_svg(graph))
    return [txt, dot, svg]
