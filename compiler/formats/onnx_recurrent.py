"""How the IR's recurrent ops are spelled as ONNX ``RNN``/``LSTM``/``GRU``, read both ways.

The IR ops (kcc.ops.recurrent) were declared on ONNX's conventions: time-major
(``layout=0``), ONNX's gate order (lstm i o f c, gru z r h), ``[Wb, Rb]`` biases,
reverse outputs kept at their input's position. What differs is only:

* the leading ``num_directions`` axis of ONNX's weights, states and outputs
  (one IR op is one direction; ``bidirectional`` is two IR ops);
* the activations: ONNX lists them per direction, (f,) for RNN, (f, g) for GRU,
  (f, g, h) for LSTM, by ONNX op name (``Affine`` for linear), with their
  parameters in ``activation_alpha/beta`` consumed in list order by the
  functions that take them (onnxruntime's reading of the spec). The IR has
  ``recurrent_activation`` (f), ``activation`` (g and, for LSTM, h) and one
  ``hard_sigmoid_alpha``; the parameters of every other function are its IR
  defaults (kcc.ops.recurrent.activation_attrs).

The ONNX emitter (kcc.backends.onnx.emit_recurrent) writes with
``onnx_activation_attrs``; the importer (kcc.frontends.onnx.ops.onnx_recurrent)
reads with ``ir_activation_attrs``, so the two cannot drift apart.
"""
from __future__ import annotations

from typing import Any, Mapping

from kcc.errors import UnsupportedOpError
from kcc.formats.onnx_ops import BY_IR, BY_ONNX
from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_ALPHA_KERAS2, HARD_SIGMOID_BETA
from kcc.ops.recurrent import activation_attrs

ONNX_OP: dict[str, str] = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
IR_OP: dict[str, str] = {v: k for k, v in ONNX_OP.items()}
# Gate blocks stacked along the rows of ONNX's (and the IR's) weights.
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
# The IR activations ONNX's RNN/LSTM/GRU can name: by their rows' ONNX names in
# kcc.formats.onnx_ops, and linear as "Affine" (alpha * x + beta).
ONNX_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softsign", "softplus",
                                     "elu", "leaky_relu")
# ONNX's default activations of one direction.
DEFAULT_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "rnn": ("Tanh",), "gru": ("Sigmoid", "Tanh"), "lstm": ("Sigmoid", "Tanh", "Tanh")}
# ONNX recurrent activations that take parameters, in the order they consume them.
_PARAMS: dict[str, tuple[str, ...]] = {"Affine": ("alpha", "beta"), "LeakyRelu": ("alpha",),
                                       "ThresholdedRelu": ("alpha",), "ScaledTanh": ("alpha", "beta"),
                                       "HardSigmoid": ("alpha", "beta"), "Elu": ("alpha",)}


def activation_names(op: str, attrs: Mapping[str, Any]) -> list[str]:
    """The IR activations of one direction in ONNX's list order: (f,) rnn, (f, g) gru, (f, g, h) lstm."""
    if op == "rnn":
        return [attrs["activation"]]
    return [attrs["recurrent_activation"], attrs["activation"]] + ([attrs["activation"]] if op == "lstm" else [])


def onnx_activation_attrs(op: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``activations`` and their ``activation_alpha/beta`` for an IR node of ``op`` with ``attrs``.

    A function's parameters are its IR attributes spelled ``alpha``/``beta`` in
    the shared table (HardSigmoid: both, Elu and LeakyRelu: alpha), with the
    values the recurrent op gives them.
    """
    acts, alphas, betas = [], [], []
    for name in activation_names(op, attrs):
        if name == "linear":
            acts.append("Affine")
            alphas.append(1.0)
            betas.append(0.0)
            continue
        row = BY_IR[name]
        values = activation_attrs(name, attrs)
        acts.append(row.onnx)
        for ir_attr, a in row.attrs.items():
            (alphas if a.name == "alpha" else betas).append(float(values[ir_attr]))
    return {"activations": acts, "activation_alpha": alphas or None, "activation_beta": betas or None}


def ir_activation_attrs(op: str, onnx_attrs: Mapping[str, Any], directions: int, where: str) -> list[dict[str, Any]]:
    """The IR activation attributes of each direction of an ONNX ``op`` node with attributes ``onnx_attrs``.

    Raises UnsupportedOpError (naming ``where`` and the attribute) for what the
    IR cannot hold: an activation outside ONNX_ACTIVATIONS, parameters other
    than the IR's, an LSTM whose g and h differ, two hard_sigmoid slopes.
    """
    per = len(DEFAULT_ACTIVATIONS[op])
    acts = list(onnx_attrs.get("activations") or DEFAULT_ACTIVATIONS[op] * directions)
    if len(acts) != per * directions:
        raise UnsupportedOpError(f"{where}: attribute activations has {len(acts)} entries, {IR_OP.get(op, op)} "
                                 f"with {directions} direction(s) needs {per * directions}")
    alphas = list(onnx_attrs.get("activation_alpha") or [])
    betas = list(onnx_attrs.get("activation_beta") or [])
    out = []
    for d in range(directions):
        names, slopes = [], set()
        for act in acts[d * per:(d + 1) * per]:
            params = {}
            for p in _PARAMS.get(act, ()):
                pool = alphas if p == "alpha" else betas
                if not pool:
                    raise UnsupportedOpError(f"{where}: activation {act} without its activation_{p} value "
                                             "(kcc needs every parameter written out)")
                params[p] = float(pool.pop(0))
            names.append(_ir_activation(act, params, slopes, where))
        attrs: dict[str, Any] = {"activation": names[-1]}
        if op != "rnn":
            attrs["recurrent_activation"] = names[0]
        if op == "lstm" and names[1] != names[2]:
            raise UnsupportedOpError(f"{where}: attribute activations gives LSTM g={names[1]} and h={names[2]}; "
                                     "kcc's lstm uses one activation for both")
        if len(slopes) > 1:
            raise UnsupportedOpError(f"{where}: attribute activation_alpha gives HardSigmoid two slopes "
                                     f"{sorted(slopes)}; kcc's recurrent ops take one")
        if slopes:
            attrs["hard_sigmoid_alpha"] = slopes.pop()
        out.append(attrs)
    return out


def _known_slope(alpha: float) -> float:
    """Keras's hard_sigmoid slope (1/6, or 0.2 for Keras 2) when ``alpha`` is it up to float32 rounding.

    ONNX stores ``activation_alpha`` as float32, so Keras 3's 1/6 comes back as
    0.16666667163...; the IR (and the Keras backend) want the exact constant.
    """
    for known in (HARD_SIGMOID_ALPHA, HARD_SIGMOID_ALPHA_KERAS2):
        if abs(alpha - known) <= 1e-6 * known:
            return known
    return alpha


def _ir_activation(act: str, params: dict[str, float], slopes: set[float], where: str) -> str:
    """The IR name of ONNX recurrent activation ``act`` with ``params``; HardSigmoid's slope goes to ``slopes``."""
    if act == "Affine":
        if params != {"alpha": 1.0, "beta": 0.0}:
            raise UnsupportedOpError(f"{where}: activation Affine with alpha={params['alpha']}, "
                                     f"beta={params['beta']}; kcc's recurrent ops take only the identity (1, 0)")
        return "linear"
    row = BY_ONNX.get(act)
    if row is None or row.ir not in ONNX_ACTIVATIONS:
        names = ", ".join("Affine" if n == "linear" else BY_IR[n].onnx for n in ONNX_ACTIVATIONS)
        raise UnsupportedOpError(f"{where}: attribute activations names {act}, which kcc's recurrent ops cannot "
                                 f"use (supported: {names})")
    if act == "HardSigmoid":
        if abs(params["beta"] - HARD_SIGMOID_BETA) > 1e-6:
            raise UnsupportedOpError(f"{where}: activation HardSigmoid with beta={params['beta']}; kcc's recurrent "
                                     f"ops fix it at {HARD_SIGMOID_BETA}")
        slopes.add(_known_slope(params["alpha"]))
        return row.ir
    wanted = activation_attrs(row.ir, {})
    for ir_attr, a in row.attrs.items():
        if abs(params[a.name] - float(wanted[ir_attr])) > 1e-6 * max(1.0, abs(float(wanted[ir_attr]))):
            raise UnsupportedOpError(f"{where}: activation {act} with {a.name}={params[a.name]}; kcc's recurrent "
                                     f"ops use {act} with {a.name}={wanted[ir_attr]}")
    return row.ir
