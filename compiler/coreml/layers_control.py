"""Control flow (spec 4): branch, loop, loopBreak, loopContinue.

Nested networks run in the enclosing scope: blobs they produce stay visible to
the rest of the model, as NeuralNetwork.proto describes. ``copy`` (the only layer
allowed to overwrite a blob) lives in layers_shape.py. Break and continue unwind
to the innermost loop by exceptions.
"""
from __future__ import annotations

import numpy as np

from kcc.coreml.registry import ControlFlowSignal, LayerContext, layer

# A while loop whose condition never turns false would hang the caller; Core ML
# models converted from real programs stay far below this.
MAX_WHILE_ITERATIONS = 1_000_000


class _LoopBreak(ControlFlowSignal):
    pass


class _LoopContinue(ControlFlowSignal):
    pass


def _truth(x: np.ndarray) -> bool:
    return bool(np.abs(np.asarray(x, dtype=np.float64).reshape(-1)[0]) > 1e-6)


@layer("branch")
def branch(p, inputs, ctx: LayerContext):
    if _truth(inputs[0]):
        ctx.run_network(p.ifBranch)
    elif p.HasField("elseBranch"):
        ctx.run_network(p.elseBranch)
    return []


@layer("loop")
def loop(p, inputs, ctx: LayerContext):
    has_input = len(inputs) > 0
    limit = int(np.asarray(inputs[0]).reshape(-1)[0]) if has_input else int(p.maxLoopIterations)
    if not p.conditionVar:
        condition = lambda: True  # noqa: E731 - a pure for loop
    else:
        def condition() -> bool:
            ctx.run_network(p.conditionNetwork)
            if p.conditionVar not in ctx.blobs:
                raise ctx.error(f"the condition network did not produce '{p.conditionVar}'")
            return _truth(ctx.blobs[p.conditionVar])
        if limit == 0 and not has_input:
            limit = MAX_WHILE_ITERATIONS
    count = 0
    while count < limit and condition():
        count += 1
        try:
            ctx.run_network(p.bodyNetwork)
        except _LoopContinue:
            continue
        except _LoopBreak:
            break
    else:
        if count >= MAX_WHILE_ITERATIONS and p.conditionVar:
            raise ctx.error(f"while loop did not end after {MAX_WHILE_ITERATIONS} iterations")
    return []


@layer("loopBreak")
def loop_break(p, inputs, ctx: LayerContext):
    raise _LoopBreak()


@layer("loopContinue")
def loop_continue(p, inputs, ctx: LayerContext):
    raise _LoopContinue()
