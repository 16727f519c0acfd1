"""fuse_activation: move an activation into its producer's ``activation`` attribute.

Only for targets that have the fused form (the backend lists them in
``fusable``: producer op -> activations it can carry). ONNX and Core ML
NeuralNetwork have no conv/dense with a built-in activation, so their pipelines
pass an empty table and this pass leaves their graphs alone; the reference
interpreter and Keras-style emitters do fuse.

Before (``fusable={"conv": ("relu",)}``)::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b)
    %relu: f32[N,32,24,24] = relu(%conv)

After::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b) {activation='relu'}

Not fused: the producer already carries an activation, or its output has
another reader (the pre-activation value is still needed), or the producer
output is a graph output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kcc.ir import Graph
from kcc.passes.base import Pass, register_pass


@register_pass
@dataclass
class FuseActivation(Pass):
    name = "fuse_activation"
    after = ("fold_identity", "fold_batchnorm")
    fusable: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.nodes():
            allowed = self.fusable.get(node.op, ())
            if not allowed or node.attrs.get("activation", "linear") != "linear":
                continue
            user = graph.single_user(node.output)
            if user is None or user.op not in allowed or user.attrs.get("approximate", False):
                continue
            act_out = user.output
            graph.set_attr(node, "activation", user.op)
            graph.replace_all_uses(act_out, node.output)
            graph.remove_node(user)
            changed = True
        return changed
