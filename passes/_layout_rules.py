"""Per-op rules of sink_transposes: how an op reads a tensor held in another layout.

A value ``v`` of a region that sink_transposes moves is *held* as ``v_new``
with a permutation ``q``: ``v == transpose(v_new, q)`` (IR axis ``i`` of ``v``
is axis ``q[i]`` of ``v_new``). A rule says whether an op can compute on the
held inputs directly (``check`` returns None, or the reason it cannot), and
builds that computation (``rewrite``): the op with its axes remapped through
``q``, constants permuted to match, and the permutation each output is held
with. Kept apart from the pass so the table reads as data:

* ``ELEMENTWISE``: shape-preserving unary ops; the output is held like the input.
* ``BROADCAST``: binary/ternary elementwise ops; every non-constant operand must
  be held with the same ``q`` at the output's rank; constants (of any lower
  rank: numpy broadcasting aligns them right) are expanded and permuted.
* axis ops (softmax, cumsum, reductions, concat, gather, slice, pad, split,
  squeeze, unsqueeze, tile, layer_norm, rms_norm): the axes are remapped; ops that drop or
  insert axes give their outputs the permutation of the axes that remain.
* ``dense`` contracts IR axis 1: when that is the held tensor's last axis it is
  ``matmul(x_new, w)`` (+ ``add`` of the bias) in the held layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kcc.builder import GraphBuilder
from kcc.ir import Node, Value
from kcc.ops.shapes import norm_axes, norm_axis

Perm = tuple[int, ...]


@dataclass
class Site:
    """One node of a candidate region: its inputs as held (``perms[i]`` is None for inputs held as they are)."""

    node: Node
    perms: list[Perm | None]

    @property
    def q(self) -> Perm:
        """The permutation the node's held inputs share (rules check that they share one)."""
        return next(p for p in self.perms if p is not None)


@dataclass(frozen=True)
class LayoutRule:
    """``check(site)``: None or why the op cannot read held inputs; ``rewrite(op, site, ins)``:
    (new outputs, the permutation each is held with). ``cheaper(site)``: +1 when the held form
    saves work, -1 when it costs more, 0 when it is the same."""

    check: Callable[[Site], str | None]
    rewrite: Callable[[GraphBuilder, Site, list], tuple[list[Value], list[Perm]]]
    cheaper: Callable[[Site], int] = lambda site: 0
    # Inputs that may be held (None: all). Others (weights, indices, scale) are read as they are:
    # a transpose producing one is not pulled into the region.
    held_inputs: tuple[int, ...] | None = None


def inverse(q: Perm) -> Perm:
    return tuple(int(i) for i in np.argsort(q))


def compose(p1: Perm, p2: Perm) -> Perm:
    """transpose(transpose(x, p1), p2) == transpose(x, compose(p1, p2))."""
    return tuple(p1[i] for i in p2)


def is_identity(q: Perm) -> bool:
    return q == tuple(range(len(q)))


def _held_labels(q: Perm) -> list[Any]:
    """The IR axis each axis of the held tensor is."""
    return list(inverse(q))


def _perm_of(ir_labels: list[Any], held_labels: list[Any]) -> Perm:
    return tuple(held_labels.index(lab) for lab in ir_labels)


def permute_operand(op: GraphBuilder, c: Value, q: Perm) -> Value:
    """A constant ``c`` that broadcasts against an IR tensor of rank len(q), re-laid out for the held tensor."""
    r = len(q)
    if c.rank == 0:
        return c
    arr = np.asarray(c.const).reshape((1,) * (r - c.rank) + tuple(c.shape))
    arr = np.transpose(arr, inverse(q))
    lead = 0
    while lead < arr.ndim - c.rank and arr.shape[lead] == 1:
        lead += 1  # drop the leading unit axes that broadcasting adds back
    arr = arr.reshape(arr.shape[lead:])
    if arr.shape == tuple(c.shape) and np.array_equal(arr, c.const):
        return c
    return op.const(np.ascontiguousarray(arr), name=f"{c.name}_held")


def _same_q(site: Site, const_ok: bool = True) -> str | None:
    """Reason unless every input is held with one permutation at the output's rank, or is a constant."""
    q = site.q
    out_rank = site.node.outputs[0].rank
    for i, (v, p) in enumerate(zip(site.node.inputs, site.perms)):
        if v is None:
            continue
        if p is None:
            if v.is_const and const_ok and v.rank <= out_rank:
                continue
            return f"input {i} (%{v.name}) is neither a constant nor held with the region's transpose"
        if p != q or v.rank != out_rank:
            return f"input {i} (%{v.name}) is held with {p}, another input with {q}"
    return None


def _same_op(op: GraphBuilder, site: Site, ins: list, **attrs: Any) -> list[Value]:
    n = site.node
    out = op.add_node(n.op, ins, {**n.attrs, **attrs})
    return list(out) if isinstance(out, tuple) else [out]


# ---------------------------------------------------------------- elementwise

def _always(site: Site) -> str | None:
    """Ops with one tensor input, which is held: nothing else to check."""
    return None


def _elementwise_rewrite(op, site, ins):
    return _same_op(op, site, ins), [site.q]


def _broadcast_rewrite(op, site, ins):
    q = site.q
    new = [permute_operand(op, nv, q) if nv is not None and p is None and nv.is_const else nv
           for p, nv in zip(site.perms, ins)]
    return _same_op(op, site, new), [q]


ELEMENTWISE = (
    "abs", "ceil", "clip", "cos", "elu", "erf", "exp", "floor", "gelu", "hard_sigmoid", "hard_silu",
    "identity", "is_inf", "is_nan", "leaky_relu", "log", "logical_not", "mish", "neg", "reciprocal",
    "relu", "round", "rsqrt", "scaled_tanh", "selu", "sigmoid", "sign", "silu", "sin", "softplus",
    "softsign", "sqrt", "square", "tan", "tanh", "thresholded_relu", "cast", "fill_like", "atan",
)
BROADCAST = (
    "add", "sub", "mul", "div", "pow", "max", "min", "equal", "greater", "greater_equal", "less",
    "less_equal", "logical_and", "logical_or", "logical_xor", "prelu", "where",
)


# ------------------------------------------------------------ one axis attribute

def _axis_rewrite(op, site, ins):
    n = site.node
    q = site.q
    return _same_op(op, site, ins, axis=q[norm_axis(n.attrs["axis"], len(q))]), [q]


def _concat_rewrite(op, site, ins):
    q = site.q
    new = [permute_operand(op, nv, q) if p is None and nv.is_const else nv for p, nv in zip(site.perms, ins)]
    return _same_op(op, site, new, axis=q[norm_axis(site.node.attrs["axis"], len(q))]), [q]


def _concat_check(site: Site) -> str | None:
    return _same_q(site)


def _dropping(q: Perm, dropped: tuple[int, ...]) -> Perm:
    """The permutation of what is left when the IR axes ``dropped`` go (and their held axes with them)."""
    held = [lab for lab in _held_labels(q) if lab not in dropped]
    return _perm_of([i for i in range(len(q)) if i not in dropped], held)


def _reduce_rewrite(op, site, ins):
    n, q = site.node, site.q
    axes = norm_axes(n.attrs["axes"], len(q))
    new_axes = tuple(sorted(q[a] for a in axes))
    out_q = q if n.attrs["keepdims"] else _dropping(q, axes)
    return _same_op(op, site, ins, axes=new_axes), [out_q]


def _arg_rewrite(op, site, ins):
    n, q = site.node, site.q
    a = norm_axis(n.attrs["axis"], len(q))
    out_q = q if n.attrs["keepdims"] else _dropping(q, (a,))
    return _same_op(op, site, ins, axis=q[a]), [out_q]


def _squeeze_rewrite(op, site, ins):
    q = site.q
    axes = norm_axes(site.node.attrs["axes"], len(q))
    return _same_op(op, site, ins, axes=tuple(sorted(q[a] for a in axes))), [_dropping(q, axes)]


def _unsqueeze_rewrite(op, site, ins):
    # The new unit axes go to the same output positions in both layouts.
    q = site.q
    r = len(q) + len(site.node.attrs["axes"])
    axes = norm_axes(site.node.attrs["axes"], r)
    ir_it, held_it = iter(range(len(q))), iter(_held_labels(q))
    ir_out = [("new", i) if i in axes else next(ir_it) for i in range(r)]
    held_out = [("new", i) if i in axes else next(held_it) for i in range(r)]
    return _same_op(op, site, ins), [_perm_of(ir_out, held_out)]


def _gather_check(site: Site) -> str | None:
    if site.perms[1] is not None:
        return "the indices are held in another layout"
    if site.perms[0] is None:
        return "the gathered tensor is not held in the region's layout"
    return None


def _gather_rewrite(op, site, ins):
    n, q = site.node, site.q
    a = norm_axis(n.attrs["axis"], len(q))
    idx = [("idx", k) for k in range(n.inputs[1].rank)]
    ir = list(range(len(q)))
    held = _held_labels(q)
    ir_out = ir[:a] + idx + ir[a + 1:]
    held_out = held[:q[a]] + idx + held[q[a] + 1:]
    return _same_op(op, site, ins, axis=q[a]), [_perm_of(ir_out, held_out)]


def _slice_rewrite(op, site, ins):
    n, q = site.node, site.q
    axes = tuple(q[norm_axis(a, len(q))] for a in n.attrs["axes"])
    return _same_op(op, site, ins, axes=axes), [q]


def _pad_rewrite(op, site, ins):
    q = site.q
    r = len(q)
    pads = site.node.attrs["pads"]
    new = [0] * (2 * r)
    for i in range(r):
        new[q[i]], new[q[i] + r] = pads[i], pads[i + r]
    return _same_op(op, site, ins, pads=tuple(new)), [q]


def _tile_rewrite(op, site, ins):
    q = site.q
    reps = site.node.attrs["repeats"]
    new = [0] * len(q)
    for i in range(len(q)):
        new[q[i]] = reps[i]
    return _same_op(op, site, ins, repeats=tuple(new)), [q]


def _split_rewrite(op, site, ins):
    q = site.q
    outs = _same_op(op, site, ins, axis=q[norm_axis(site.node.attrs["axis"], len(q))])
    return outs, [q] * len(outs)


# ------------------------------------------------------- layer_norm and rms_norm (same inputs after x)

def _ln_param_perm(site: Site) -> Perm:
    """How the normalized dims' order changes: scale/bias axis k of the held form is old axis perm[k]."""
    q = site.q
    axes = list(norm_axes(site.node.attrs["axes"], len(q)))
    held_axes = sorted(q[a] for a in axes)
    return tuple(axes.index(int(inverse(q)[h])) for h in held_axes)


def _ln_check(site: Site) -> str | None:
    if site.perms[0] is None:
        return "the normalized tensor is not held in the region's layout"
    if any(p is not None for p in site.perms[1:]):
        return "a computed scale or bias is held in another layout"
    if not is_identity(_ln_param_perm(site)):
        for v in site.node.inputs[1:]:
            if v is not None and not v.is_const:
                return f"the normalized axes change order and %{v.name} is not a constant"
    return None


def _ln_rewrite(op, site, ins):
    q = site.q
    axes = norm_axes(site.node.attrs["axes"], len(q))
    pp = _ln_param_perm(site)
    params = []
    for v in ins[1:]:
        if v is None or is_identity(pp):
            params.append(v)
        else:
            params.append(op.const(np.ascontiguousarray(np.transpose(v.const, pp)), name=f"{v.name}_held"))
    return _same_op(op, site, [ins[0]] + params, axes=tuple(sorted(q[a] for a in axes))), [q]


def _trailing(axes: tuple[int, ...], rank: int) -> bool:
    return tuple(sorted(axes)) == tuple(range(rank - len(axes), rank))


def _ln_cheaper(site: Site) -> int:
    """+1 when the held axes are the trailing ones (one native op) and the IR axes were not; -1 the other way."""
    q = site.q
    axes = norm_axes(site.node.attrs["axes"], len(q))
    return int(_trailing(tuple(q[a] for a in axes), len(q))) - int(_trailing(axes, len(q)))


# ------------------------------------------------------------------------ dense

def _dense_check(site: Site) -> str | None:
    q = site.q
    if site.perms[0] is None:
        return "the dense input is not held in the region's layout"
    if any(p is not None for p in site.perms[1:]):
        return "the weights are held in another layout"
    if q[1] != len(q) - 1:
        return f"held with {q}, the contracted IR axis 1 is not the last axis"
    return None


def _dense_rewrite(op, site, ins):
    x, w, b = ins
    y = op.matmul(x, w)
    if b is not None:
        y = op.add(y, b)
    act = site.node.attrs["activation"]
    if act != "linear":
        y = getattr(op, act)(y)
    return [y], [site.q]


RULES: dict[str, LayoutRule] = {}
for _op in ELEMENTWISE:
    RULES[_op] = LayoutRule(_always, _elementwise_rewrite)
for _op in BROADCAST:
    RULES[_op] = LayoutRule(_same_q, _broadcast_rewrite)
for _op in ("softmax", "log_softmax", "cumsum"):
    RULES[_op] = LayoutRule(_always, _axis_rewrite)
for _op in ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
    RULES[_op] = LayoutRule(_always, _reduce_rewrite)
for _op in ("argmax", "argmin"):
    RULES[_op] = LayoutRule(_always, _arg_rewrite)
RULES.update({
    "concat": LayoutRule(_concat_check, _concat_rewrite),
    "gather": LayoutRule(_gather_check, _gather_rewrite, held_inputs=(0,)),
    "slice": LayoutRule(_always, _slice_rewrite),
    "pad": LayoutRule(_always, _pad_rewrite),
    "tile": LayoutRule(_always, _tile_rewrite),
    "split": LayoutRule(_always, _split_rewrite),
    "squeeze": LayoutRule(_always, _squeeze_rewrite),
    "unsqueeze": LayoutRule(_always, _unsqueeze_rewrite),
    "layer_norm": LayoutRule(_ln_check, _ln_rewrite, _ln_cheaper, held_inputs=(0,)),
    "rms_norm": LayoutRule(_ln_check, _ln_rewrite, _ln_cheaper, held_inputs=(0,)),
    "dense": LayoutRule(_dense_check, _dense_rewrite, lambda site: int(len(site.q) > 2), held_inputs=(0,)),
})
