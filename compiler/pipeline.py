"""The pass pipeline.

Passes themselves (the ``Pass`` base class, ``RewritePass``, the pass table and
``register_pass``) are declared in kcc.passes.base; a pass imports them from
there, never from this module. Importing the pipeline imports kcc.passes, which
registers every pass.

A pipeline is an explicit, named list of configured passes. Ordering rules are
data: a pass lists in ``after`` the passes that must come before it when both
are in a pipeline, and building a Pipeline checks them. Running a pipeline can
validate the graph after every pass, dump it (text + Graphviz), time it, and
re-run the interpreter to find the first pass that changed the outputs.

Validation after a pass checks what changed since the last one
(``Graph.validate_changes``, in time proportional to the change, so a pipeline
stays linear in the graph; the graph records every change from its creation on,
the frontend's too). Under ``verify_each`` the whole graph is validated after
every pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kcc import dump, interpreter, progress
from kcc.errors import ConversionError, IRError, KccError, OptionError
import kcc.passes  # noqa: F401  (importing the package registers every pass)
from kcc.ir import Graph
from kcc.passes.base import PASSES, Pass


def get_pass(name: str) -> type[Pass]:
    try:
        return PASSES[name]
    except KeyError:
        raise OptionError(f"no pass named {name!r} (passes: {', '.join(PASSES)})") from None


def all_passes() -> dict[str, type[Pass]]:
    return dict(PASSES.items())


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool


@dataclass
class RunOptions:
    """How to run a pipeline: checks and debugging output."""

    validate: bool = True
    verify_each: bool = False
    verify_tolerance: float = 1e-4
    dump_dir: str | Path | None = None
    dump_all: bool = False  # dump every pass, not only those that changed the graph
    print_ir: bool = False
    print_fn: Callable[[str], None] = print
    feeds: dict[str, np.ndarray] | None = None


@dataclass
class PipelineReport:
    records: list[PassRecord] = field(default_factory=list)
    # Set by --verify-each: the first pass that changed an output, and by how much.
    first_divergence: tuple[str, float] | None = None

    def table(self) -> str:
        rows = [("pass", "ms", "nodes before", "nodes after", "changed")]
        for r in self.records:
            rows.append((r.name, f"{r.seconds * 1e3:.2f}", str(r.nodes_before), str(r.nodes_after),
                         "yes" if r.changed else ""))
        total = sum(r.seconds for r in self.records)
        rows.append(("total", f"{total * 1e3:.2f}", "", "", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


class Pipeline:
    """An ordered list of passes whose ordering rules have been checked."""

    def __init__(self, passes: list[Pass], name: str = "pipeline"):
        self.name = name
        self.passes = list(passes)
        names = [p.name for p in self.passes]
        for i, p in enumerate(self.passes):
            for dep in p.after:
                if dep in names and names.index(dep) > i:
                    raise IRError(f"pipeline {name}: {p.name} must come after {dep}")

    @classmethod
    def from_spec(cls, spec: list[str | tuple[str, dict[str, Any]]], name: str = "pipeline") -> "Pipeline":
        """Build from names or (name, options) pairs."""
        passes = []
        for item in spec:
            pname, opts = (item, {}) if isinstance(item, str) else item
            passes.append(get_pass(pname).configure(**opts))
        return cls(passes, name)

    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def run(self, graph: Graph, options: RunOptions | None = None) -> PipelineReport:
        opts = options or RunOptions()
        report = PipelineReport()
        dump_dir = Path(opts.dump_dir) if opts.dump_dir else None
        if dump_dir:
            dumper = dump.Dumper(dump_dir, every_pass=opts.dump_all)
            dumper.write(graph, 0, "frontend")
        if opts.print_ir:
            opts.print_fn(dump.banner("frontend", graph))
        reference = None
        if opts.verify_each:
            feeds = opts.feeds or interpreter.seeded_inputs(graph)
            reference = interpreter.run(graph, feeds)
        done: list[str] = []
        for i, p in enumerate(self.passes, start=1):
            progress.step(f"pass {i}/{len(self.passes)} {p.name} ({len(graph)} nodes)")
            before = len(graph)
            t0 = time.perf_counter()
            try:
                changed = bool(p.run(graph))
                if opts.validate:
                    graph.validate() if opts.verify_each else graph.validate_changes()
            except KccError:
                raise
            except Exception as e:  # a pass bug: say which pass, after which
                prior = ", ".join(done) or "none"
                raise ConversionError(
                    f"pass {p.name} failed ({type(e).__name__}: {e}); passes run before it: {prior}") from e
            dt = time.perf_counter() - t0
            report.records.append(PassRecord(p.name, dt, before, len(graph), changed))
            done.append(p.name)
            if dump_dir:
                dumper.write(graph, i, p.name, changed)
            if opts.print_ir:
                opts.print_fn(dump.banner(p.name, graph))
            if reference is not None and report.first_divergence is None:
                got = interpreter.run(graph, feeds)
                err = _max_rel_error(reference, got, graph.output_names)
                if err > opts.verify_tolerance:
                    report.first_divergence = (p.name, err)
        return report


def _max_rel_error(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], names: list[str]) -> float:
    worst = 0.0
    for (k, a), b in zip(ref.items(), got.values()):
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, err / scale if scale > 0 else err)
    return worst
