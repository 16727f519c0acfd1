"""ONNX ``Loop`` over the time steps of a sequence -> one IR ``rnn`` / ``gru`` op.

tf2onnx writes Keras 3's ``GRU`` and ``SimpleRNN`` (whose cells its rewriters do
not recognize) as the TensorFlow ``while`` loop they trace to::

    xs = Transpose(x) {perm=[1, 0, 2]}                    # (T, N, F), time-major
    h0 = Expand(0.0, Concat(Slice(Shape(x), 0, 1), [H]))  # zeros (N, H)
    _, t, h, W, R, b, ys = Loop(T, true, 0, h0, W, R, b)  # ys: every step's h, (T, N, H)
      body(i, cond, t, h, W, R, b):
        x_t = Gather(xs, t)          # xs read from the enclosing scope
        h'  = <the cell>(x_t, h, W, R, b)
        return t + 1 < T and i + 1 < T, t + 1, h', W, R, b, h'

This handler imports the body on a scratch IR graph (constants bound, so the
weights and their slices fold), names the loop's parts (the step read
``x_t = gather(xs, counter)``, one carried float state, counters, carried
constants), reads the cell's weights and activations off the body
(onnx_loop_cell.py) and then **checks** the result: it runs the Loop the way
onnxruntime would (the body's IR, step by step, with the reference
interpreter) on seeded data and keeps the IR op only if it gives the same
scan output and final state. The Loop becomes
``y, h_T = gru(xs, w, r, b, h0) {direction=forward}``: its scan output is
``y``, its final state ``h_T``, counters their final values (``start + T``),
and carried constants themselves. A zero initial state is dropped (the op's
absent state is zeros), so the symbolic-batch ``Expand`` above leaves no node.
``go_backwards`` and ``Bidirectional`` reach the loop as a ``ReverseSequence``
of ``xs`` (onnx_sequence.py), which stays a time reversal before a forward op.

A symbolic sequence length (Keras ``Input((None, F))``) works the same way:
tf2onnx then computes the trip count, the first condition and a carried copy
of ``T`` from ``Shape(x)``; the check run evaluates those at its own sizes (a
sequence of 5, a batch of 2, onnx_loop_run.py) and refuses a loop whose
control depends on data rather than on shapes.

Why recognize the cell rather than import ``Loop`` in general. The IR has no
control flow, and none of kcc's targets needs it for these models: ONNX has
``GRU``/``RNN`` kernels, Core ML has recurrent layers, Keras has ``GRU`` and
``SimpleRNN`` layers whose weights train. A general ``loop`` op would make
every backend and pass handle subgraphs to run what is, in every file seen, a
recurrent layer; unrolling a static trip count would copy the cell T times
(the graph grows with the sequence, the sequence length can no longer be
dynamic, and the layer's identity and trainable weights are lost). The
recurrent op is what a converter should produce; tf2onnx itself does the same
for TensorFlow's LSTM/GRU loops with its rewriters. The cost is coverage: a
body that is not a GRU or SimpleRNN cell (a mask, an LSTM loop, a custom
cell) is refused with an error naming the Loop node and what its body holds;
it is never imported as something else, because the numeric check stands
between the pattern and the result. The check runs the loop once on a batch
of two, about what one inference of the layer costs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from kcc.errors import KccError
from kcc.frontends.onnx.importer import OnnxImporter
from kcc.frontends.onnx.ops.onnx_loop_cell import Cell, CellMismatch, ancestors, candidates, summary
from kcc.frontends.onnx.ops.onnx_loop_run import concrete, dims_at, rel_error, simulate
from kcc.frontends.onnx.ops.onnx_recurrent import is_zeros
from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import DTYPES, Graph, TensorType, Value, dtype_of
from kcc.ops.registry import get_op
from kcc.ops.shapes import dim_op

Known = Value | np.ndarray
# Relative error (to the largest magnitude) under which the IR op reproduces the loop.
CHECK_TOL = 1e-4
# The check run's sequence length and batch where the file's are symbolic.
SIM_STEPS, SIM_BATCH = 5, 2


@dataclass
class _Body:
    """The Loop body on a scratch graph: what each body input is bound to, and the outputs."""

    graph: Graph
    iteration: Value
    cond: Value
    carried: list[Known]             # body input j + 2, a scratch input or a constant
    outs: list[Known]                # cond, carried, scan outputs
    captured: dict[str, Value] = field(default_factory=dict)  # scratch input name -> outer value


def _captures(body: onnx.GraphProto) -> list[str]:
    """Names the body's nodes read that the body does not define (values of the enclosing scope)."""
    known = {i.name for i in body.input} | {i.name for i in body.initializer}
    names: list[str] = []
    for node in body.node:
        for n in node.input:
            if n and n not in known and n not in names:
                names.append(n)
        known.update(node.output)
    return names


def _import_body(ctx: OnnxNodeContext, body: onnx.GraphProto, n_carried: int) -> _Body:
    graph = Graph("loop_body")
    prefix = (ctx.node.name or "Loop") + "/"
    importer = OnnxImporter(graph, ctx.opset, origin=ctx.origin, name_prefix=prefix, **ctx.options)
    bound = {body.input[0].name: graph.add_input("iteration", TensorType((), "i64")),
             body.input[1].name: graph.add_input("cond", TensorType((), "bool"))}
    carried: list[Known] = []
    for j in range(n_carried):
        name, init = body.input[2 + j].name, ctx.inputs[2 + j]
        passthrough = body.output[1 + j].name == name
        if init is None:
            raise ctx.fail(f"loop-carried input {ctx.node.input[2 + j]!r} is missing")
        if isinstance(init, np.ndarray) and init.dtype == object:
            init = ctx.value(2 + j)
        if isinstance(init, Value) and init.is_const:
            init = init.const
        if isinstance(init, np.ndarray) and passthrough:
            importer.env[name] = init  # a constant the body only reads: fold it
            carried.append(init)
            continue
        vtype = init.type if isinstance(init, Value) else TensorType(init.shape, dtype_of(init))
        bound[name] = graph.add_input(f"carried{j}", vtype)
        carried.append(bound[name])
    captured: dict[str, Value] = {}
    for name in _captures(body):
        outer = ctx.outer(name)
        if isinstance(outer, Value) and outer.is_const:
            outer = outer.const
        if outer is None:
            raise ctx.fail(f"its body reads {name!r}, which nothing in the enclosing graph computes")
        if isinstance(outer, np.ndarray) and outer.dtype == object:
            # A shape holding symbolic dims: computed at run time in the enclosing graph, read as a value.
            outer = ctx.dim_sources.materialize(outer, ctx.op) if ctx.dim_sources is not None else None
            if outer is None:
                raise ctx.fail(f"its body reads {name!r}, a shape of symbolic dims kcc cannot compute")
        if isinstance(outer, Value):
            v = bound[name] = graph.add_input(f"outer{len(captured)}", outer.type)
            captured[v.name] = outer
        else:
            importer.env[name] = outer
    try:
        outs = importer.import_graph(body, bound)
    except KccError as e:
        raise ctx.fail(f"its body cannot be imported: {e}") from e
    return _Body(graph, bound[body.input[0].name], bound[body.input[1].name], carried, outs, captured)


def _step_read(ctx: OnnxNodeContext, body: _Body, counters: list[Value]) -> tuple[Value, Value, Value]:
    """The one ``gather(xs, counter)`` reading step t of a captured sequence: (x_t, xs scratch input, index)."""
    reads = [n for n in body.graph.nodes() if n.op == "gather" and n.inputs[0].name in body.captured
             and n.inputs[0].rank == 3 and n.attrs["axis"] == 0 and n.inputs[1].rank == 0
             and (n.inputs[1] is body.iteration or any(n.inputs[1] is c for c in counters))]
    if len(reads) != 1:
        seqs = [f"{body.captured[n.inputs[0].name].name} {body.captured[n.inputs[0].name].shape}" for n in reads]
        what = "reads no step of a sequence" if not reads else \
            f"reads a step of {len(reads)} sequences ({', '.join(seqs)}; a Keras mask is one of them)"
        raise ctx.fail(f"its body {what}; kcc imports a Loop that runs a GRU or SimpleRNN cell over one "
                       "sequence (masks are not supported: remove the Masking layer)")
    node = reads[0]
    return node.output, node.inputs[0], node.inputs[1]


def _counter_final(ctx: OnnxNodeContext, j: int, final: np.ndarray, steps: int | str, sim_steps: int,
                   sizes: dict[str, int]) -> np.ndarray:
    """A counter's value after the loop: what the run gave, or ``start + T`` for a symbolic length T."""
    if isinstance(steps, int):
        return final
    start = concrete(ctx.graph, ctx.inputs[2 + j], sizes, f"loop-carried value {ctx.node.input[2 + j]!r}",
                     ctx.fail)
    if start.dtype == object or int(final) != int(start) + sim_steps or isinstance(ctx.inputs[2 + j], Value):
        raise ctx.fail(f"loop-carried value {ctx.node.input[2 + j]!r} is not a counter from a constant by one "
                       "per step")
    return np.asarray(dim_op("add", steps, int(start)), dtype=object)


@onnx_op("Loop")
def loop(ctx: OnnxNodeContext) -> list[Known]:
    body_proto = ctx.attr("body")
    n_carried = len(ctx.node.input) - 2
    if not ctx.has(0):
        raise ctx.fail("has no trip count M; kcc imports a Loop over the steps of a sequence")
    body = _import_body(ctx, body_proto, n_carried)
    passthrough = {j for j in range(n_carried) if body_proto.output[1 + j].name == body_proto.input[2 + j].name}
    data = set(body.captured) | {v.name for v in body.carried if isinstance(v, Value) and v.dtype.startswith("f")}
    states, counters = [], []
    for j, (v, out) in enumerate(zip(body.carried, body.outs[1:1 + n_carried])):
        if not isinstance(v, Value) or j in passthrough:
            continue
        if v.dtype.startswith("f"):
            states.append(j)
        elif v.rank == 0 and v.dtype.startswith("i") and not (ancestors(body.graph, out) & data):
            counters.append(j)
        else:
            raise ctx.fail(f"loop-carried value {ctx.node.input[2 + j]!r} ({v.type}) is neither a float state, "
                           "a counter nor a constant")
    x_t, xs_in, index = _step_read(ctx, body, [body.carried[j] for j in counters])
    if len(states) != 1:
        raise ctx.fail(f"its body carries {len(states)} float states; kcc recognizes one-state cells (GRU, "
                       "SimpleRNN)")
    h = body.carried[states[0]]
    h_out = body.outs[1 + states[0]]
    if not isinstance(h_out, Value) or h.rank != 2:
        raise ctx.fail(f"its state {h.type} is not a (batch, units) matrix computed by the body")
    try:
        cells = candidates(body.graph, x_t, h)
    except CellMismatch as e:
        raise ctx.fail(f"its body is not a GRU or SimpleRNN cell kcc knows: {e}") from None
    xs = body.captured[xs_in.name]
    steps, batch = xs.shape[0], xs.shape[1]
    # Sizes for the check run: the file's where static; a short sequence and a batch of two where symbolic.
    sizes = {d: n for d, n in ((steps, SIM_STEPS), (batch, SIM_BATCH)) if isinstance(d, str)}
    cell, finals = _checked_cell(ctx, body, cells, x_t, xs_in, h, index, states[0], sizes)
    h0 = ctx.value(2 + states[0])
    h0 = None if is_zeros(ctx.graph, h0) else h0
    y, h_final = getattr(ctx.op, cell.op)(xs, ctx.op.const(cell.w), ctx.op.const(cell.r), ctx.op.const(cell.b),
                                          h0, direction="forward", **cell.attrs)
    sim_steps = steps if isinstance(steps, int) else SIM_STEPS
    results: list[Known] = []
    for j in range(n_carried):
        if j in states:
            results.append(h_final)
        elif j in counters:
            results.append(_counter_final(ctx, j, finals[j], steps, sim_steps, sizes))
        else:
            results.append(ctx.inputs[2 + j])
    return results + [y] * (len(body.outs) - 1 - n_carried)


def _checked_cell(ctx: OnnxNodeContext, body: _Body, cells: list[Cell], x_t: Value, xs_in: Value, h: Value,
                  index: Value, state: int, sizes: dict[str, int]) -> tuple[Cell, list[np.ndarray]]:
    """The first candidate whose IR op reproduces the loop on seeded data, and the loop's final carried values."""
    rng = np.random.default_rng(0)
    graph = ctx.graph
    feeds = {}
    for v in body.graph.inputs:
        outer = body.captured.get(v.name)
        if outer is None:
            continue
        shape = dims_at(v.shape, sizes, f"the value {outer.name!r} its body reads", ctx.fail)
        if v is xs_in or v.dtype.startswith("f"):
            feeds[v.name] = rng.standard_normal(shape).astype(DTYPES[v.dtype])
        else:
            feeds[v.name] = concrete(graph, outer, sizes, f"the value {outer.name!r} its body reads", ctx.fail)
    x = feeds[xs_in.name]
    h0 = (0.5 * rng.standard_normal((x.shape[1], h.shape[1]))).astype(DTYPES[h.dtype])
    carried0 = [h0 if j == state else concrete(graph, ctx.inputs[2 + j], sizes, f"loop input {name!r}", ctx.fail)
                for j, name in enumerate(ctx.node.input[2:])]
    trip = int(concrete(graph, ctx.inputs[0], sizes, "the trip count M", ctx.fail))
    cond = True if not ctx.has(1) else bool(concrete(graph, ctx.inputs[1], sizes, "the initial condition",
                                                     ctx.fail))
    finals, scans = simulate(body.graph, body.iteration, body.cond, body.carried, body.outs, feeds, carried0, trip,
                             cond, x.shape[0], index, ctx.fail)
    errors = []
    for cell in cells:
        op = get_op(cell.op)
        attrs = op.normalize_attrs({"direction": "forward", **cell.attrs}, where=cell.op)
        y, h_t = op.run(attrs, [x, cell.w, cell.r, cell.b, h0])[:2]
        err = max([rel_error(finals[state], h_t)] + [rel_error(s, y) for s in scans])
        if err <= CHECK_TOL:
            return cell, finals
        errors.append(f"{cell.describe()} differs by {err:.2g}")
    raise ctx.fail(f"its body ({summary(body.graph, x_t, h)}) looks like a recurrent cell but does not "
                   f"compute one: {'; '.join(errors)}")
