"""Debugging dumps of the IR: the text form and a Graphviz picture per pipeline step.

Files are ``NN-<pass>.txt``, ``NN-<pass>.dot`` and ``NN-<pass>.svg`` (NN = position
in the pipeline, 00 = the frontend's graph). The SVG comes from Graphviz's ``dot``
when it is on the PATH, else from a small built-in layered renderer.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kcc.ir import Graph
from kcc.printer import format_graph, format_node


def banner(step: str, graph: Graph) -> str:
    return f"// ----- IR after {step} ({len(graph)} nodes) -----\n{format_graph(graph)}"


def _q(s: str) -> str:
    # Backslashes are kept: labels use Graphviz's own \\n line breaks.
    return '"' + s.replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: op nodes as boxes, graph inputs/outputs as ellipses, values on edges."""
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']
    nl = "\\n"
    for v in graph.inputs:
        label = _q(v.name + nl + str(v.type))
        lines.append(f'  {_q("in:" + v.name)} [shape=ellipse, fillcolor="#dff0d8", label={label}];')
    for name, v in zip(graph.output_names, graph.outputs):
        label = _q(name + nl + str(v.type))
        lines.append(f'  {_q("out:" + name)} [shape=ellipse, fillcolor="#f2dede", label={label}];')
    for node in graph.nodes():
        consts = [v for v in node.inputs if v is not None and v.is_const]
        label = node.op + nl + node.name
        interesting = {k: v for k, v in node.attrs.items() if k in ("strides", "kernel", "perm", "axis", "axes", "activation", "shape") and v not in ((), "linear", None)}
        if interesting:
            label += nl + ", ".join(f"{k}={v}" for k, v in interesting.items())
        if consts:
            label += nl + ", ".join(str(c.type) for c in consts)
        lines.append(f"  {_q('n:' + node.name)} [label={_q(label)}, tooltip={_q(format_node(node))}];")
    for node in graph.nodes():
        for v in node.inputs:
            if v is None or v.is_const:
                continue
            prod = graph.producer(v)
            src = "in:" + v.name if prod is None else "n:" + prod.name
            lines.append(f"  {_q(src)} -> {_q('n:' + node.name)} [label={_q(str(v.type))}];")
    for name, v in zip(graph.output_names, graph.outputs):
        prod = graph.producer(v)
        src = "in:" + v.name if prod is None else "n:" + prod.name
        lines.append(f"  {_q(src)} -> {_q('out:' + name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(graph: Graph) -> str:
    """A self-contained SVG picture of the graph, for machines without Graphviz.

    Layered layout: each node sits one row below the deepest of its producers;
    rows are centred; edges are straight lines. Plain, but always there.
    """
    nodes = graph.nodes()
    depth: dict[str, int] = {}
    for n in nodes:
        preds = [graph.producer(v) for v in n.inputs if v is not None and not v.is_const]
        depth[n.name] = 1 + max((depth[p.name] for p in preds if p is not None), default=0)
    rows: dict[int, list[str]] = {0: ["in:" + v.name for v in graph.inputs]}
    for n in nodes:
        rows.setdefault(depth[n.name], []).append("n:" + n.name)
    last = max(rows) + 1
    rows[last] = ["out:" + name for name in graph.output_names]
    labels: dict[str, list[str]] = {}
    for v in graph.inputs:
        labels["in:" + v.name] = [v.name, str(v.type)]
    for n in nodes:
        labels["n:" + n.name] = [f"{n.op}  {n.name}", ", ".join(str(v.type) for v in n.outputs)]
    for name, v in zip(graph.output_names, graph.outputs):
        labels["out:" + name] = [name, str(v.type)]
    box_w, box_h, gap_x, gap_y = 260, 38, 24, 30
    width = max(len(r) for r in rows.values()) * (box_w + gap_x) + gap_x
    pos: dict[str, tuple[float, float]] = {}
    for r, keys in rows.items():
        x0 = (width - len(keys) * (box_w + gap_x) + gap_x) / 2
        for i, k in enumerate(keys):
            pos[k] = (x0 + i * (box_w + gap_x), gap_y + r * (box_h + gap_y))
    height = gap_y + (last + 1) * (box_h + gap_y)

    def esc(t: str) -> str:
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    edges: list[tuple[str, str]] = []
    for n in nodes:
        for v in n.inputs:
            if v is None or v.is_const:
                continue
            p = graph.producer(v)
            edges.append(("in:" + v.name if p is None else "n:" + p.name, "n:" + n.name))
    for name, v in zip(graph.output_names, graph.outputs):
        p = graph.producer(v)
        edges.append(("in:" + v.name if p is None else "n:" + p.name, "out:" + name))
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line x1="{xa + box_w / 2:.0f}" y1="{ya + box_h:.0f}" x2="{xb + box_w / 2:.0f}" '
                   f'y2="{yb:.0f}" stroke="#777" stroke-width="1"/>')
    fills = {"in": "#dff0d8", "n": "#eef3fb", "out": "#f2dede"}
    for k, (x, y) in pos.items():
        fill = fills[k.split(":", 1)[0]]
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
                   f'stroke="#456"/>')
        for i, line in enumerate(labels[k]):
            text = esc(line if len(line) <= 42 else line[:40] + "...")
            out.append(f'<text x="{x + 8:.0f}" y="{y + 15 + i * 14:.0f}">{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(graph: Graph, directory: Path, index: int, step: str) -> list[Path]:
    """Write the text, the DOT source and an SVG picture of ``graph`` after step ``index``."""
    stem = directory / f"{index:02d}-{step}"
    txt, dot, svg = stem.with_suffix(".txt"), stem.with_suffix(".dot"), stem.with_suffix(".svg")
    txt.write_text(format_graph(graph))
    dot.write_text(to_dot(graph))
    exe = shutil.which("dot")
    if exe:
        subprocess.run([exe, "-Tsvg", str(dot), "-o", str(svg)], check=False, capture_output=True, timeout=60)
    if not svg.exists():
        svg.write_text(to_svg(graph))
    return [txt, dot, svg]
