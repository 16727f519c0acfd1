"""fold_identity: remove ``identity`` nodes (what Dropout and friends become at import).

Before::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b)
    %dropout: f32[N,32,24,24] = identity(%conv)
    %relu: f32[N,32,24,24] = relu(%dropout)

After::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b)
    %relu: f32[N,32,24,24] = relu(%conv)

An identity that maps a graph input straight to a graph output is kept: the
model would otherwise have an output that is its own input.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ir import Graph
from kcc.passes.base import Pass, register_pass


@register_pass
@dataclass
class FoldIdentity(Pass):
    name = "fold_identity"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.nodes():
            if node.op != "identity":
                continue
            src, out = node.inputs[0], node.output
            if graph.is_output(out) and (src in graph.inputs or graph.is_output(src)):
                continue
            graph.replace_all_uses(out, src)
            graph.remove_node(node)
            changed = True
        return changed
