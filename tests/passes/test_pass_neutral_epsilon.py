"""A small constant is not a neutral one: ``x + 1e-6`` (an RMS norm's epsilon) is not ``x + 0``.

Rewrite patterns match a number against a constant up to float32 rounding of the
written-out value, relative to that number; for 0 that leaves only 0. Before,
the tolerance was ``1e-6 * max(1, |target|)``, so fold_idempotent removed the
epsilon of every KerasHub Llama/Mistral/Qwen RMS norm (outputs off by 0.5%).
"""
from __future__ import annotations

from pass_helpers import c, check_unchanged, graph_with


def test_epsilon_add_stays():
    g, op, x = graph_with()
    g.set_outputs([op.sqrt(op.add(op.abs(x), c(op, 1e-6))), op.mul(x, c(op, 1.000002))], ["a", "b"])
    check_unchanged(g, "fold_idempotent")
