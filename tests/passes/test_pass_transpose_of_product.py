"""cancel_transposes' transpose_of_product: transpose(A B) over the last two axes -> B^T A^T, composed.

The traced attention scores: key (B, T, H, d) and the scaled query, each
transposed to heads-first, multiplied as K Q^T and transposed back to (B, H, T, S).
Batch 2, length 5 vs 7, heads 3, dim 4: a wrong composition changes the shape or
the numbers.
"""
from __future__ import annotations

import numpy as np

from pass_helpers import check_rewrite, check_unchanged
from kcc.builder import GraphBuilder
from kcc.ir import Graph, TensorType


def _scores(extra_reader: bool = False):
    g = Graph("scores")
    q = g.add_input("q", TensorType(("N", 5, 3, 4)))
    k = g.add_input("k", TensorType(("N", 7, 3, 4)))
    op = GraphBuilder(g, origin="mha", name="mha")
    kt = op.transpose(k, perm=(0, 2, 1, 3))             # (N, 3, 7, 4)
    qt = op.transpose(q, perm=(0, 2, 3, 1))             # (N, 3, 4, 5)
    s = op.transpose(op.matmul(kt, qt), perm=(0, 1, 3, 2))   # (N, 3, 5, 7)
    outs, names = [s], ["scores"]
    if extra_reader:
        outs, names = [s, op.relu(kt)], ["scores", "k_heads"]
    g.set_outputs(outs, names)
    return g


def test_scores_transpose_moves_onto_the_operands_and_composes():
    g = _scores()
    out = check_rewrite(g, "cancel_transposes", "transpose_of_product", ["transpose", "transpose", "matmul"])
    perms = sorted(n.attrs["perm"] for n in out.nodes() if n.op == "transpose")
    assert perms == [(0, 2, 1, 3), (0, 2, 3, 1)]      # q heads-first, k heads-first and transposed


def test_an_operand_transpose_read_elsewhere_is_left_alone():
    check_unchanged(_scores(extra_reader=True), "cancel_transposes")
