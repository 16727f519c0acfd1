"""The transpose rules cancel_transposes applies and fold_layout_reshape applies alongside its own.

Kept out of both passes so that neither imports the other: a chain of
transposes composes into one; one that composes to the identity permutation
disappears (its readers read the input directly, so no ``identity`` node is left
for another pass to clean up); a transpose that only moves size-1 axes is a
reshape in disguise and becomes one. A transpose that swaps the last two axes of
a product of two transposed tensors moves onto its operands, (A B)^T = B^T A^T,
where both compose with the transposes already there: one transpose fewer, and
the one saved is of the product (attention's scores, traced from
``einsum("aecd,abcd->acbe", key, query)``, are (B, H, T, S)).
"""
from __future__ import annotations

from kcc.pattern import RewriteRule


def _forward(op, x, out):
    """``x`` itself in place of ``out``; an ``identity`` only where fold_identity would keep one
    (``out`` is a graph output and ``x`` is a graph input or another output)."""
    g = op.graph
    if g.is_output(out) and (x in g.inputs or g.is_output(x)):
        return op.identity(x)
    return x


def _compose(p1: tuple[int, ...], p2: tuple[int, ...]) -> tuple[int, ...]:
    # transpose(transpose(x, p1), p2) == transpose(x, [p1[i] for i in p2])
    return tuple(p1[i] for i in p2)


def _pattern_chain(op, x):
    return op.transpose(op.transpose(x, _capture="inner"), _capture="outer")


def _rewrite_chain(op, x, inner, outer):
    perm = _compose(inner.attrs["perm"], outer.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return _forward(op, x, outer.output)
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


def _swap_last(rank: int) -> tuple[int, ...]:
    return tuple(range(rank - 2)) + (rank - 1, rank - 2)


def _pattern_product(op, a, b):
    return op.transpose(op.matmul(op.transpose(a, _capture="ta"), op.transpose(b, _capture="tb")), _capture="t")


def _check_product(graph, a, b, ta, tb, t):
    rank = len(t.attrs["perm"])
    if t.attrs["perm"] != _swap_last(rank) or a.rank != rank or b.rank != rank:
        return "not a transpose of the last two axes of a product of equal-rank operands"
    return None


def _rewrite_product(op, a, b, ta, tb, t):
    swap = _swap_last(len(t.attrs["perm"]))
    return op.matmul(op.transpose(b, perm=_compose(tb.attrs["perm"], swap)),
                     op.transpose(a, perm=_compose(ta.attrs["perm"], swap)))


RULES = [
    RewriteRule("transpose_chain", _pattern_chain, _rewrite_chain),
    RewriteRule("transpose_of_product", _pattern_product, _rewrite_product, _check_product),
    RewriteRule("identity_transpose", _pattern_identity, lambda op, x, t: _forward(op, x, t.output), _check_identity),
    RewriteRule("transpose_as_reshape", _pattern_identity, _rewrite_reshape_like, _check_reshape_like),
]
