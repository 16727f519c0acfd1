"""Keras emitters for dynamic shapes: shape, range, expand, reshape_to, slice_to, and reshapes that keep dims dynamic.

A Keras functional graph has no op that takes a shape as a run-time tensor:
``keras.ops.reshape`` and the ``Reshape`` layer take a static target with one
``-1`` (the layer also keeps the batch). So these emitters read what the IR
knows statically instead: the symbolic dims of the output (``(N, T, 2, 4)``)
and of shape operands (``TensorType.value``); the shape computation feeding
``reshape_to``/``expand``/``slice_to`` is then never run (``shape_only_nodes``
leaves it out of the model). Where a run-time number is needed, it comes from
``ctx.dim_tensor``: a 1-D slice of a tensor that has that dim.

Reshapes between merged dynamic dims (tf2onnx's ``(N*T, 8)`` around a Dense,
``(2*N, T, 4)`` head batches) cannot be written as one Keras reshape, so the
value is held *refined* (context.py): its IR dims split into factors, in the
same data order. ``regroup`` matches a tensor's factors to a target shape;
reshapes, transposes, dense and matmul read and make refined tensors, and
any other consumer gets the value reshaped to its IR shape (one run-time dim
at most, else a clear error).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.backends.keras.context import KerasContext, keras_emitter
from kcc.ir import DTYPES, Graph, Node, Value
from kcc.ops.shapes import dim_factors
from kcc.passes.layout_channels_last import order_preserving

Atoms = tuple  # a Keras tensor's shape: ints and dim symbols

# (op, input slot) whose operand the emitter reads statically, never at run time.
STATIC_OPERANDS: frozenset[tuple[str, int]] = frozenset(
    {("reshape_to", 1), ("expand", 1), ("slice_to", 1), ("slice_to", 2), ("range", 1)})


def shape_only_nodes(graph: Graph) -> set[str]:
    """Nodes whose outputs feed only operands read statically (or other such nodes): not emitted."""
    skip: set[str] = set()
    for node in reversed(graph.nodes()):
        if any(graph.is_output(v) for v in node.outputs):
            continue
        uses = [u for v in node.outputs for u in graph.uses(v)]
        if uses and all((user.op, slot) in STATIC_OPERANDS or user.name in skip for user, slot in uses):
            skip.add(node.name)
    return skip


def _dims(shape: tuple) -> tuple[int, ...]:
    return tuple(-1 if isinstance(d, str) else int(d) for d in shape)


def in_data_order(ctx: KerasContext, v: Value) -> tuple[tuple[int, ...], Any]:
    """``v`` held so that its row-major data is in IR order: its own layout when that moves only 1-axes."""
    perm = ctx.perm(v)
    if not order_preserving(v.shape, perm):
        perm = ctx.ident(v)
    return perm, ctx.get(v, perm)


def reshape_to(ctx: KerasContext, node: Node, x: Value, y: Value) -> None:
    """Reshape ``x`` to ``y``'s shape in ``y``'s layout (data order is preserved by both layouts); one run-time
    dim besides the batch at most (else the caller holds it refined)."""
    _, t = in_data_order(ctx, x)
    out_perm = ctx.perm(y) if order_preserving(y.shape, ctx.perm(y)) else ctx.ident(y)
    shape = tuple(y.shape[p] for p in out_perm)
    if tuple(t.shape[1:]) == tuple(None if isinstance(d, str) else d for d in shape[1:]) \
            and x.shape[0] == y.shape[0]:
        ctx.put(y, t, out_perm)  # the Keras tensor already has this shape: no layer
        return
    if y.rank >= 1 and x.rank >= 1 and x.shape[0] == y.shape[0] and isinstance(y.shape[0], str) \
            and sum(isinstance(d, str) for d in shape[1:]) <= 1:
        t = ctx.layers.Reshape(_dims(shape[1:]), name=ctx.name())(t)
    elif _dims(shape).count(-1) > 1:
        ctx.fail(node, f"a reshape of {x.shape} to {y.shape}: Keras reshapes take one run-time dim besides "
                       "the batch, and these dims do not line up with the input's")
    else:
        t = ctx.ops.reshape(t, _dims(shape))
    ctx.put(y, t, out_perm)


# ----------------------------------------------------------------- factors
def _key(d: Any) -> tuple[int, tuple[str, ...]] | None:
    f = dim_factors(d)
    return None if f is None else (f[0], tuple(sorted(f[1])))


def _divide(want: tuple[int, tuple[str, ...]], have: tuple[int, tuple[str, ...]]
            ) -> tuple[int, tuple[str, ...]] | None:
    """want / have when ``have`` divides ``want`` (symbols as a multiset), else None."""
    if have[0] == 0 or want[0] % have[0]:
        return None
    left = list(want[1])
    for s in have[1]:
        if s not in left:
            return None
        left.remove(s)
    return want[0] // have[0], tuple(left)


def _match(rest: list[Any], target: tuple) -> list[list[Any]] | None:
    """Consume ``rest`` (size-1 atoms removed) left to right into groups whose products are ``target``."""
    groups: list[list[Any]] = []
    for y in target:
        want = _key(y)
        if want is None:
            return None
        group: list[Any] = []
        need = want
        while need != (1, ()):
            if not rest:
                return None
            a = rest[0]
            have = _key(a)
            if have is None:
                return None
            left = _divide(need, have)
            if left is None:
                if isinstance(a, int) and not need[1] and a % need[0] == 0:
                    rest[0] = a // need[0]  # split a static atom
                    group.append(need[0])
                    need = (1, ())
                    break
                return None
            group.append(rest.pop(0))
            need = left
        groups.append(group)
    return groups


def _fill_hole(rest: list[Any], target: tuple, j: int) -> list[list[Any]] | None:
    """Atoms with one unknown (``"?"``) at ``j``: it is the one target dim the atoms around it leave."""
    for a in range(len(target)):
        left, right = list(rest[:j]), list(rest[j + 1:])[::-1]
        lg, rg = _match(left, target[:a]), _match(right, target[a + 1:][::-1])
        if lg is not None and rg is not None and not left and not right:
            return lg + [[rest[j]]] + [g[::-1] for g in rg[::-1]]
    return None


def regroup(atoms: Atoms, target: tuple) -> list[list[Any]] | None:
    """Split ``atoms`` (a shape, row-major) into consecutive groups whose products are ``target``'s dims.

    Size-1 atoms are dropped; a static atom may be split (8 -> 2, 4) to meet a
    static remainder. One unknown target dim (``"?"``, as a reshape's -1 makes)
    takes the atoms the dims on its left and right leave; one unknown atom is
    the one target dim left between them. None when the shapes do not line up
    symbolically.
    """
    rest = [a for a in atoms if a != 1]
    unknown = [i for i, d in enumerate(target) if _key(d) is None]
    if not unknown:
        holes = [j for j, a in enumerate(rest) if _key(a) is None]
        if len(holes) == 1:
            return _fill_hole(rest, tuple(target), holes[0])
        groups = _match(rest, tuple(target))
        return groups if groups is not None and not rest else None
    if len(unknown) > 1:
        return None
    u = unknown[0]
    left = _match(rest, tuple(target[:u]))
    if left is None:
        return None
    rrest = rest[::-1]
    right = _match(rrest, tuple(target[u + 1:])[::-1])
    if right is None or not rrest:
        return None
    return left + [rrest[::-1]] + [g[::-1] for g in right[::-1]]


def keras_atoms(target: tuple, groups: list[list[Any]]) -> Atoms:
    """The Keras shape of a target held refined: static dims whole, symbolic ones as their factors."""
    out: list[Any] = []
    for y, group in zip(target, groups):
        if isinstance(y, int) or (y == "?" and len(group) == 1) or group == ["?"]:
            out.append(y if isinstance(y, int) or y != "?" else group[0])
        else:
            out.extend(group)
    return tuple(out)


def _spec(atoms: Atoms) -> tuple[int, ...]:
    return tuple(-1 if not isinstance(a, int) else a for a in atoms)


def rearrange(ctx: KerasContext, t: Any, src: Atoms, dst: Atoms) -> Any | None:
    """``t`` of shape ``src`` reshaped to ``dst`` (same data order), or None when Keras cannot."""
    if tuple(src) == tuple(dst):
        return t
    dynamic = [a for a in dst if not isinstance(a, int)]
    if len(dynamic) <= 1:
        return ctx.ops.reshape(t, _spec(dst))
    if [a for a in src if a != 1] == [a for a in dst if a != 1]:
        # Only size-1 axes move: squeeze then expand, whatever the run-time dims are.
        ones = tuple(i for i, a in enumerate(src) if a == 1)
        if ones:
            t = ctx.ops.squeeze(t, axis=ones)
        for i, a in enumerate(dst):
            if a == 1:
                t = ctx.ops.expand_dims(t, i)
        return t
    if len(dynamic) == 2 and not isinstance(src[0], int) and src[0] == dst[0]:
        return ctx.layers.Reshape(_spec(dst[1:]), name=ctx.name())(t)
    return None


def held(ctx: KerasContext, v: Value) -> tuple[Any, Atoms]:
    """``v`` as a Keras tensor in IR data order and its shape: refined when it is, else its own."""
    if v.name in ctx.refined:
        return ctx.refined[v.name]
    perm = ctx.perm(v)
    if not order_preserving(v.shape, perm):
        perm = ctx.ident(v)
    return ctx.get(v, perm), tuple(v.shape[p] for p in perm)


def put_atoms(ctx: KerasContext, v: Value, t: Any, atoms: Atoms) -> None:
    """Record ``t`` (shape ``atoms``, IR data order) as ``v``: plainly when the shapes agree, else refined."""
    if tuple(atoms) == tuple(v.shape):
        ctx.put(v, t, ctx.ident(v))
    else:
        ctx.refined[v.name] = (t, tuple(atoms))


def is_refined(ctx: KerasContext, v: Value | None) -> bool:
    return v is not None and v.name in ctx.refined


def reshape_dynamic(ctx: KerasContext, node: Node, x: Value, y: Value) -> bool:
    """Emit the reshape of ``x`` to ``y`` through factors; False when the factors do not line up."""
    t, atoms = held(ctx, x)
    groups = regroup(atoms, y.shape)
    if groups is None:
        return False
    dst = keras_atoms(y.shape, groups)
    out = rearrange(ctx, t, atoms, dst)
    if out is None:
        return False
    put_atoms(ctx, y, out, dst)
    return True


def static_reshape_ok(x: Value, y: Value) -> bool:
    """True when one Keras reshape (the Reshape layer keeps the batch) makes ``y`` from ``x`` and ``y``
    merges no dims into a product of run-time ones (``N*T``, or ``?``: held refined, so a later reshape
    can split it)."""
    if any(isinstance(d, str) and ("*" in d or d == "?") for d in y.shape):
        return False
    dynamic = [i for i, d in enumerate(y.shape) if not isinstance(d, int)]
    if len(dynamic) <= 1:
        return True
    return len(dynamic) == 2 and dynamic[0] == 0 and x.rank >= 1 and x.shape[0] == y.shape[0]


# ----------------------------------------------------------------- emitters
@keras_emitter("reshape_to")
def _reshape_to(ctx: KerasContext, node: Node) -> None:
    """Reshape to a run-time shape: the output's symbolic dims say what it is."""
    x, y = node.inputs[0], node.output
    if (is_refined(ctx, x) or not static_reshape_ok(x, y)) and reshape_dynamic(ctx, node, x, y):
        return
    if "?" in y.shape or not static_reshape_ok(x, y):
        ctx.fail(node, f"a reshape of {x.shape} to {y.shape}: Keras reshapes take one run-time dim besides "
                       "the batch, and these dims do not line up with the input's")
    reshape_to(ctx, node, x, y)


@keras_emitter("shape")
def _shape(ctx: KerasContext, node: Node) -> None:
    """The dims of ``x`` as an i64 vector: static dims are constants, run-time ones ``size`` of a slice."""
    x, y = node.inputs[0], node.output
    parts = []
    for d in x.shape:
        if isinstance(d, int):
            parts.append(np.array([d], np.int64))
            continue
        line = ctx.dim_tensor(d) if d != "?" else None
        if line is None:
            t = ctx.get(x, ctx.ident(x))
            axis = x.shape.index(d)
            line = t[tuple(slice(None) if i == axis else 0 for i in range(x.rank))]
        parts.append(ctx.ops.reshape(ctx.ops.cast(ctx.ops.size(line), "int64"), (1,)))
    ctx.put(y, ctx.ops.concatenate(parts, axis=0) if len(parts) > 1 else parts[0], ctx.ident(y))


def iota(ctx: KerasContext, node: Node, dim: Any, dtype: str) -> Any:
    """0, 1, ..., dim - 1 as a Keras tensor of ``dtype``: a constant, or a cumulative sum over a run-time dim."""
    if isinstance(dim, int):
        return np.arange(dim).astype(DTYPES[dtype])
    line = ctx.dim_tensor(dim) if dim != "?" else None
    if line is None:
        ctx.fail(node, f"a run-time length {dim!r} that no tensor of the model has as a dim")
    ones = ctx.ops.ones_like(line, dtype=str(DTYPES[dtype]))
    return ctx.ops.subtract(ctx.ops.cumsum(ones), ctx.ops.ones_like(ones))


def _symbol_of(ctx: KerasContext, v: Value) -> str | None:
    """The dim symbol a scalar holds (through casts: ``float(T)``), or None."""
    while v.type.value is None and ctx.graph.producer(v) is not None and ctx.graph.producer(v).op == "cast":
        v = ctx.graph.producer(v).inputs[0]
    value = v.type.value
    if value is not None and len(value) == 1 and isinstance(value[0], str) and value[0] != "?":
        return value[0]
    return None


@keras_emitter("range")
def _range(ctx: KerasContext, node: Node) -> None:
    """start + delta * iota(length): the length is the output's (symbolic) dim."""
    start, limit, delta = node.inputs
    y = node.output
    length = y.shape[0]
    if length == "?" and start.is_const and start.const.item() == 0 and delta.is_const \
            and delta.const.item() == 1:
        length = _symbol_of(ctx, limit) or length
    t = iota(ctx, node, length, y.dtype)
    if not (delta.is_const and delta.const.item() == 1):
        t = ctx.ops.multiply(t, ctx.get(delta) if delta.is_const else ctx.get(delta, ()))
    if not (start.is_const and start.const.item() == 0):
        t = ctx.ops.add(t, ctx.get(start) if start.is_const else ctx.get(start, ()))
    ctx.put(y, t, ctx.ident(y))


@keras_emitter("expand")
def _expand(ctx: KerasContext, node: Node) -> None:
    """Broadcast to the output's dims: ``tile`` on static axes, and adding a zero line on run-time ones."""
    x, shape, y = node.inputs[0], node.inputs[1], node.output
    t = ctx.get(x, ctx.ident(x))
    for _ in range(y.rank - x.rank):
        t = t[None] if isinstance(t, np.ndarray) else ctx.ops.expand_dims(t, 0)
    shape_in = (1,) * (y.rank - x.rank) + tuple(x.shape)
    # What the shape operand says is sharper than the broadcast type ("?" against T is "?").
    known = shape.type.value or (None,) * y.rank
    target = tuple(k if isinstance(k, str) and k != "?" or (isinstance(k, int) and k > 1) else d
                   for k, d in zip(known, y.shape))
    if isinstance(t, np.ndarray):
        t = ctx.ops.convert_to_tensor(t)
    reps = [1] * y.rank
    for i, (a, b) in enumerate(zip(shape_in, target)):
        if a == b or b == 1:
            continue
        if a != 1 and (isinstance(a, int) or not isinstance(b, str) or b == "?"):
            ctx.fail(node, f"an expand of {x.shape} to {y.shape} whose dims do not line up")
        if isinstance(b, int):
            reps[i] = b
            continue
        line = ctx.dim_tensor(b) if b != "?" else None
        if line is None:
            ctx.fail(node, f"an expand to a run-time dim {b!r} that no tensor of the model has")
        zeros = ctx.ops.reshape(ctx.ops.zeros_like(line, dtype=str(DTYPES[y.dtype])),
                                tuple(-1 if j == i else 1 for j in range(y.rank)))
        # x - 0 broadcasts as x + 0 would (keras.ops.add misreads this broadcast: emit_math.broadcast_add).
        t = ctx.ops.logical_or(t, zeros) if y.dtype == "bool" else ctx.ops.subtract(t, zeros)
    if any(r != 1 for r in reps):
        t = ctx.ops.tile(t, reps)
    ctx.put(y, t, ctx.ident(y))


@keras_emitter("slice_to")
def _slice_to(ctx: KerasContext, node: Node) -> None:
    """``x[s:e]`` with run-time bounds, from their symbolic values: an Embedding lookup of a table's rows."""
    x, starts, ends = node.inputs
    y = node.output
    steps = node.attrs["steps"] or (1,) * len(node.attrs["axes"])
    sv, ev = starts.type.value, ends.type.value
    if sv is None or ev is None:
        ctx.fail(node, "slice bounds whose values are not known at conversion time")
    index: list[Any] = [slice(None)] * x.rank
    take: list[tuple[int, Any]] = []
    for a, s, e, st, dim in zip(node.attrs["axes"], sv, ev, steps, (y.shape[a % x.rank] for a in node.attrs["axes"])):
        a = a % x.rank
        if isinstance(s, int) and isinstance(e, int):
            index[a] = slice(s, e, st)
        elif isinstance(s, int) and s >= 0 and st == 1 and isinstance(dim, str) and dim != "?":
            take.append((a, (s, dim)))
        else:
            ctx.fail(node, f"slice bounds {s!r}:{e!r} on axis {a} that are not a start plus a model dim")
    if take and x.is_const and x.rank == 2 and [a for a, _ in take] == [0] and index == [slice(None)] * 2:
        # A position table cut to the sequence length: an Embedding of rows s .. s+T-1 (trainable).
        s, dim = take[0][1]
        rows = ctx.ops.add(iota(ctx, node, dim, "i32"), s) if s else iota(ctx, node, dim, "i32")
        table = ctx.weight(node, 0, "table")
        layer = ctx.layers.Embedding(table.shape[0], table.shape[1], name=ctx.name(), trainable=ctx.trainable)
        ctx.put(y, ctx.call(layer, rows, [table]), ctx.ident(y))
        return
    t = ctx.get(x, ctx.ident(x))
    if isinstance(t, np.ndarray):
        t = ctx.ops.convert_to_tensor(t)
    if any(i != slice(None) for i in index):
        t = t[tuple(index)]
    for a, (s, dim) in take:
        rows = iota(ctx, node, dim, "i32")
        t = ctx.ops.take(t, ctx.ops.add(rows, s) if s else rows, axis=a)
    ctx.put(y, t, ctx.ident(y))


# ----------------------------------------------------- refined consumers
def transpose_refined(ctx: KerasContext, node: Node) -> None:
    """A transpose of a refined tensor: each IR axis moves with its factors."""
    x, y = node.inputs[0], node.output
    t, atoms = ctx.refined[x.name]
    groups = regroup(atoms, x.shape)
    # keras_atoms keeps static dims whole: recompute the Keras axes of each IR dim.
    spans, k = [], 0
    for d, g in zip(x.shape, groups):
        n = 1 if isinstance(d, int) else len(g)
        spans.append(list(range(k, k + n)))
        k += n
    q = tuple(i for p in node.attrs["perm"] for i in spans[p])
    out_atoms = tuple(atoms[i] for i in q)
    put_atoms(ctx, y, ctx.transpose(t, q) if q != tuple(range(len(q))) else t, out_atoms)


def dense_refined(ctx: KerasContext, node: Node, layer: Any, weights: list[np.ndarray]) -> bool:
    """Apply a Dense layer to the refined input (its last factor is the contracted axis); False if not."""
    x, y = node.inputs[0], node.output
    t, atoms = ctx.refined[x.name]
    if atoms[-1] != x.shape[-1] or not isinstance(atoms[-1], int):
        return False
    put_atoms(ctx, y, ctx.call(layer, t, weights), tuple(atoms[:-1]) + (y.shape[-1],))
    return True


def matmul_refined(ctx: KerasContext, node: Node) -> bool:
    """A batched matmul of refined operands (equal batch factors, one factor for each matrix dim)."""
    a, b = node.inputs
    y = node.output
    ta, xa = held(ctx, a)
    tb, xb = held(ctx, b)
    ga, gb = regroup(xa, a.shape), regroup(xb, b.shape)
    if ga is None or gb is None or a.rank < 2 or b.rank < 2:
        return False
    if any(len(g) != 1 for g in ga[-2:] + gb[-2:]) or (ga[-2][0], ga[-1][0]) != tuple(xa[-2:]) \
            or (gb[-2][0], gb[-1][0]) != tuple(xb[-2:]):
        return False
    batch_a, batch_b = xa[:-2], xb[:-2]
    if batch_a and batch_b and tuple(batch_a) != tuple(batch_b):
        return False
    batch = batch_a or batch_b
    put_atoms(ctx, y, ctx.ops.matmul(ta, tb), tuple(batch) + (xa[-2], xb[-1]))
    return True


__all__ = ["shape_only_nodes", "in_data_order", "reshape_to", "regroup", "reshape_dynamic", "static_reshape_ok",
           "is_refined", "held", "put_atoms", "transpose_refined", "dense_refined", "matmul_refined"]
