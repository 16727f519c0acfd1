"""kcc.backends: one emitter per target, each a table from IR op to emitter.

A backend declares a ``Target``: its name, the pass pipeline it wants, the
boundary layout it defaults to, the options it accepts, and ``emit``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kcc.errors import OptionError


@dataclass(frozen=True)
class Target:
    name: str
    # Pass names, or (name, options) pairs, in order.
    pipeline: tuple[Any, ...]
    # Emit the optimized graph: (graph, options) -> the target's model object.
    emit: Callable[..., Any]
    # Boundary layout for tensors with channels: "channels_last" (Keras) or "channels_first".
    default_boundary: str = "channels_last"
    # Options this target accepts beyond the common ones, with their defaults.
    options: dict[str, Any] = field(default_factory=dict)
    # File suffix the CLI writes.
    suffix: str = ""
    # CLI hooks: add this target's flags to an argparse group; turn parsed args into options.
    add_cli_arguments: Callable[[Any], None] | None = None
    options_from_cli: Callable[[Any], dict[str, Any]] | None = None


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in _TARGETS:
        raise AssertionError(f"target {target.name} registered twice")
    _TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    _load_all()
    try:
        return _TARGETS[name]
    except KeyError:
        raise OptionError(f"unknown target {name!r}; choose one of {', '.join(sorted(_TARGETS))}") from None


def all_targets() -> dict[str, Target]:
    _load_all()
    return dict(_TARGETS)


def _load_all() -> None:
    import importlib

    for mod in ("kcc.backends.onnx", "kcc.backends.coreml"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a backend package without its target yet
            if e.name != mod:
                raise
