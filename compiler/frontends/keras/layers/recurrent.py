"""Recurrent layers: SimpleRNN, LSTM, GRU, RNN(cell) and Bidirectional.

Each layer becomes one time-major IR op per direction (``rnn``/``lstm``/``gru``,
see kcc.ops.recurrent) between two explicit transposes: the IR holds a Keras
sequence ``(N, T, F)`` as ``(N, F, T)``, the op reads ``(T, N, F)``. Stacked
layers' out/in transposes compose to the identity in ``cancel_transposes``.

Keras -> IR weights (one direction): kernels are transposed to ``(gates*H, F)``,
LSTM gates reordered from Keras's i f c o to ONNX's i o f c, and the bias
becomes ``[Wb, Rb]`` (Keras has only an input bias except GRU with
``reset_after=True``, whose ``(2, 3H)`` bias is exactly [input, recurrent]).

``go_backwards=True`` is the op's ``direction="reverse"`` plus, for the returned
sequence, a reversal in time (Keras returns it in processing order, the op keeps
outputs at their input positions). Bidirectional flips the backward layer's
sequence back, so it needs no reversal. Masks and ``stateful=True`` are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kcc.builder import GraphBuilder
from kcc.frontends.keras.activations import activation_name, keras_hard_sigmoid_alpha
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value
from kcc.ops.recurrent import RECURRENT_ACTIVATIONS

# Keras class (layer or cell) -> IR op.
CELL_OPS: dict[str, str] = {
    "SimpleRNN": "rnn", "SimpleRNNCell": "rnn",
    "LSTM": "lstm", "LSTMCell": "lstm",
    "GRU": "gru", "GRUCell": "gru",
}
# Keras activation spellings that have another IR name.
_ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", "exponential": "exp"}
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# Keras LSTM gate blocks (i f c o) in the IR's order (i o f c).
LSTM_ORDER = (0, 3, 1, 2)


@dataclass(frozen=True)
class RecurrentSpec:
    """What one recurrent Keras layer (or RNN(cell)) computes, read from its config."""

    op: str
    units: int
    attrs: dict[str, Any]
    use_bias: bool
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    # tf.keras's time_major=True: the Keras sequence is (T, N, F), held as (T, F, N).
    time_major: bool = False

    @property
    def n_states(self) -> int:
        return 2 if self.op == "lstm" else 1

    @property
    def perm_in(self) -> tuple[int, ...]:
        """IR sequence -> the op's (T, N, F)."""
        return (0, 2, 1) if self.time_major else (2, 0, 1)

    @property
    def perm_out(self) -> tuple[int, ...]:
        """The op's (T, N, H) -> IR sequence."""
        return (0, 2, 1) if self.time_major else (1, 2, 0)


def ir_activation(ctx: KerasLayerContext, act: Any, what: str) -> str:
    name = activation_name(act)
    name = _ACTIVATION_ALIASES.get(name, name)
    if name not in RECURRENT_ACTIVATIONS:
        raise ctx.fail(f"{what}={name!r} is not supported in a recurrent layer "
                       f"(supported: {', '.join(RECURRENT_ACTIVATIONS)})")
    return name


def hard_sigmoid_alpha(ctx: KerasLayerContext) -> float:
    """The slope of Keras's hard_sigmoid: 0.2 in Keras 2 (tf.keras) files, 1/6 in Keras 3."""
    return keras_hard_sigmoid_alpha(ctx.keras2)


def recurrent_spec(ctx: KerasLayerContext, class_name: str, config: dict[str, Any], prefix: str = "") -> RecurrentSpec:
    """Read a SimpleRNN/LSTM/GRU/RNN(cell) config (flags from the layer, maths from the cell).

    ``prefix`` names the layer's weights inside a wrapper (``forward/``).
    """
    cell_cfg = config
    if class_name == "RNN":
        cell = config.get("cell")
        if not isinstance(cell, dict) or cell.get("class_name") not in CELL_OPS:
            kind = cell.get("class_name") if isinstance(cell, dict) else type(cell).__name__
            raise ctx.fail(f"RNN of a {kind} cell is not supported; kcc converts RNN(SimpleRNNCell | LSTMCell | "
                           f"GRUCell). For stacked cells use one layer per cell.")
        class_name, cell_cfg = cell["class_name"], cell["config"]
    if class_name not in CELL_OPS:
        raise ctx.fail(f"{class_name} is not a recurrent layer kcc knows")
    if config.get("stateful"):
        raise ctx.fail("stateful=True keeps state between calls, which a converted model cannot; rebuild the "
                       "layer with stateful=False (pass the state as initial_state instead)")
    op = CELL_OPS[class_name]
    attrs: dict[str, Any] = {"activation": ir_activation(ctx, cell_cfg.get("activation", "tanh"), "activation")}
    if op != "rnn":
        attrs["recurrent_activation"] = ir_activation(
            ctx, cell_cfg.get("recurrent_activation", "sigmoid"), "recurrent_activation")
    if "hard_sigmoid" in attrs.values():
        attrs["hard_sigmoid_alpha"] = hard_sigmoid_alpha(ctx)
    if op == "gru":
        reset_after = cell_cfg.get("reset_after")
        if reset_after is None:
            # Files from Keras < 2.1 have no key; only a reset_after GRU has a (2, 3H) bias.
            bias = prefix + "bias"
            reset_after = ctx.has_weight(bias) and np.ndim(ctx.weight(bias)) == 2
        attrs["reset_after"] = bool(reset_after)
    return RecurrentSpec(op=op, units=int(cell_cfg["units"]), attrs=attrs,
                         use_bias=bool(cell_cfg.get("use_bias", True)),
                         return_sequences=bool(config.get("return_sequences", False)),
                         return_state=bool(config.get("return_state", False)),
                         go_backwards=bool(config.get("go_backwards", False)),
                         time_major=bool(config.get("time_major", False)))


def ir_weights(ctx: KerasLayerContext, spec: RecurrentSpec, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Keras kernel/recurrent_kernel/bias (under ``prefix``) -> IR w, r, b (see kcc.ops.recurrent)."""
    kernel = ctx.weight(prefix + "kernel")
    recurrent = ctx.weight(prefix + "recurrent_kernel")
    h = spec.units
    gates = _GATES[spec.op]
    if kernel.ndim != 2 or kernel.shape[1] != gates * h or recurrent.shape != (h, gates * h):
        raise ctx.fail(f"weights {kernel.shape} / {recurrent.shape} do not match {h} units")

    def reorder(m: np.ndarray) -> np.ndarray:
        if spec.op != "lstm":
            return m
        blocks = np.split(m, 4, axis=-1)
        return np.concatenate([blocks[i] for i in LSTM_ORDER], axis=-1)

    w = np.ascontiguousarray(reorder(kernel).T, dtype=np.float32)
    r = np.ascontiguousarray(reorder(recurrent).T, dtype=np.float32)
    if not spec.use_bias:
        return w, r, None
    bias = np.asarray(ctx.weight(prefix + "bias"), dtype=np.float32)
    if bias.ndim == 2:
        # GRU reset_after: row 0 is the input bias, row 1 the recurrent one.
        b = np.concatenate([bias[0], bias[1]])
    else:
        b = np.concatenate([reorder(bias), np.zeros_like(bias)])
    return w, r, b


def to_time_major(ctx: KerasLayerContext, x: Value, perm: tuple[int, ...]) -> Value:
    """``transpose(x, perm)``, or the time-major value ``x`` was made from.

    A sequence another recurrent layer produced is ``transpose(y, perm_out)``;
    reading ``y`` itself keeps stacked layers free of transposes even when that
    sequence has other readers too (cancel_transposes only folds single-use chains).
    """
    node = ctx.graph.producer(x)
    if node is not None and node.op == "transpose" and \
            tuple(node.attrs["perm"][i] for i in perm) == tuple(range(x.rank)):
        return node.inputs[0]
    return ctx.op.transpose(x, perm=perm)


def reverse_time(ctx: KerasLayerContext, y: Value, axis: int) -> Value:
    return ctx.op.slice(y, starts=(-1,), ends=(-(2 ** 62),), axes=(axis,), steps=(-1,))


def run_recurrent(ctx: KerasLayerContext, spec: RecurrentSpec, x_tm: Value, states: list[Value], prefix: str = ""
                  ) -> tuple[Value, list[Value]]:
    """Emit the op on a time-major sequence: (y (T, N, H) at input positions, final states)."""
    w, r, b = ir_weights(ctx, spec, prefix)
    tag = prefix.replace("/", "_")
    ins = [x_tm, ctx.const(w, f"{tag}w"), ctx.const(r, f"{tag}r"), None if b is None else ctx.const(b, f"{tag}b")]
    if states and len(states) != spec.n_states:
        raise ctx.fail(f"initial_state has {len(states)} tensors, {spec.op.upper()} takes {spec.n_states}")
    ins += list(states) or [None] * spec.n_states
    direction = "reverse" if spec.go_backwards else "forward"
    y, *final = getattr(ctx.op, spec.op)(*ins, direction=direction, **spec.attrs)
    return y, final


def _split_call(x: Any, initial_state: Any) -> tuple[Value, list[Value]]:
    """Accept ``layer(x, initial_state=[...])`` and ``layer([x, *states])``."""
    if isinstance(x, (list, tuple)):
        return x[0], list(x[1:])
    if initial_state is None:
        return x, []
    return x, list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]


def _check_input(ctx: KerasLayerContext, x: Value, mask: Any) -> None:
    if mask is not None:
        raise ctx.fail("masked sequences are not supported; remove the Masking layer / mask argument")
    if x.rank != 3:
        raise ctx.fail(f"expects a (batch, time, features) sequence, got IR shape {x.shape}")


def _keras_sequence(ctx: KerasLayerContext, spec: RecurrentSpec, y_tm: Value) -> Value:
    """The op's sequence output as the IR holds Keras's (N, T, H) -- (N, H, T) -- in Keras's time order."""
    if spec.go_backwards:
        y_tm = reverse_time(ctx, y_tm, 0)
    return ctx.op.transpose(y_tm, perm=spec.perm_out)


@keras_layer("SimpleRNN", "LSTM", "GRU", "RNN")
def recurrent(ctx: KerasLayerContext, x: Any, initial_state: Any = None, mask: Any = None) -> list[Value]:
    x, states = _split_call(x, initial_state)
    _check_input(ctx, x, mask)
    spec = recurrent_spec(ctx, ctx.layer.class_name, ctx.config)
    y_tm, final = run_recurrent(ctx, spec, to_time_major(ctx, x, spec.perm_in), states)
    y = _keras_sequence(ctx, spec, y_tm) if spec.return_sequences else final[0]
    return [y] + final if spec.return_state else [y]


def _inner(config: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    layer = config[key]
    return layer["class_name"], layer["config"]


# Bidirectional merge_mode -> how the forward and backward outputs combine (None keeps both).
_MERGES: dict[str, Callable[[GraphBuilder, Value, Value], Value]] = {
    "concat": lambda op, a, b: op.concat(a, b, axis=a.rank - 1),
    "sum": lambda op, a, b: op.add(a, b),
    "mul": lambda op, a, b: op.mul(a, b),
    "ave": lambda op, a, b: op.mul(op.add(a, b), op.scalar(0.5, a)),
}


@keras_layer("Bidirectional")
def bidirectional(ctx: KerasLayerContext, x: Any, initial_state: Any = None, mask: Any = None) -> list[Value]:
    """Two ops on the same time-major input, merged before the one transpose back."""
    x, states = _split_call(x, initial_state)
    _check_input(ctx, x, mask)
    mode = ctx.get("merge_mode", "concat")
    if mode is not None and mode not in _MERGES:
        raise ctx.fail(f"merge_mode={mode!r} is not one of {sorted(_MERGES)} or None")
    fwd_class, fwd_cfg = _inner(ctx.config, "layer")
    if isinstance(ctx.get("backward_layer"), dict):
        bwd_class, bwd_cfg = _inner(ctx.config, "backward_layer")
    else:
        bwd_class, bwd_cfg = fwd_class, {**fwd_cfg, "go_backwards": not fwd_cfg.get("go_backwards", False)}
    fwd = recurrent_spec(ctx, fwd_class, fwd_cfg, "forward/")
    bwd = recurrent_spec(ctx, bwd_class, bwd_cfg, "backward/")
    if states and len(states) != fwd.n_states + bwd.n_states:
        raise ctx.fail(f"initial_state has {len(states)} tensors; Bidirectional {fwd.op.upper()} takes "
                       f"{fwd.n_states} per direction")
    x_tm = to_time_major(ctx, x, fwd.perm_in)
    y_f, s_f = run_recurrent(ctx, fwd, x_tm, states[:fwd.n_states], "forward/")
    y_b, s_b = run_recurrent(ctx, bwd, x_tm, states[fwd.n_states:], "backward/")
    if fwd.return_sequences:
        # Keras flips the backward layer's sequence, undoing its go_backwards.
        seq_f = reverse_time(ctx, y_f, 0) if fwd.go_backwards else y_f
        seq_b = y_b if bwd.go_backwards else reverse_time(ctx, y_b, 0)
        seqs = [seq_f, seq_b] if mode is None else [_MERGES[mode](ctx.op, seq_f, seq_b)]
        ys = [ctx.op.transpose(s, perm=fwd.perm_out) for s in seqs]
    else:
        ys = [s_f[0], s_b[0]] if mode is None else [_MERGES[mode](ctx.op, s_f[0], s_b[0])]
    return ys + s_f + s_b if fwd.return_state else ys
