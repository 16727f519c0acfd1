"""What every pass is built from: the ``Pass`` base class, ``RewritePass`` and the pass table.

A pass is a small dataclass: its fields are its typed options, ``run(graph)``
rewrites the graph in place and returns whether it changed anything.
``Pass.configure(**options)`` refuses an unknown option. ``@register_pass``
puts the class in ``PASSES`` under its ``name``; a pipeline (kcc.pipeline)
looks passes up there.

This module sits below the passes and the pipeline: a pass imports it (and the
IR, the pattern language and the op declarations), never the pipeline or
another pass. Ordering between passes is data (``after``), checked by the
pipeline; a pass never runs another pass.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from kcc.errors import OptionError
from kcc.ir import Graph
from kcc.pattern import RewriteRule, apply_rules
from kcc.table import Table


class Pass(abc.ABC):
    """Base class of every pass. Subclasses are dataclasses; fields are options."""

    name: ClassVar[str]
    # Passes that must run earlier when both are in a pipeline.
    after: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def run(self, graph: Graph) -> bool:
        """Rewrite ``graph`` in place; True if anything changed."""

    @classmethod
    def configure(cls, **options: Any) -> "Pass":
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        for key, value in options.items():
            if key not in fields:
                raise OptionError(f"pass {cls.name} has no option {key!r} (options: {sorted(fields) or 'none'})")
        return cls(**options)

    def describe(self) -> str:
        if not dataclasses.is_dataclass(self):
            return self.name
        opts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{self.name}({opts})" if opts else self.name


class RewritePass(Pass):
    """A pass that is a list of rewrite rules (kcc.pattern) applied until none fires.

    Subclasses set ``rules``; the rules' docstrings and the pass's show the rewrite.
    """

    rules: ClassVar[list[RewriteRule]] = []

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, list(self.rules))


# Pass name -> pass class. Filled by importing the pass modules (kcc.passes);
# kcc.pipeline does that before it looks a pass up, so this module stays below them.
PASSES: Table[type[Pass]] = Table("pass")


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: put the pass in ``PASSES`` under its ``name`` (a second one is refused)."""
    return PASSES.register(cls.name)(cls)
