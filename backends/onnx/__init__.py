"""The ONNX backend: IR graph -> onnx.ModelProto.

Each IR op maps to ONNX through the table in context.py (filled by the emit_*
modules). Weights go in as raw bytes (numpy_helper). The batch dim and any
other symbolic dim become ``dim_param``s, so the model takes any batch size.
"""
from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper

from kcc.backends import STANDARD_PIPELINE, Target, boundary_names, register_target, separate_outputs
from kcc.backends.onnx import emit_lambda, emit_math, emit_more, emit_nn, emit_recurrent, emit_tensor  # noqa: F401  (fill the table)
from kcc.backends.onnx.context import OnnxContext, emitter_for, supported_ops
from kcc.errors import ConversionError, OptionError
from kcc.ir import Graph, TensorType

DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 17, 21
_ELEM = {"f16": TensorProto.FLOAT16, "f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i8": TensorProto.INT8,
         "i32": TensorProto.INT32, "i64": TensorProto.INT64, "u8": TensorProto.UINT8, "bool": TensorProto.BOOL}

PIPELINE = STANDARD_PIPELINE


def _value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) else (d if d != "?" else None) for d in t.shape]
    return helper.make_tensor_value_info(name, _ELEM[t.dtype], dims)


def emit_onnx(graph: Graph, *, opset: int = DEFAULT_OPSET, producer: str = "kcc", check: bool = True,
              doc: str = "") -> onnx.ModelProto:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(f"opset={opset} is out of range; kcc emits ONNX opsets {MIN_OPSET} to {MAX_OPSET}")
    separate_outputs(graph)
    ctx = OnnxContext(graph, opset, boundary_names(graph))
    for node in graph.nodes():
        emitter_for(node)(ctx, node)
    inputs = [_value_info(ctx.name(v), v.type) for v in graph.inputs]
    outputs = [_value_info(n, v.type) for v, n in zip(graph.outputs, graph.output_names)]
    g = helper.make_graph(ctx.nodes, graph.name, inputs, outputs, initializer=ctx.initializers, doc_string=doc)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer,
                              producer_version=_version())
    model.ir_version = min(model.ir_version, 10)
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ConversionError(f"kcc produced an invalid ONNX model (a kcc bug; please report): {e}") from e
    return model


def _version() -> str:
    from kcc import __version__
    return __version__


def _emit(graph: Graph, options: dict[str, Any]) -> onnx.ModelProto:
    return emit_onnx(graph, opset=int(options.get("opset", DEFAULT_OPSET)))


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
    default_boundary="channels_last",
    options={"opset": DEFAULT_OPSET, "input_layout": "nhwc"},
    suffix=".onnx",
    add_cli_arguments=_add_cli_arguments,
    options_from_cli=_options_from_cli,
))

__all__ = ["emit_onnx", "supported_ops", "TARGET", "PIPELINE", "DEFAULT_OPSET"]
