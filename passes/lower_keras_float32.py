"""lower_keras_float32: a float16 model (Core ML fp16 ML Programs) becomes float32 for Keras.

Keras layers keep float32 variables and a user fine-tunes in float32, so
float16 weights come back as float32 (exact: every f16 is an f32) and the
f32<->f16 casts coremltools puts at the boundary and around each op go.
The model then computes in float32: its outputs differ from the fp16
source's by the source's own fp16 rounding, and are closer to the model
the fp16 file was made from.

Before::

    %x16: f16[N,3,20,12] = cast(%x) {to='f16'}
    %c: f16[N,8,20,12] = conv(%x16, %w16, %b16)      // w16: const f16
    %y: f32[N,8,20,12] = cast(%c) {to='f32'}

After::

    %c: f32[N,8,20,12] = conv(%x, %w, %b)            // w: const f32

Not changed: casts to or from integer and bool types.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.ir import Graph, TensorType
from kcc.passes.base import Pass, register_pass

_FLOATS = ("f16", "f32")


@register_pass
@dataclass
class LowerKerasFloat32(Pass):
    name = "lower_keras_float32"

    def run(self, graph: Graph) -> bool:
        changed = False
        for v in graph.constants():
            if v.dtype == "f16":
                wide = graph.add_const(v.const.astype(np.float32), f"{v.name}_f32")
                graph.replace_all_uses(v, wide)
                graph.remove_value(v)
                changed = True
        for v in graph.inputs:
            if v.dtype == "f16":
                graph.retype(v, TensorType(v.shape, "f32"))
                changed = True
        for node in graph.nodes():
            x = node.inputs[0] if node.inputs else None
            if node.op == "cast" and node.attrs["to"] in _FLOATS and x is not None and x.dtype in _FLOATS:
                graph.replace_all_uses(node.output, x)
                graph.remove_node(node)
                changed = True
                continue
            for key in ("to", "dtype"):
                if node.attrs.get(key) == "f16":
                    graph.set_attr(node, key, "f32")
                    changed = True
            for out in node.outputs:
                if out.dtype == "f16":
                    graph.retype(out, TensorType(out.shape, "f32"))
                    changed = True
        return changed
