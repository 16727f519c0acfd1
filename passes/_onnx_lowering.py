"""What the ONNX lowering passes (lower_onnx_*.py) share: the opset option and the "ONNX has it" check.

A lowering pass rewrites an IR op the ONNX emitter has no one-to-one form for
(at the target's opset) into ops that have one. Whether an op is native comes
from the table the emitter and the importer read (kcc.formats.onnx_ops): a row's
``since`` is the first opset with the ONNX op, so adding a row with a ``since``
is all it takes for a lowering to stop firing at that opset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from kcc.errors import OptionError
from kcc.formats.onnx_ops import BY_IR, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from kcc.ir import Graph
from kcc.pattern import RewriteRule, apply_rules
from kcc.passes.base import RewritePass


def native_reason(ir_op: str, opset: int) -> str | None:
    """The reason not to lower ``ir_op``: ONNX at ``opset`` has its one-to-one op; else None."""
    row = BY_IR.get(ir_op)
    if row is not None and opset >= row.since:
        return f"ONNX opset {opset} has {row.onnx} (from opset {row.since})"
    return None


def optional_inputs(n: int) -> list[tuple[bool, ...]]:
    """Every present/absent combination of ``n`` optional inputs (a pattern spells None for an absent one)."""
    combos: list[tuple[bool, ...]] = [()]
    for _ in range(n):
        combos = [c + (present,) for c in combos for present in (True, False)]
    return combos


@dataclass
class OnnxLoweringPass(RewritePass):
    """A rewrite pass whose rules depend on the ONNX opset, a typed option the ONNX target fills in.

    Subclasses set ``rules_for``: opset -> the rule list (cached: built once per opset).
    """

    rules_for: ClassVar[Callable[[int], list[RewriteRule]]]

    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int):
            raise OptionError(f"opset={self.opset!r} must be an int (pass {self.name})")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise OptionError(f"opset={self.opset} is out of range; kcc emits ONNX opsets {MIN_OPSET} to "
                              f"{MAX_OPSET} (pass {self.name})")

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, type(self).rules_for(self.opset))
