"""The ONNX backend: IR graph -> onnx.ModelProto.

The target's pipeline is the standard one, then ONNX_LOWERING: the passes that
rewrite what ONNX (at the chosen opset, a pass option filled from the target's
``opset``) has no one-to-one op for. After them every IR node is one ONNX node:
the emitter table in context.py, filled by the rows of the shared table
kcc.formats.onnx_ops (emit_table.py, which the ONNX importer reads too) and by
the emit_* modules for ops that need logic. Weights go in as raw bytes
(numpy_helper), or, when the model is written to a file (``write_onnx``, the
CLI), stream from the graph's arrays to the file (writer.py). The batch dim and any other symbolic dim become
``dim_param``s, so the model takes any batch size.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from kcc.backends import Target, boundary_names, register_target, separate_outputs, standard_pipeline, \
    with_pass_options
from kcc.backends.onnx import (  # noqa: F401  (fill the table)
    emit_lambda, emit_math, emit_nn, emit_recurrent, emit_spatial, emit_table, emit_tensor)
from kcc.backends.onnx.context import OnnxContext, emitter_for, supported_ops
from kcc.backends.onnx.external_data import check_onnx, move_initializers
from kcc.backends.onnx.writer import fill_weights, write_model
from kcc.errors import OptionError
from kcc.formats.onnx_ops import DEFAULT_OPSET, ELEM_TYPES, MAX_OPSET, MIN_OPSET
from kcc.ir import Graph, TensorType
from kcc.passes.base import PASSES

# Target lowering for ONNX, in order (each pass's ``after`` is checked when the
# pipeline is built). Each takes ``opset``; see passes/lower_onnx_*.py.
ONNX_LOWERING: tuple[str, ...] = (
    "lower_onnx_pad_max_pool",      # zero Pad before MaxPool: a pad onnxruntime's Pad_Fusion cannot fold wrong
    "lower_onnx_dense",             # rank > 2 dense -> 1x1 conv (Gemm takes rank 2)
    "lower_onnx_fused_activation",  # conv/dense activation -> its own node (Conv/Gemm carry none)
    "lower_onnx_layer_norm",        # layer_norm LayerNormalization cannot express -> mean/variance ops
    "lower_onnx_rms_norm",          # rms_norm below opset 23 or off the trailing axes -> its formula
    "lower_onnx_elementwise",       # silu, gelu < 20, mish < 18, scaled_tanh, rsqrt, square -> ONNX ops
    "lower_onnx_one_hot",           # one_hot indices -> int64
)
# Lowered before the layout passes (see standard_pipeline): the formula transposes k.
ONNX_LAYOUT_LOWERING: tuple[str, ...] = (
    "lower_onnx_attention",         # attention below opset 23 -> matmul/softmax/matmul
)
PIPELINE = standard_pipeline(ONNX_LAYOUT_LOWERING) + ONNX_LOWERING


def _value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    # Every dynamic axis is a named dim_param; a dim no symbol names gets one of its own.
    dims = [d if isinstance(d, int) else (d if d != "?" else f"{name}_d{i}") for i, d in enumerate(t.shape)]
    return helper.make_tensor_value_info(name, ELEM_TYPES[t.dtype], dims)


def emit_onnx(graph: Graph, *, opset: int = DEFAULT_OPSET, producer: str = "kcc", check: bool = True,
              doc: str = "") -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of ``graph``, weights in it."""
    model, weights = build_onnx(graph, opset=opset, producer=producer, check=check, doc=doc)
    fill_weights(model, weights)  # one tensor's copy in flight at a time
    return model


def write_onnx(graph: Graph, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> list[Path]:
    """Write ``graph`` as the ONNX file ``path`` (plus ``<name>.data`` past 2 GB), the weights
    streamed from the graph's arrays (writer.py); the same bytes ``emit_onnx``'s model saves to."""
    gc.collect()  # arrays the passes replaced may sit in reference cycles: free them before emitting
    model, weights = build_onnx(graph, opset=opset)
    return write_model(model, weights, path)


def build_onnx(graph: Graph, *, opset: int = DEFAULT_OPSET, producer: str = "kcc", check: bool = True,
               doc: str = "") -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model with its large initializers' bytes left out, and those initializers' arrays by name
    (writer.py fills them in or streams them to a file). The checker runs on the model as it is."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(f"opset={opset} is out of range; kcc emits ONNX opsets {MIN_OPSET} to {MAX_OPSET}")
    separate_outputs(graph)
    ctx = OnnxContext(graph, opset, boundary_names(graph), lower=_lower)
    for node in graph.nodes():
        emitter_for(node)(ctx, node)
    inputs = [_value_info(ctx.name(v), v.type) for v in graph.inputs]
    outputs = [_value_info(n, v.type) for v, n in zip(graph.outputs, graph.output_names)]
    outputs += _class_label(ctx, graph)
    g = helper.make_graph(ctx.nodes, graph.name, inputs, outputs, doc_string=doc)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer,
                              producer_version=_version())
    del g
    move_initializers(ctx.initializers, model.graph)  # small: the large tensors' bytes are not in them
    # The IR version each opset came with (opset 23: IR 11); onnxruntime reads up to 13.
    model.ir_version = min(model.ir_version, 10 if opset <= 22 else 11)
    _metadata(model, graph.metadata)
    if check:
        check_onnx(model)  # as a skeleton without the large tensors' bytes: any size, no copy
    return model, ctx.weights


def _class_label(ctx: OnnxContext, graph: Graph) -> list[onnx.ValueInfoProto]:
    """A Core ML classifier's label output (``graph.classifier``, set by the Core ML
    frontends): ArgMax of the probabilities output, then Gather from the constant label table
    (strings or int64), so onnxruntime returns the label as Core ML does."""
    c = graph.classifier
    if c is None or c.probabilities_output not in graph.output_names:
        return []
    probs = graph.outputs[graph.output_names.index(c.probabilities_output)]
    strings = any(isinstance(label, str) for label in c.labels)
    table = ctx.const(np.asarray([str(v) if strings else int(v) for v in c.labels],
                                 dtype=object if strings else np.int64), "class_labels")
    index = ctx.add("ArgMax", [c.probabilities_output], hint="class_index", axis=-1, keepdims=0)
    ctx.add("Gather", [table] + index, [c.label_output], hint="class_label", axis=0)
    dims = [d if isinstance(d, int) else d for d in probs.shape[:-1]]
    return [helper.make_tensor_value_info(c.label_output, onnx.TensorProto.STRING if strings
                                          else onnx.TensorProto.INT64, dims)]


def _metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """A source model's metadata (a Core ML model's author, license, ...) as ``metadata_props``;
    its ``description`` is also the model's ``doc_string``."""
    for key, value in metadata.items():
        if value:
            model.metadata_props.add(key=str(key), value=str(value))
    if metadata.get("description") and not model.doc_string:
        model.doc_string = str(metadata["description"])


def _lower(graph: Graph, opset: int) -> None:
    """Run ONNX_LOWERING at ``opset`` on a small graph (a Scan body's activation), then validate it.

    The order is the one checked when the target's pipeline is built.
    """
    for name, options in with_pass_options(ONNX_LOWERING, {"opset": opset}):
        PASSES[name].configure(**options).run(graph)
    graph.validate()


def _version() -> str:
    from kcc.version import __version__
    return __version__


def _emit(graph: Graph, options: dict[str, Any]) -> onnx.ModelProto:
    return emit_onnx(graph, opset=int(options.get("opset", DEFAULT_OPSET)))


def _write(graph: Graph, options: dict[str, Any], path: Path) -> list[Path]:
    return write_onnx(graph, path, opset=int(options.get("opset", DEFAULT_OPSET)))


def _add_cli_arguments(group: Any) -> None:
    group.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                       help=f"ONNX opset to emit ({MIN_OPSET}-{MAX_OPSET}, default {DEFAULT_OPSET})")
    group.add_argument("--input-layout", choices=("nhwc", "nchw"), default=None,
                       help="layout of image/sequence inputs and outputs: nhwc (Keras's, default) or nchw")


def _options_from_cli(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"opset": args.opset}
    if args.input_layout:
        out["input_layout"] = args.input_layout
    return out


TARGET = register_target(Target(
    name="onnx",
    pipeline=PIPELINE,
    emit=_emit,
    write=_write,
    default_boundary="channels_last",
    options={"opset": DEFAULT_OPSET, "input_layout": "nhwc"},
    suffix=".onnx",
    add_cli_arguments=_add_cli_arguments,
    options_from_cli=_options_from_cli,
    pass_options=("opset",),
))

__all__ = ["emit_onnx", "write_onnx", "build_onnx", "supported_ops", "TARGET", "PIPELINE", "ONNX_LOWERING",
           "DEFAULT_OPSET"]
