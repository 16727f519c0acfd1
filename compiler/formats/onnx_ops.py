"""The one table between IR ops and ONNX ops, read by the ONNX importer and the ONNX emitter.

Each ``OpMap`` row says that an IR op and an ONNX op (default domain) mean the
same thing, and how each IR attribute is spelled in ONNX:

    OpMap("leaky_relu", "LeakyRelu", {"alpha": OnnxAttr("alpha", 0.01)})

The emitter (kcc.backends.onnx.emit_table) writes one ONNX node per IR node of
a row's op, every attribute explicit. The importer (kcc.frontends.onnx.ops.
onnx_table) inverts the rows: one IR node per ONNX node, an omitted attribute
taking ONNX's default (``OnnxAttr.default``, from the ONNX operator spec; the IR
op's own defaults come from its declaration in kcc.ops). Ops whose mapping needs
logic (weights relaid out, attributes that become inputs, several outputs) are
not rows: the emitter and the importer each have a small function for them.

``since`` is the first opset with the ONNX op. Below it the emitter has no
spelling for the IR op, and the ONNX lowering passes (passes/lower_onnx_*.py)
rewrite it into ops that have one; their checks read ``since`` from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kcc.ops.activation import SELU_ALPHA, SELU_SCALE

# Opsets the ONNX backend emits.
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 17, 23
# First opset with RMSNormalization (rms_norm's emitter and lower_onnx_rms_norm read it; no row:
# its axes become ``axis`` and its scale an input, logic on each side).
RMS_NORMALIZATION_SINCE = 23

# IR dtype -> ONNX TensorProto element type.
ELEM_TYPES: dict[str, int] = {"f16": 10, "f32": 1, "f64": 11, "i8": 3, "i32": 6, "i64": 7, "u8": 2, "bool": 9}
# ONNX element type -> IR dtype (doubles are read as f32: the IR computes in float32).
IR_DTYPES: dict[int, str] = {**{v: k for k, v in ELEM_TYPES.items()}, 11: "f32"}


def _same(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class OnnxAttr:
    """How one IR attribute is spelled in ONNX."""

    name: str
    # ONNX's default when a node omits the attribute (None: ONNX requires it).
    default: Any = None
    to_onnx: Callable[[Any], Any] = _same
    to_ir: Callable[[Any], Any] = _same


@dataclass(frozen=True)
class OpMap:
    """One IR op <-> one ONNX op, attribute by attribute."""

    ir: str
    onnx: str
    attrs: Mapping[str, OnnxAttr] = field(default_factory=dict)
    # ONNX attributes the IR op fixes (SELU's alpha and gamma): always written;
    # an ONNX node with other values is not this IR op.
    fixed: Mapping[str, float] = field(default_factory=dict)
    # First ONNX opset with the op, when that is newer than MIN_OPSET (checked against
    # onnx.defs by tests/frontends/test_onnx_ops_table.py); 1 for older ops.
    since: int = 1
    # False when the importer reads the ONNX op with a handler of its own (variadic
    # Max/Min, Pow's exponent cast, ...); the handler still takes the IR op from the row.
    imported: bool = True
    # False when the emitter writes the op with a function of its own (reduce axes as
    # an input or an attribute by opset); the function still takes the name from the row.
    emitted: bool = True


_FLOAT = dict(to_onnx=float, to_ir=float)
_BOOL_INT = dict(to_onnx=int, to_ir=bool)
_GELU_APPROX = dict(to_onnx=lambda approx: "tanh" if approx else "none", to_ir=lambda s: s == "tanh")

ROWS: tuple[OpMap, ...] = (
    # Elementwise math.
    OpMap("add", "Add"),
    OpMap("sub", "Sub"),
    OpMap("mul", "Mul"),
    OpMap("div", "Div"),
    OpMap("pow", "Pow", imported=False),      # the importer casts the exponent to the base's dtype
    OpMap("max", "Max", imported=False),      # ONNX Max/Min are variadic
    OpMap("min", "Min", imported=False),
    OpMap("neg", "Neg"),
    OpMap("abs", "Abs"),
    OpMap("sqrt", "Sqrt"),
    OpMap("reciprocal", "Reciprocal"),
    OpMap("exp", "Exp"),
    OpMap("log", "Log"),
    OpMap("sin", "Sin"),
    OpMap("atan", "Atan"),
    OpMap("asin", "Asin"),
    OpMap("acos", "Acos"),
    OpMap("asinh", "Asinh"),
    OpMap("acosh", "Acosh"),
    OpMap("atanh", "Atanh"),
    OpMap("cos", "Cos"),
    OpMap("tan", "Tan"),
    OpMap("erf", "Erf"),
    OpMap("floor", "Floor"),
    OpMap("ceil", "Ceil"),
    OpMap("round", "Round"),
    OpMap("sign", "Sign"),
    OpMap("identity", "Identity"),
    OpMap("cast", "Cast", {"to": OnnxAttr("to", to_onnx=ELEM_TYPES.__getitem__, to_ir=IR_DTYPES.__getitem__)},
          imported=False),                    # the importer drops a cast to the same dtype
    # Activations.
    OpMap("relu", "Relu"),
    OpMap("sigmoid", "Sigmoid"),
    OpMap("tanh", "Tanh"),
    OpMap("softplus", "Softplus"),
    OpMap("softsign", "Softsign"),
    OpMap("leaky_relu", "LeakyRelu", {"alpha": OnnxAttr("alpha", 0.01, **_FLOAT)}),
    OpMap("elu", "Elu", {"alpha": OnnxAttr("alpha", 1.0, **_FLOAT)}),
    OpMap("thresholded_relu", "ThresholdedRelu", {"alpha": OnnxAttr("alpha", 1.0, **_FLOAT)}),
    OpMap("hard_sigmoid", "HardSigmoid", {"alpha": OnnxAttr("alpha", 0.2, **_FLOAT),
                                          "beta": OnnxAttr("beta", 0.5, **_FLOAT)}),
    OpMap("selu", "Selu", fixed={"alpha": SELU_ALPHA, "gamma": SELU_SCALE}, imported=False),
    OpMap("hard_silu", "HardSwish", since=14),
    OpMap("mish", "Mish", since=18),
    OpMap("gelu", "Gelu", {"approximate": OnnxAttr("approximate", "none", **_GELU_APPROX)}, since=20),
    # The 4-D form with a float attn_mask (kcc.ops.attention); the importer does not read
    # Attention (its 3-D form, caches and softcap are other ops).
    OpMap("attention", "Attention", {"scale": OnnxAttr("scale", **_FLOAT)}, since=23, imported=False),
    OpMap("prelu", "PRelu"),
    OpMap("softmax", "Softmax", {"axis": OnnxAttr("axis", -1)}, imported=False),  # opset < 13 flattens
    OpMap("log_softmax", "LogSoftmax", {"axis": OnnxAttr("axis", -1)}, imported=False),
    # Reductions: axes are an attribute before opset 18 (ReduceSum: 13), an input from then.
    OpMap("reduce_mean", "ReduceMean", imported=False, emitted=False),
    OpMap("reduce_sum", "ReduceSum", imported=False, emitted=False),
    OpMap("reduce_max", "ReduceMax", imported=False, emitted=False),
    OpMap("reduce_min", "ReduceMin", imported=False, emitted=False),
    OpMap("reduce_prod", "ReduceProd", imported=False, emitted=False),
    # Comparisons and logic.
    OpMap("greater", "Greater"),
    OpMap("less", "Less"),
    OpMap("equal", "Equal"),
    OpMap("greater_equal", "GreaterOrEqual"),
    OpMap("less_equal", "LessOrEqual"),
    OpMap("logical_and", "And"),
    OpMap("logical_or", "Or"),
    OpMap("logical_xor", "Xor"),
    OpMap("logical_not", "Not"),
    OpMap("is_nan", "IsNaN"),
    OpMap("is_inf", "IsInf", imported=False),  # detect_positive/detect_negative select one sign
    OpMap("where", "Where"),
    OpMap("argmax", "ArgMax", {"axis": OnnxAttr("axis", 0), "keepdims": OnnxAttr("keepdims", 1, **_BOOL_INT)},
          imported=False),                    # select_last_index=1 is refused
    OpMap("argmin", "ArgMin", {"axis": OnnxAttr("axis", 0), "keepdims": OnnxAttr("keepdims", 1, **_BOOL_INT)},
          imported=False),
    # Data movement and linear algebra.
    OpMap("transpose", "Transpose", {"perm": OnnxAttr("perm", to_onnx=list, to_ir=tuple)},
          imported=False),                    # an omitted perm reverses the axes
    OpMap("concat", "Concat", {"axis": OnnxAttr("axis")}),
    OpMap("flatten", "Flatten", {"axis": OnnxAttr("axis", 1)}, imported=False),  # negative axes
    OpMap("gather", "Gather", {"axis": OnnxAttr("axis", 0)}, imported=False),  # negative constant indices
    OpMap("matmul", "MatMul", imported=False),  # a constant 2-D right operand imports as dense
    OpMap("batch_norm", "BatchNormalization", {"epsilon": OnnxAttr("epsilon", 1e-5)},
          imported=False),                    # training-mode outputs are refused
    # Shape arithmetic on dynamic dims (kcc.ops.shape_ops). The importer folds what it can first.
    OpMap("shape", "Shape", imported=False),  # start/end become a slice
    OpMap("range", "Range", imported=False),
    OpMap("expand", "Expand", imported=False),
    OpMap("reshape_to", "Reshape", imported=False),  # a constant target imports as the static reshape
)

BY_IR: dict[str, OpMap] = {r.ir: r for r in ROWS}
BY_ONNX: dict[str, OpMap] = {r.onnx: r for r in ROWS}
assert len(BY_IR) == len(ROWS) and len(BY_ONNX) == len(ROWS), "an IR or ONNX op appears in two rows"


def ir_attrs(row: OpMap, onnx_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The IR attributes of an ONNX node of ``row``'s op (omitted ones take ONNX's defaults).

    Raises KeyError(name) for a required ONNX attribute the node lacks.
    """
    out = {}
    for ir_name, a in row.attrs.items():
        value = onnx_attrs.get(a.name, a.default)
        if value is None:
            raise KeyError(a.name)
        out[ir_name] = a.to_ir(value)
    return out


def onnx_attrs(row: OpMap, ir_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ONNX attributes of an IR node of ``row``'s op, every one written out."""
    return {**{a.name: a.to_onnx(ir_attrs[k]) for k, a in row.attrs.items()}, **row.fixed}


def fixed_match(row: OpMap, onnx_attrs: Mapping[str, Any], rtol: float = 1e-6) -> bool:
    """Whether an ONNX node's values of the row's fixed attributes are the IR op's (up to float32 rounding)."""
    return all(abs(float(onnx_attrs.get(k, v)) - v) <= rtol * abs(v) for k, v in row.fixed.items())
