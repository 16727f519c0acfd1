"""dce: dead-code elimination -- nodes and constants that no output depends on.

Before::

    %a: f32[N,8] = relu(%x)
    %b: f32[N,8] = sigmoid(%x)      # read by nothing
    return %a

After::

    %a: f32[N,8] = relu(%x)
    return %a

Graph inputs are never removed (they are the model's interface).
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ir import Graph
from kcc.passes.base import Pass, register_pass


@register_pass
@dataclass
class DeadCodeElimination(Pass):
    name = "dce"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in reversed(graph.nodes()):
            if all(not graph.uses(v) and not graph.is_output(v) for v in node.outputs):
                graph.remove_node(node)
                changed = True
        for v in graph.constants():
            if not graph.uses(v) and not graph.is_output(v):
                graph.remove_value(v)
                changed = True
        return changed
