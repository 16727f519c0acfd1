"""The Core ML backend: IR graph -> a NeuralNetwork ``coremltools.models.MLModel``.

The protobuf (``coremltools.proto``) is written directly: each IR op maps to
layers through the table in context.py (filled by the emit_* modules), weights
go in as bytes. The boundary is channels-first (the IR's layout), so a Keras
``(N, 28, 28, 1)`` input is a Core ML ``(1, 28, 28)`` input or a 28x28 image.

The target's pipeline is ``standard_pipeline(("lower_attention",)) + COREML_LOWERING``: the Core ML
lowering passes (passes/lower_coreml_*.py) rewrite IR ops NeuralNetwork has no
layer for into ops it has, so that each emitter maps one IR op to one layer.

Blob layout (layout.py): an analysis run before emission picks the rank-5
layout of specification 1 when every node has a rank-5 form, as the old Keras
converter's models were; otherwise ND layers (specification 4,
``EXACT_ARRAY_MAPPING``), where the declared shapes are the IR shapes with
batch 1. Sequences ``(N, F, T)`` hold a unit H axis in the rank-5 layout
(``(F, 1, T)``). The specification version is the lowest the model needs
(spec_version.py).
"""
from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import numpy as np

from kcc.backends import Target, boundary_names, register_target, separate_outputs, standard_pipeline
from kcc.backends.coreml import (  # noqa: F401  (fill the table)
    custom, emit_activation, emit_index, emit_logic, emit_math, emit_nn, emit_norm, emit_recurrent,
    emit_resize, emit_shape, emit_tensor)
from kcc.backends.coreml.context import EMITTERS, CoremlContext, Requirement, origin_of
from kcc.backends.coreml.flexible import BATCH, ShapePlan, first_difference, plan_batch, plan_shapes
from kcc.backends.coreml.layout import BlobLayout, plan_layout
from kcc.backends.coreml.interface import add_inputs, add_metadata, add_outputs, with_source_classifier
from kcc.backends.coreml.options import DEFAULTS, CoremlOptions, add_cli_arguments, options_from_cli, parse_options
from kcc.backends.coreml.size_limit import check_neuralnetwork_size
from kcc.backends.coreml.spec_version import ND_VERSION, lowest_version, os_name
from kcc.backends.coreml.updatable import make_updatable
from kcc.backends.coreml.writer import weight_marker, write_spec
from kcc.files import write_atomic
from kcc.coreml import proto
from kcc.errors import ConversionError, KccError
from kcc.ir import Graph
from kcc.passes.base import PASSES

# coremltools logs at import time that its native runtime (macOS only) and the
# installed TensorFlow/scikit-learn versions are unknown to it: noise for kcc's
# users. Quieted unless the application configured that logger itself.
if logging.getLogger("coremltools").level == logging.NOTSET:
    logging.getLogger("coremltools").setLevel(logging.ERROR)

# Core ML lowering, in order (the passes' ``after`` rules check it): recurrent
# unrolling writes activations, the math rules write a clip (round), the axes
# rules move data for resize/dense/layer_norm/batch_norm, the activation rules
# lower clips and activations last; dce drops the sequence outputs nobody reads.
COREML_LOWERING: tuple[str, ...] = (
    "lower_coreml_recurrent",
    "lower_coreml_rms_norm",
    "lower_coreml_math",
    "lower_coreml_axes",
    "lower_coreml_activations",
    "dce",
)
# attention's formula, before the layout passes (its transposes merge there).
EARLY_LOWERING: tuple[str, ...] = ("lower_attention",)
PIPELINE = standard_pipeline(EARLY_LOWERING) + COREML_LOWERING


def supported_ops() -> list[str]:
    """IR ops the target compiles: those with an emitter and those the lowering rewrites."""
    import kcc.passes  # noqa: F401  (registers every pass)

    lowered = {rule.root_op for name in EARLY_LOWERING + COREML_LOWERING for rule in getattr(PASSES[name], "rules", [])}
    return sorted(set(EMITTERS.names()) | lowered)


def _blob_names(graph: Graph) -> dict[str, str]:
    """Blob names of the non-constant values (constants become weights, not blobs)."""
    return {k: v for k, v in boundary_names(graph).items() if not graph.value(k).is_const}


def _network(spec: Any, opts: CoremlOptions) -> Any:
    return spec.neuralNetworkClassifier if opts.class_labels is not None else spec.neuralNetwork


def _emit_network(graph: Graph, opts: CoremlOptions, layout: BlobLayout, sizes: dict[str, int],
                  dynamic: set[str], holes: list | None = None) -> tuple[Any, Any, CoremlContext]:
    """The spec with its network's layers written for the input sizes ``sizes`` (no interface yet);
    the symbols in ``dynamic`` may vary. With ``holes``, large weights are left out (writer.py)."""
    spec = proto.module("Model_pb2").Model()
    network = _network(spec, opts)
    network.SetInParent()
    names = _blob_names(graph)
    ctx = CoremlContext(graph, network, nd=layout.nd, float16=opts.float16, names=names,
                        seq=set(layout.sequences), sizes=dict(sizes), dynamic=set(dynamic), holes=holes)
    ctx._taken.reserve(names.values())
    for node in graph.nodes():
        ctx.run(node)
    return spec, network, ctx


def _flexible_network(graph: Graph, opts: CoremlOptions, layout: BlobLayout,
                      plan: ShapePlan, holes: list | None = None) -> tuple[Any, Any, CoremlContext]:
    """The network written for the plan's default sizes; drops from ``plan.flexible`` the axes the
    layers depend on (flexible.py): the batch stays 1, any other such axis is a ConversionError
    naming the layer. Given ``holes`` (writer.py), the large weights of the writing returned are
    left out and put there; two writings are then compared with their left-out weights too."""
    def write() -> tuple[Any, Any, CoremlContext]:
        return _emit_network(graph, opts, layout, plan.sizes, set(plan.flexible),
                             [] if holes is not None else None)

    def difference(ctx: CoremlContext, symbols: list[str]) -> str | None:
        try:
            _, other, other_ctx = _emit_network(graph, opts, layout, plan.moved(symbols), set(plan.flexible),
                                                [] if ctx.holes is not None else None)
        except KccError as e:
            return f"writing the layers for other sizes fails ({e})"
        where = first_difference(ctx.network, other) or _weight_difference(ctx, other_ctx)
        if where is None:
            return None
        node = next((n for n, layers in ctx.layers_of.items() if any(lyr.name == where[0] for lyr in layers)), None)
        origin = f" of node {node}{origin_of(graph.node(node))}" if node is not None else ""
        return f"layer {where[0]!r} ({where[1]}){origin}"

    written = write()
    symbols = list(plan.flexible)
    if symbols and difference(written[2], symbols) is not None:
        if BATCH in plan.flexible and difference(written[2], [BATCH]) is not None:
            plan.fix(BATCH)     # the batch stays 1, as declared before flexible shapes
            written = write()
        rest = [s for s in plan.flexible if s != BATCH]
        where = difference(written[2], rest) if rest else None
        if where is not None:
            raise ConversionError(
                f"Core ML: {where} depends on the size of the dynamic input axes {rest}, so the model cannot "
                f"declare flexible input shapes. Give the inputs fixed shapes with input_name_shape_dict "
                f"(a dict from input name to shape).")
    if holes is not None:
        holes[:] = written[2].holes
    return written


def _weight_difference(a: CoremlContext, b: CoremlContext) -> tuple[str, str] | None:
    """(name, type) of the first layer whose left-out weights differ between two writings whose
    layers are otherwise equal (writer.py's markers number the weights in order); None if none."""
    for i, (x, y) in enumerate(zip(a.holes or [], b.holes or [])):
        if x.shape != y.shape or not np.array_equal(x, y):
            layer = next(lyr for lyr in a.network.layers if weight_marker(i) in lyr.SerializeToString())
            return layer.name, layer.WhichOneof("layer")
    return None


def build_spec(graph: Graph, opts: CoremlOptions, *, force_nd: bool = False, holes: list | None = None) -> Any:
    """The ``Model_pb2.Model`` for ``graph``: layers, interface, metadata, updates, spec version.

    ``graph`` has been through the target's pipeline (at least ``COREML_LOWERING``).
    The layout analysis picks rank 5 or ND once; ``force_nd`` picks ND (tests use
    it to exercise every ND emitter). Dynamic input axes become flexible shapes
    (flexible.py); the layers are written for their default sizes. Given a list
    ``holes``, large weights may be left out of the spec and appended there, for
    ``writer.write_spec`` (``write_coreml``).
    """
    check_neuralnetwork_size(graph, float16=opts.float16)     # one protobuf: 2 GB at most
    opts = with_source_classifier(graph, opts)                # a Core ML source's labels, unless overridden
    separate_outputs(graph)
    plan = plan_shapes(graph)
    layout = plan_layout(graph, force_nd=force_nd, sizes=plan.sizes)
    if layout.nd and opts.target_version is not None and opts.target_version < ND_VERSION:
        raise ConversionError(
            f"minimum_deployment_target={opts.target_name!r} cannot hold this model: {layout.describe()}, "
            f"which need {os_name(ND_VERSION)} or newer. Raise minimum_deployment_target to "
            f"{os_name(ND_VERSION)} or change the layer.")
    if layout.nd:
        plan_batch(graph, plan)     # the rank-5 layout's batch axis is implicit: any batch runs
    spec, network, ctx = _flexible_network(graph, opts, layout, plan, holes)
    ctx.flexible = plan.flexible
    add_inputs(ctx, spec, network, graph, opts)     # declared shapes depend on the layout too
    add_outputs(ctx, spec, network, graph, opts)
    if layout.nd:
        NeuralNetwork_pb2 = proto.module("NeuralNetwork_pb2")
        network.arrayInputShapeMapping = NeuralNetwork_pb2.EXACT_ARRAY_MAPPING
        network.imageInputShapeMapping = NeuralNetwork_pb2.RANK4_IMAGE_MAPPING
        ctx.requirements.append(Requirement(ND_VERSION, layout.describe()))
    add_metadata(spec, opts, graph)
    if opts.float16:
        ctx.require(2, None, "float16 weights (model_precision='float16')")
    if opts.respect_trainable:
        make_updatable(ctx, spec, network, graph)
    spec.specificationVersion = lowest_version(ctx.requirements, opts.target_version, opts.target_name)
    return spec


def emit_coreml(graph: Graph, options: dict[str, Any]) -> Any:
    """Emit ``graph`` as a ``coremltools.models.MLModel`` (options: see options.py)."""
    opts = parse_options(options)
    spec = build_spec(graph, opts)
    return to_mlmodel(spec)


def serialize_coreml(graph: Graph, options: dict[str, Any]) -> bytes:
    """The ``.mlmodel`` bytes of ``graph``, built without importing coremltools."""
    return build_spec(graph, parse_options(options)).SerializeToString()


def write_coreml(graph: Graph, options: dict[str, Any], path: Path) -> list[Path]:
    """Write ``graph`` as the ``.mlmodel`` file ``path``, the large weights streamed from arrays
    rather than held in the spec (writer.py); the same bytes as ``serialize_coreml``."""
    gc.collect()  # arrays the passes replaced may sit in reference cycles: free them before emitting
    holes: list = []
    spec = build_spec(graph, parse_options(options), holes=holes)
    return write_atomic(path, [path.name], lambda work: _write_file(work / path.name, spec, holes))


def _write_file(path: Path, spec: Any, holes: list) -> None:
    with open(path, "wb") as f:
        write_spec(spec, holes, f)


def to_mlmodel(spec: Any) -> Any:
    import warnings

    from kcc.extras import require

    ct = require("coremltools", "building a coremltools MLModel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ct.models.MLModel(spec)
        except Exception as e:  # noqa: BLE001 - coremltools' validation: a kcc bug, say so
            raise ConversionError(f"kcc produced a Core ML spec that coremltools rejects (a kcc bug; please "
                                  f"report it): {e}") from e


TARGET = register_target(Target(
    name="coreml",
    pipeline=PIPELINE,
    emit=emit_coreml,
    serialize=serialize_coreml,
    write=write_coreml,
    default_boundary="channels_first",
    options=dict(DEFAULTS),
    suffix=".mlmodel",
    add_cli_arguments=add_cli_arguments,
    options_from_cli=options_from_cli,
))

__all__ = ["emit_coreml", "build_spec", "write_coreml", "supported_ops", "TARGET", "PIPELINE", "COREML_LOWERING"]
