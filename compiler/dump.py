"""Debugging dumps of the IR: the text form and a Graphviz picture per pipeline step.

Files are ``NN-<pass>.txt`` and ``NN-<pass>.dot`` (NN = position in the pipeline,
00 = the frontend's graph), plus ``NN-<pass>.svg`` when Graphviz's ``dot`` is on
the PATH.
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


def write(graph: Graph, directory: Path, index: int, step: str) -> list[Path]:
    """Write the text and picture of ``graph`` after pipeline step ``index`` (``step``)."""
    stem = directory / f"{index:02d}-{step}"
    txt, dot = stem.with_suffix(".txt"), stem.with_suffix(".dot")
    txt.write_text(format_graph(graph))
    dot.write_text(to_dot(graph))
    written = [txt, dot]
    exe = shutil.which("dot")
    if exe:
        svg = stem.with_suffix(".svg")
        subprocess.run([exe, "-Tsvg", str(dot), "-o", str(svg)], check=False, capture_output=True, timeout=60)
        if svg.exists():
            written.append(svg)
    return written
