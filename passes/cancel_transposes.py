"""cancel_transposes: compose chains of transposes; drop those that compose to identity.

Before::

    %t1: f32[N,28,28,8] = transpose(%x) {perm=(0, 2, 3, 1)}
    %t2: f32[N,8,28,28] = transpose(%t1) {perm=(0, 3, 1, 2)}
    %y: f32[N,8,28,28] = relu(%t2)

After::

    %y: f32[N,8,28,28] = relu(%x)

A transpose that only moves size-1 axes (and keeps the others in order) is a
reshape in disguise and becomes one, so reshape folding can take it further.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.ir import Graph
from kcc.pattern import RewriteRule, apply_rules
from kcc.pipeline import Pass, register_pass


def _compose(p1: tuple[int, ...], p2: tuple[int, ...]) -> tuple[int, ...]:
    # transpose(transpose(x, p1), p2) == transpose(x, [p1[i] for i in p2])
    return tuple(p1[i] for i in p2)


def _pattern_chain(op, x):
    return op.transpose(op.transpose(x, _capture="inner"), _capture="outer")


def _rewrite_chain(op, x, inner, outer):
    perm = _compose(inner.attrs["perm"], outer.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return op.identity(x)
    return op.transpose(x, perm=perm)


def _pattern_identity(op, x):
    return op.transpose(x, _capture="t")


def _check_identity(graph, x, t):
    perm = t.attrs["perm"]
    if perm != tuple(range(len(perm))):
        return "not the identity permutation"
    return None


def _check_reshape_like(graph, x, t):
    perm = t.attrs["perm"]
    if perm == tuple(range(len(perm))):
        return "identity"
    kept = [p for p in perm if x.shape[p] != 1]
    if kept != sorted(kept):
        return "moves axes that are not size 1"
    if sum(1 for i, d in enumerate(_reshape_spec(x.shape, perm)) if d == -1) > 1:
        return "more than one moved symbolic dim: a reshape spec could not express it"
    return None


def _reshape_spec(shape, perm):
    """Reshape spec equal to transpose(perm) of ``shape``: 0 copies a symbolic dim in place."""
    out = [shape[p] for p in perm]
    return tuple(d if isinstance(d, int) else (0 if i < len(shape) and shape[i] == d else -1)
                 for i, d in enumerate(out))


def _rewrite_reshape_like(op, x, t):
    return op.reshape(x, shape=_reshape_spec(x.shape, t.attrs["perm"]))


RULES = [
    RewriteRule("transpose_chain", _pattern_chain, _rewrite_chain),
    RewriteRule("identity_transpose", _pattern_identity, lambda op, x, t: op.identity(x), _check_identity),
    RewriteRule("transpose_as_reshape", _pattern_identity, _rewrite_reshape_like, _check_reshape_like),
]


@register_pass
@dataclass
class CancelTransposes(Pass):
    name = "cancel_transposes"
    after = ("fold_flatten_transpose",)

    def run(self, graph: Graph) -> bool:
        from kcc.pipeline import get_pass
        changed = apply_rules(graph, RULES)
        if changed:
            get_pass("fold_identity")().run(graph)
        return changed
