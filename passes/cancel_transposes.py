"""cancel_transposes: compose chains of transposes; drop those that compose to identity.

Before::

    %t1: f32[N,28,28,8] = transpose(%x) {perm=(0, 2, 3, 1)}
    %t2: f32[N,8,28,28] = transpose(%t1) {perm=(0, 3, 1, 2)}
    %y: f32[N,8,28,28] = relu(%t2)

After::

    %y: f32[N,8,28,28] = relu(%x)

A transpose that only moves size-1 axes (and keeps the others in order) is a
reshape in disguise and becomes one, so reshape folding can take it further.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcc.passes.base import RewritePass, register_pass
from kcc.passes._transpose_rules import RULES


@register_pass
@dataclass
class CancelTransposes(RewritePass):
    name = "cancel_transposes"
    after = ("fold_flatten_transpose", "sink_transposes")
    rules = RULES
