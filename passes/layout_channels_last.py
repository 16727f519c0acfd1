"""layout_channels_last: decide, per tensor, whether the Keras target holds it channels-last.

The IR is channels-first (conv is NCHW); Keras (and TensorFlow on CPU) wants
NHWC. This pass decides, for every value of rank >= 3, one of two layouts:

* ``cl``: the Keras tensor is ``transpose(ir_tensor, to_keras_perm(rank))``;
* ``ir``: the Keras tensor is the IR tensor as it is.

It records the decision in ``graph.meta["keras_layout"]`` (value name -> True for
channels-last) and prints it as one comment line per changed value under
``--print-ir``. The IR's ops and shapes keep their meaning, so the interpreter
and ``--verify-each`` still check every pass; the emitter reads the decision,
relays weights once (OIHW -> HWIO) and asks for each input in the layout its
Keras layer needs. Where an input arrives in the other layout the emitter
inserts one ``Permute``; the decision is made so that this is rare.

Rules, in topological order (tables below):

* ``CHANNELS_LAST`` ops (conv, pooling, batch_norm, resize, dense on rank >= 3)
  produce ``cl``.
* ``FOLLOW`` ops (elementwise, and ops whose axes are remapped: concat,
  softmax, reductions, pad, slice, split, ...) produce the layout their
  non-constant inputs have (``cl`` when any has it).
* ``transpose`` produces the layout that makes it the identity on Keras tensors
  when there is one (so tf2onnx's NHWC<->NCHW Transposes vanish).
* ``reshape``/``squeeze``/``unsqueeze``/``flatten`` keep ``cl`` only when the
  non-unit axes keep their order (moving size-1 axes moves no data).
* ``flatten`` of a ``cl`` tensor read by one ``dense`` with constant weights:
  the pass puts ``transpose(to_keras_perm)`` before the flatten and permutes the
  Dense's weight rows to match (exact), so the Keras model is Flatten -> Dense
  with no Permute. Without such a Dense one Permute goes before the Flatten.
* recurrent ops (time-major in the IR) produce their sequence ``batch_major``:
  Keras's LSTM/GRU/SimpleRNN hold ``(N, T, H)``, so the IR's ``(T, N, H)`` is
  ``transpose(perm=(1, 0, 2))`` of it and the frontend's time-major transposes vanish.
* everything else produces ``ir``.
* Graph inputs are ``cl`` when a channels-last op reads them through FOLLOW ops
  (with ``keras_boundary_layout="keras"``, the default), ``ir`` otherwise or with
  ``"source"``; with ``"source"`` graph outputs are returned in ``ir`` layout.

Before (MNIST from ONNX)::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b)
    %pool: f32[N,32,2,2] = max_pool(%conv) {kernel=(2, 2), strides=(2, 2)}
    %flat: f32[N,128] = flatten(%pool)
    %y: f32[N,10] = dense(%flat, %w2, %b2)

After (meta: conv, pool channels-last)::

    %conv: f32[N,32,24,24] = conv(%x, %w, %b)
    %pool: f32[N,32,2,2] = max_pool(%conv) {kernel=(2, 2), strides=(2, 2)}
    %t: f32[N,2,2,32] = transpose(%pool) {perm=(0, 2, 3, 1)}
    %flat: f32[N,128] = flatten(%t)
    %y: f32[N,10] = dense(%flat, %w2_rows_permuted, %b2)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.errors import OptionError
from kcc.ir import Graph, Node, Value
from kcc.layout import to_keras_perm
from kcc.passes.base import Pass, register_pass

META_KEY = "keras_layout"

CHANNELS_LAST: frozenset[str] = frozenset({
    "conv", "conv_transpose", "max_pool", "avg_pool", "batch_norm", "resize", "dense"})

FOLLOW: frozenset[str] = frozenset({
    # elementwise unary
    "abs", "ceil", "clip", "cos", "elu", "erf", "exp", "floor", "gelu", "hard_sigmoid", "hard_silu",
    "identity", "is_inf", "is_nan", "leaky_relu", "log", "logical_not", "mish", "neg", "reciprocal",
    "relu", "round", "rsqrt", "scaled_tanh", "selu", "sigmoid", "sign", "silu", "sin", "softplus",
    "softsign", "sqrt", "square", "tan", "tanh", "thresholded_relu", "cast", "fill_like",
    # elementwise binary / ternary (constants are re-laid out by the emitter)
    "add", "sub", "mul", "div", "pow", "max", "min", "equal", "greater", "greater_equal", "less",
    "less_equal", "logical_and", "logical_or", "logical_xor", "prelu", "where",
    # axis-carrying ops, remapped by the emitter
    "concat", "softmax", "log_softmax", "cumsum", "split", "slice", "pad", "tile", "layer_norm",
    "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum", "argmax", "argmin",
})

RESHAPING: frozenset[str] = frozenset({"reshape", "squeeze", "unsqueeze", "flatten"})

BOUNDARIES = ("keras", "source")


# Ops whose sequence input and output Keras holds batch-major: (T, N, F) -> (N, T, F).
RECURRENT: frozenset[str] = frozenset({"lstm", "gru", "rnn"})
BATCH_MAJOR = "batch_major"


def keras_perm(v: Value, channels_last: bool | str) -> tuple[int, ...]:
    """The permutation with ``keras_tensor = transpose(ir_tensor, perm)``.

    ``channels_last`` is the decision recorded for ``v``: True (channels-last, or "batch_major"),
    ``"batch_major"`` (a time-major sequence held batch-major) or False.
    """
    if channels_last == BATCH_MAJOR and v.rank == 3:
        return (1, 0, 2)
    return to_keras_perm(v.rank) if channels_last and v.rank >= 3 else tuple(range(v.rank))


def order_preserving(shape: tuple, perm: tuple[int, ...]) -> bool:
    """True when ``transpose(x, perm)`` moves only size-1 axes (then it is a reshape)."""
    big = [a for a in perm if shape[a] != 1]
    return big == sorted(big)


@register_pass
@dataclass
class LayoutChannelsLast(Pass):
    name = "layout_channels_last"
    after = ("dce",)
    keras_boundary_layout: str = "keras"

    def run(self, graph: Graph) -> bool:
        if self.keras_boundary_layout not in BOUNDARIES:
            raise OptionError(f"keras_boundary_layout={self.keras_boundary_layout!r}: use 'keras' "
                              "(channels-last inputs and outputs) or 'source' (the source model's layout)")
        wants = _demand(graph)
        cl: dict[str, bool] = {}
        for v in graph.inputs:
            cl[v.name] = self.keras_boundary_layout == "keras" and v.rank >= 3 and wants.get(v.name, False)
        changed = False
        for node in graph.nodes():
            changed |= _decide(graph, node, cl, wants)
        before = dict(graph.meta.get(META_KEY, {}))
        graph.meta[META_KEY] = {k: v for k, v in cl.items() if v}
        graph.meta["keras_boundary_layout"] = self.keras_boundary_layout
        return changed or before != graph.meta[META_KEY]


def _demand(graph: Graph) -> dict[str, bool]:
    """Value name -> whether a channels-last op reads it directly or through FOLLOW ops."""
    wants: dict[str, bool] = {}
    for node in reversed(graph.nodes()):
        for v in node.outputs:
            w = False
            for user, slot in graph.uses(v):
                if user.op in CHANNELS_LAST and slot == 0 and v.rank >= 3:
                    w = True
                elif user.op in FOLLOW and any(wants.get(o.name, False) for o in user.outputs):
                    w = True
            wants[v.name] = w
    for v in graph.inputs:
        wants[v.name] = any((u.op in CHANNELS_LAST and s == 0) or
                            (u.op in FOLLOW and any(wants.get(o.name, False) for o in u.outputs))
                            for u, s in graph.uses(v))
    return wants


def _is_cl(v: Value | None, cl: dict[str, bool | str]) -> bool:
    return v is not None and not v.is_const and v.rank >= 3 and cl.get(v.name, False) is True


def _decide(graph: Graph, node: Node, cl: dict[str, bool], wants: dict[str, bool]) -> bool:
    """Set ``cl`` for the node's outputs; return True when the graph was rewritten."""
    out = node.outputs
    if node.op in CHANNELS_LAST:
        for v in out:
            cl[v.name] = v.rank >= 3
        return False
    if node.op in FOLLOW:
        ins = [v for v in node.inputs if v is not None and not v.is_const]
        chosen = any(_is_cl(v, cl) for v in ins) or (not ins and any(wants.get(v.name, False) for v in out))
        if chosen and _drops_axes(node):
            # The output follows when the kept axes stay channels-last ordered; the
            # emitter then reads x channels-last and reduces the remapped axes.
            for v in out:
                cl[v.name] = v.rank >= 3 and _reduced_stays_cl(node, ins[0])
            return False
        seq = {cl.get(v.name, False) for v in ins}
        for v in out:
            if not chosen and seq == {BATCH_MAJOR} and all(i.rank == v.rank == 3 for i in ins):
                cl[v.name] = BATCH_MAJOR  # elementwise on an LSTM's sequence stays batch-major
            else:
                cl[v.name] = chosen and v.rank >= 3 and all(i.rank == v.rank for i in ins)
        return False
    if node.op in RECURRENT:
        cl[node.outputs[0].name] = BATCH_MAJOR
        for v in node.outputs[1:]:
            cl[v.name] = False
        return False
    if node.op == "transpose":
        x, y = node.inputs[0], node.output
        lin = keras_perm(x, cl.get(x.name, False) if not x.is_const else False)
        inv = tuple(int(i) for i in np.argsort(lin))
        p = node.attrs["perm"]
        # "batch_major" says the IR value is a time-major sequence that Keras holds
        # batch-major. A model output leaves in its recorded Keras form, so an output
        # may take it only when that is true; a transpose that makes an output
        # batch-major in the IR (an ONNX file's LSTM output) stays a real Permute.
        choices = (True, False) if y in graph.outputs else (True, BATCH_MAJOR, False)
        for choice in choices:
            lout = keras_perm(y, choice)
            if tuple(inv[p[i]] for i in lout) == tuple(range(y.rank)):
                cl[y.name] = choice if y.rank >= 3 else False
                return False
        cl[y.name] = y.rank >= 3 and wants.get(y.name, False)
        return False
    if node.op in RESHAPING:
        x, y = node.inputs[0], node.output
        x_cl = _is_cl(x, cl)
        if node.op == "flatten" and x_cl and not order_preserving(x.shape, keras_perm(x, True)):
            return _fold_flatten_dense(graph, node, cl)
        keeps = not x_cl or order_preserving(x.shape, keras_perm(x, True))
        cl[y.name] = (keeps and y.rank >= 3 and wants.get(y.name, False)
                      and order_preserving(y.shape, keras_perm(y, True)))
        return False
    for v in out:
        cl[v.name] = False
    return False


def _drops_axes(node: Node) -> bool:
    return (node.op in ("argmax", "argmin") or node.op.startswith("reduce_")) and not node.attrs["keepdims"]


def _reduced_stays_cl(node: Node, x: Value) -> bool:
    """A rank-dropping reduction of a cl tensor: its output is cl-ordered or rank < 3 (else read x as ir)."""
    axes = node.attrs.get("axes") or (node.attrs.get("axis"),)
    axes = {a % x.rank for a in axes}
    kept = [a for a in keras_perm(x, True) if a not in axes]
    ranks = sorted(kept)
    relabel = tuple(ranks.index(a) for a in kept)
    return len(kept) < 3 or relabel == to_keras_perm(len(kept))


def _fold_flatten_dense(graph: Graph, flat: Node, cl: dict[str, bool]) -> bool:
    """Put transpose(to_keras_perm) before ``flat`` and permute its Dense's weight rows to match."""
    x = flat.inputs[0]
    dense = graph.single_user(flat.output)
    w = dense.inputs[1] if dense is not None and dense.op == "dense" else None
    if w is None or not w.is_const or flat.attrs["axis"] != 1 or not all(isinstance(d, int) for d in x.shape[1:]):
        cl[flat.output.name] = False  # the emitter reads x as ir: one Permute before Flatten
        return False
    perm = to_keras_perm(x.rank)
    t = graph.add_node("transpose", [x], {"perm": perm}, name=f"{flat.name}/to_keras", origin=flat.origin)
    graph.set_input(flat, 0, t.output)
    ir_dims = x.shape[1:]
    rows = w.const.reshape(ir_dims + (w.shape[1],))
    rows = rows.transpose(tuple(p - 1 for p in perm[1:]) + (len(ir_dims),)).reshape(w.shape)
    graph.set_input(dense, 1, graph.add_const(np.ascontiguousarray(rows), f"{w.name}_keras_rows"))
    if not graph.uses(w) and not graph.is_output(w):
        graph.remove_value(w)
    cl[t.output.name] = False
    cl[flat.output.name] = False
    return True
