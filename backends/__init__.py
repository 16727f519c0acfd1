"""kcc.backends: one emitter per target, each a table from IR op to emitter.

A backend declares a ``Target``: its name, the pass pipeline it wants, the
boundary layout it defaults to, the options it accepts, and ``emit``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import kcc.passes  # noqa: F401  (registers every pass in PASSES)
from kcc.errors import OptionError
from kcc.passes.base import PASSES


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
    # The model file's bytes, for writers that need no model object (the CLI). When
    # None, the bytes come from emit()'s model. Core ML sets it so writing a file
    # never imports coremltools (which imports TensorFlow).
    serialize: Callable[..., bytes] | None = None
    # Write the model file(s) at a path: (graph, options, path) -> the paths written. Weights go
    # from the graph's arrays to the file as it is written, with no model object or bytes of the
    # whole model in memory (kcc.compile_to_file and the CLI use it when set).
    write: Callable[..., list[Any]] | None = None
    # CLI hooks: add this target's flags to an argparse group; turn parsed args into options.
    add_cli_arguments: Callable[[Any], None] | None = None
    options_from_cli: Callable[[Any], dict[str, Any]] | None = None
    # Target options handed to every pipeline pass that has an option field of the
    # same name (ONNX's lowering passes take ``opset``).
    pass_options: tuple[str, ...] = ()

    def pipeline_spec(self, options: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """The pipeline as (pass, options) pairs, ``pass_options`` filled in from ``options`` (else the defaults)."""
        return with_pass_options(self.pipeline, {k: v for k, v in {**self.options, **(options or {})}.items()
                                                 if k in self.pass_options})


def with_pass_options(spec: tuple[Any, ...] | list[Any], values: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Pipeline entries with ``values`` given to each pass that has an option field of that name.

    Options an entry sets itself win.
    """
    out = []
    for item in spec:
        name, given = (item, {}) if isinstance(item, str) else item
        cls = PASSES.get(name)  # an unknown name passes through: the pipeline refuses it by name
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        out.append((name, {**{k: v for k, v in values.items() if k in fields}, **given}))
    return out


# The pass pipeline every target runs, in order (ordering rules are checked when
# it is built). Decomposed activations and normalizations (traced Lambda bodies)
# become fused IR ops first, then constants fold into weights, then layout
# cleanups, then dead code goes. Neither ONNX nor Core ML NeuralNetwork has a
# conv/dense with a built-in activation, so fuse_activation gets an empty table.
STANDARD_PIPELINE: tuple[Any, ...] = (
    "fold_dense_reshape",
    "fold_shapes",
    "fold_identity",
    "fold_idempotent",
    "fuse_square",
    "fuse_clip",
    "fuse_leaky_relu",
    "fuse_silu",
    "fuse_mish",
    "fuse_gelu",
    "fuse_hard_silu",
    "fuse_normalization",
    "fold_keepdims_squeeze",
    "fold_batchnorm",
    "fold_channel_affine",
    "fold_pad_window",
    "fold_flatten_transpose",
    "fold_layout_reshape",
    "sink_transposes",
    "cancel_transposes",
    ("fuse_activation", {"fusable": {}}),
    "dce",
)


def standard_pipeline(layout_lowering: tuple[str, ...] = ()) -> tuple[Any, ...]:
    """STANDARD_PIPELINE with a target's ``layout_lowering`` passes run just before the layout passes.

    A lowering that writes transposes (attention's formula transposes k) runs there,
    so sink_transposes and cancel_transposes merge its transposes with the frontend's.
    """
    at = STANDARD_PIPELINE.index("sink_transposes")
    return STANDARD_PIPELINE[:at] + tuple(layout_lowering) + STANDARD_PIPELINE[at:]


class UniqueNames:
    """The names taken in one target model: ``take("conv")`` gives ``conv``, then ``conv__1``, ...

    Every backend names tensors, layers or nodes that the IR does not name (a
    decomposition's temporaries, a second layer for one node); one scheme for all.
    """

    def __init__(self, taken: Any = (), sep: str = "__", first: int = 1):
        self._taken: set[str] = set(taken)
        self._sep, self._first = sep, first

    def take(self, hint: str) -> str:
        name, i = hint, self._first - 1
        while name in self._taken:
            i += 1
            name = f"{hint}{self._sep}{i}"
        self._taken.add(name)
        return name

    def reserve(self, names: Any) -> None:
        """Mark ``names`` (the model's boundary names) as taken."""
        self._taken.update(names)

    def __contains__(self, name: str) -> bool:
        return name in self._taken


def separate_outputs(graph: Any) -> None:
    """Give an output that is a graph input, a constant, or the same value as another output, its own identity node.

    Both targets name tensors by value, so every model output needs a value of its own
    that a node produces (an ONNX output that is only an initializer is invalid).
    """
    seen: set[str] = set()
    fixed = []
    for v, n in zip(graph.outputs, graph.output_names):
        if v in graph.inputs or v.const is not None or v.name in seen:
            v = graph.add_node("identity", [v], {}, name=n).output
        seen.add(v.name)
        fixed.append(v)
    graph.set_outputs(fixed, graph.output_names)


def boundary_names(graph: Any) -> dict[str, str]:
    """IR value name -> target tensor name: outputs take their output names; clashing inner values are renamed."""
    names: dict[str, str] = {}
    out_names = set(graph.output_names)
    for v in graph.values():
        names[v.name] = v.name if v.name not in out_names else f"{v.name}__inner"
    for v, n in zip(graph.outputs, graph.output_names):
        names[v.name] = n
    return names


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

    for mod in ("kcc.backends.onnx", "kcc.backends.coreml", "kcc.backends.keras"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a backend package without its target yet
            if e.name != mod:
                raise
