"""Imports run one way: a walk over every import statement of the package.

The layers, lowest first::

    core       kcc.ir, kcc.ops, kcc.table, kcc.errors, kcc.layout, kcc.builder, kcc.pattern,
               kcc.interpreter, kcc.printer, kcc.dump, kcc.formats (the format tables the
               importers and emitters share), kcc.coreml (the Core ML runtime, an
               independent oracle), and every other kcc.* module not named below
    frontends  kcc.frontends.*      (import core and frontends)
    passes     kcc.passes.*         (import core, kcc.passes.base and private kcc.passes._* helpers)
    backends   kcc.backends.*       (import core, passes and backends: an emitter may share a
                                     helper with the lowering pass before it, in data-path order)
    top        kcc (the package), kcc.api, kcc.cli, kcc.pipeline, kcc.demo, kcc.testing,
               kcc.examples, kcc.__main__, and the command-line tools behind the CLI
               (kcc.describe: ``kcc inspect``; kcc.coreml.cli, kcc.coreml.__main__: the
               Core ML runtime's command)   (import anything)

Every import counts: module level, inside functions (a lazy import that hides a
cycle is still an edge), ``from kcc import x`` (an edge to ``kcc.x`` when that is
a module, else to the package), relative imports, and ``importlib.import_module``
/ ``__import__`` with a literal name. Also checked: nothing in the package imports
``tests`` or ``tools`` or touches ``sys.path``, no pass runs another pass, and no
import cycle runs through two modules unless one is a package whose own registry
loads it (the Table loader: ``kcc.ops.registry`` imports ``kcc.ops`` on first lookup).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"compiler": "kcc", "passes": "kcc.passes", "backends": "kcc.backends"}

TOP = ("kcc", "kcc.api", "kcc.cli", "kcc.pipeline", "kcc.demo", "kcc.testing", "kcc.examples", "kcc.__main__",
       "kcc.describe", "kcc.coreml.cli", "kcc.coreml.__main__")
# Layer -> the layers it may import.
ALLOWED = {
    "core": {"core"},
    "frontends": {"core", "frontends"},
    "passes": {"core"},          # plus kcc.passes.base and kcc.passes._* (see _pass_edge_ok)
    "backends": {"core", "passes", "backends"},
    "top": {"core", "frontends", "passes", "backends", "top"},
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package] + parts)] = path
    return out


MODULES = _modules()


def layer(module: str) -> str:
    def under(prefixes: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    if module in TOP or module.startswith("kcc.describe."):
        return "top"
    if under(("kcc.frontends",)):
        return "frontends"
    if under(("kcc.passes",)):
        return "passes"
    if under(("kcc.backends",)):
        return "backends"
    return "core"  # a new kcc.* module is core-level unless it is added to TOP


def _resolve(name: str) -> str:
    """The longest prefix of ``name`` that is a module of the package (``kcc.ir.Graph`` -> ``kcc.ir``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return name


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def edges() -> list[Edge]:
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # `from pkg import name`: an edge to pkg.name when that is a module, else to pkg.
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in MODULES else stem for a in node.names]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if called in ("import_module", "__import__"):
                    targets = [node.args[0].value]
            for t in targets:
                out.append(Edge(module, t, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return out


EDGES = edges()
INTERNAL = [Edge(e.source, _resolve(e.target), e.where) for e in EDGES if e.target.split(".")[0] == "kcc"]


def _pass_edge_ok(e: Edge) -> bool:
    """A pass module may use the pass base and private helpers, never another pass (or the pass package)."""
    name = e.target.rsplit(".", 1)[-1]
    return e.target == "kcc.passes.base" or (e.target.startswith("kcc.passes.") and name.startswith("_"))


def _allowed(e: Edge) -> bool:
    src, dst = layer(e.source), layer(e.target)
    if src == dst == "passes":  # the package's __init__ imports its passes; a pass only base and helpers
        return e.source == "kcc.passes" or _pass_edge_ok(e)
    return dst == src or dst in ALLOWED[src]


def backward_edges(internal: list[Edge] = INTERNAL) -> list[Edge]:
    return [e for e in internal if not _allowed(e)]


def test_imports_run_one_way():
    bad = sorted(set(backward_edges()), key=str)
    assert not bad, "backward imports (see this test's docstring for the layers):\n" + "\n".join(map(str, bad))


def test_nothing_imports_tests_or_tools():
    bad = [e for e in EDGES if e.target.split(".")[0] in ("tests", "tools", "conftest")]
    assert not bad, "\n".join(map(str, bad))


def test_nothing_edits_sys_path():
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} uses sys.path")
            if isinstance(node, ast.Attribute) and node.attr == "spec_from_file_location":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} loads a module from a file path")
    assert not bad, "\n".join(bad)


def test_no_pass_runs_another_pass():
    """Ordering lives in the pipeline's checked data; a pass never looks up or builds another pass."""
    bad = []
    for module, path in MODULES.items():
        if layer(module) != "passes":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id in ("get_pass", "all_passes", "Pipeline", "PASSES"):
                if not (module == "kcc.passes.base" and node.id == "PASSES"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} uses {node.id}")
    assert not bad, "\n".join(bad)


def _cycles() -> list[list[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in INTERNAL:
        if e.target in MODULES and e.target != e.source:
            graph[e.source].add(e.target)
    # A registry module loading its own package (the Table loader) is the one allowed cycle.
    for m in MODULES:
        graph[m] = {t for t in graph[m] if not (_is_package(t) and m.startswith(t + "."))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for m in sorted(graph):
            if m not in index:
                visit(m)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_cycles_across_layers_or_in_the_core():
    """A cycle the interpreter only survives because one side imports lazily is still a cycle."""
    bad = [c for c in _cycles() if len({layer(m) for m in c}) > 1 or any(layer(m) == "core" for m in c)]
    assert not bad, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in bad)


def test_the_walk_sees_lazy_and_relative_imports():
    """The walk must see what it polices: a function-level import, a relative one, ``from kcc import x``."""
    lazy = [e for e in INTERNAL if e.source == "kcc.pipeline" and e.target == "kcc.passes"]
    assert lazy, "kcc.pipeline's function-level import of kcc.passes was not seen"
    relative = [e for e in INTERNAL if e.source == "kcc.passes" and e.target == "kcc.passes.dce"]
    assert relative, "kcc.passes' `from kcc.passes import (dce, ...)` was not resolved to the modules"


def test_the_layer_rules_catch_backward_edges():
    """The rules on made-up edges: each backward kind is caught, each allowed kind passes."""
    edges = {
        "ops->frontend": Edge("kcc.ops.registry", "kcc.frontends.keras", "a:1"),
        "pass->pass": Edge("kcc.passes.fuse_silu", "kcc.passes.dce", "b:1"),
        "pass->pipeline": Edge("kcc.passes.fuse_silu", "kcc.pipeline", "c:1"),
        "backend->frontend": Edge("kcc.backends.onnx", "kcc.frontends.keras.registry", "d:1"),
        "frontend->backend": Edge("kcc.frontends.keras.lower", "kcc.backends.coreml", "e:1"),
        "frontend->pass": Edge("kcc.frontends.onnx", "kcc.passes.fuse_gelu", "f:1"),
        "layout->backend": Edge("kcc.layout", "kcc.backends", "g:1"),
    }
    allowed = {
        "pass->helper": Edge("kcc.passes.fuse_silu", "kcc.passes._match", "h:1"),
        "pass->base": Edge("kcc.passes.fuse_silu", "kcc.passes.base", "i:1"),
        "package->pass": Edge("kcc.passes", "kcc.passes.dce", "j:1"),
        "api->backend": Edge("kcc.api", "kcc.backends", "k:1"),
        "backend->pass helper": Edge("kcc.backends.coreml.emit_math", "kcc.passes.lower_coreml_math", "l:1"),
        "frontend->ir": Edge("kcc.frontends.keras.lower", "kcc.ir", "m:1"),
    }
    caught = backward_edges(list(edges.values()) + list(allowed.values()))
    assert sorted(e.where for e in caught) == sorted(e.where for e in edges.values()), caught
