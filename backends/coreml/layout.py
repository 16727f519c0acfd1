"""The Core ML blob-layout analysis: rank-5 or ND, decided once per model before emission.

A NeuralNetwork model holds its blobs either in the rank-5 layout of
specification 1 (``[Seq, Batch, C, H, W]``, what the old Keras converter
emitted and every Core ML version runs) or in the ND layout of specification 4
(``EXACT_ARRAY_MAPPING``). The layouts do not mix within a model. kcc keeps
rank 5 when every node has a rank-5 form and otherwise uses ND for the whole
model.

Every emitter module registers, next to its emitter, a ``rank5`` check
(``@rank5_check("softmax")``): given the analysis context and a node, it
returns why the node needs ND layers, or None. :func:`plan_layout` runs the
checks in graph order, then checks that every model input and output has a
CHW form (features are declared in it), and returns a :class:`BlobLayout`; the emitter reads it
(``ctx.nd``, ``ctx.seq``) and never changes it. An op without a check has a
rank-5 form for every node (activations, unary math, the recurrent layers,
custom layers). An emitter that reaches an ND-only branch in the rank-5 layout
reports a kcc bug (``ctx.need_nd``) instead of retrying.

Time-major recurrent sequences are ``[T, N, C, 1, 1]`` blobs in the rank-5
layout (``sequence_values``); only the ops that know it may read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kcc.backends.coreml.context import RANK5_CHECKS, CoremlContext, origin_of
from kcc.backends.coreml.emit_recurrent import sequence_values
from kcc.ir import Graph, Node


@dataclass(frozen=True)
class BlobLayout:
    """The layout the emitter writes, and what decided it."""

    nd: bool
    # The first node that needs ND layers and why (None when rank 5, or when forced).
    node: Node | None = None
    why: str | None = None
    # Names of the time-major values held as [T, N, C, 1, 1] (rank-5 layout only).
    sequences: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        if not self.nd:
            return "rank-5 layout (specification 1)"
        where = f"node {self.node.name} ({self.node.op}){origin_of(self.node)}" if self.node else "the model"
        return f"{where}: ND layers ({self.why})"


def plan_layout(graph: Graph, *, force_nd: bool = False, sizes: dict[str, int] | None = None) -> BlobLayout:
    """Rank 5 when every node's check passes; else ND, naming the first node that needs it.

    ``sizes`` gives the dynamic input axes the sizes the layers are written for (flexible.py).
    """
    if force_nd:
        return BlobLayout(True, None, "force_nd=True")
    seq = frozenset(sequence_values(graph))
    probe = CoremlContext(graph, None, nd=False, seq=set(seq), sizes=dict(sizes or {}))
    for node in graph.nodes():
        check = RANK5_CHECKS.get(node.op)
        why = check(probe, node) if check is not None else None
        if why is not None:
            return BlobLayout(True, node, why)
    for kind, values in (("input", graph.inputs), ("output", graph.outputs)):
        for v in values:
            why = probe.chw_reason(v)   # features are declared in the CHW form
            if why is not None:
                return BlobLayout(True, graph.producer(v), f"model {kind} {v.name}: {why}")
    return BlobLayout(False, sequences=seq)


__all__ = ["BlobLayout", "plan_layout"]
