"""The Keras and TensorFlow backends: IR graph -> a functional ``keras.Model`` (and a SavedModel).

The way back from ONNX and Core ML. The target's pipeline is the standard one
(without folding BatchNorm into convs: a Keras user fine-tunes it), then
KERAS_LOWERING: passes that rewrite what has no one-to-one Keras layer, then
``layout_channels_last``, which decides per tensor whether Keras holds it
channels-last (passes/layout_channels_last.py). After them every IR node is
one Keras layer or one ``keras.ops`` call: the emitter table in context.py,
filled by emit_nn.py (layers with weights), emit_math.py and emit_tensor.py.
No Lambda layers and no custom classes, so the model saves to a ``.keras``
file that ``keras.models.load_model`` opens in safe mode with no
``custom_objects``. Weights become the layers' variables (float32), trainable
unless ``keras_trainable=False``.

The ``tensorflow`` target is the same model exported as a TensorFlow
SavedModel (savedmodel.py). Keras and TensorFlow are imported only when a
model is emitted (kcc.extras: ``pip install 'kcc[tensorflow]'``).
"""
from __future__ import annotations

import re
from typing import Any

from kcc.backends import Target, register_target, separate_outputs, standard_pipeline
from kcc.backends.keras import (  # noqa: F401  (fill the table)
    emit_attention, emit_math, emit_nn, emit_recurrent, emit_shape, emit_tensor)
from kcc.backends.keras.emit_shape import shape_only_nodes
from kcc.backends.keras.context import KerasContext, emitter_for, supported_ops
from kcc.errors import OptionError
from kcc.extras import require
from kcc.ir import DTYPES, Graph
from kcc.passes import layout_channels_last, lower_keras_dense, lower_keras_float32  # noqa: F401  (register)

# Activations Keras's Conv and Dense layers carry as ``activation=`` with the IR's meaning.
KERAS_FUSABLE: tuple[str, ...] = ("relu", "sigmoid", "tanh", "softplus", "softsign", "selu", "silu", "hard_silu",
                                  "mish")

# Target lowering for Keras, in order.
KERAS_LOWERING: tuple[Any, ...] = (
    "lower_keras_float32",               # float16 weights and casts -> float32 (Core ML fp16 programs)
    "lower_keras_dense",                 # matmul (+ add) by constants -> dense: one trainable Dense
    ("fuse_activation", {"fusable": {"conv": KERAS_FUSABLE, "dense": KERAS_FUSABLE}}),
    "dce",
    "layout_channels_last",              # per tensor: channels-last or as in the IR (meta keras_layout)
)
PIPELINE: tuple[Any, ...] = tuple(
    p for p in standard_pipeline(("lower_attention",))   # attention's formula (keras.ops)
    if (p if isinstance(p, str) else p[0]) not in ("fold_batchnorm", "fuse_activation", "dce")) + KERAS_LOWERING

OPTIONS: dict[str, Any] = {"keras_boundary_layout": "keras", "keras_trainable": True}


def _input_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("_") or "input"


def emit_keras(graph: Graph, *, keras_boundary_layout: str = "keras", keras_trainable: bool = True,
               target: str = "keras") -> Any:
    """Build the functional ``keras.Model`` of an IR graph that ran the Keras pipeline."""
    if keras_boundary_layout not in ("keras", "source"):
        raise OptionError(f"keras_boundary_layout={keras_boundary_layout!r}: use 'keras' or 'source'")
    if not isinstance(keras_trainable, bool):
        raise OptionError(f"keras_trainable must be True or False, got {keras_trainable!r}")
    keras = require("keras", f"emitting a {target} model")
    separate_outputs(graph)
    ctx = KerasContext(graph, keras, target, trainable=keras_trainable)
    out_names = [ctx.name(_input_name(n)) for n in graph.output_names]
    ctx.output_names = {v.name: n for v, n in zip(graph.outputs, out_names)}
    inputs = []
    for v in graph.inputs:
        perm = ctx.perm(v)
        shape = tuple(None if isinstance(d, str) else int(d) for d in (v.shape[p] for p in perm))
        # A symbolic first axis is Keras's dynamic batch; a static one stays as the source declares it.
        t = keras.Input(batch_shape=shape, name=ctx.name(_input_name(v.name)), dtype=str(DTYPES[v.dtype]))
        ctx.put(v, t, perm)
        inputs.append(t)
    skip = shape_only_nodes(graph)  # shape computations read statically by reshape_to/expand/slice_to
    for node in graph.nodes():
        if node.name in skip:
            continue
        ctx.node = node
        emitter_for(node, target)(ctx, node)
    ctx.node = None
    outputs = []
    for v, name in zip(graph.outputs, out_names):
        perm = ctx.perm(v) if keras_boundary_layout == "keras" else ctx.ident(v)
        t = ctx.get(v, perm)
        history = getattr(t, "_keras_history", None)
        if history is None or history.operation.name != name or t in outputs:
            t = keras.layers.Identity(name=name)(t)
        outputs.append(t)
    model = keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=_input_name(graph.name))
    model.kcc_permutes = ctx.permutes
    return model


def _emit(graph: Graph, options: dict[str, Any]) -> Any:
    return emit_keras(graph, keras_boundary_layout=options.get("keras_boundary_layout", "keras"),
                      keras_trainable=options.get("keras_trainable", True))


def _serialize(graph: Graph, options: dict[str, Any]) -> bytes:
    """The ``.keras`` file's bytes (Keras writes a zip; kcc's writer moves it into place atomically)."""
    import os
    import tempfile

    model = _emit(graph, options)
    with tempfile.TemporaryDirectory(prefix="kcc-keras-") as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _add_cli_arguments(group: Any) -> None:
    group.add_argument("--keras-boundary-layout", choices=("keras", "source"), default=None,
                       help="keras and tensorflow targets: inputs/outputs channels-last (keras, default) or in "
                            "the source model's layout (source)")
    group.add_argument("--inference-only", action="store_true",
                       help="keras and tensorflow targets: convert a model whose weights cannot become "
                            "trainable variables, for inference (keras_trainable=False)")


def options_from_cli(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "keras_boundary_layout", None):
        out["keras_boundary_layout"] = args.keras_boundary_layout
    if getattr(args, "inference_only", False):
        out["keras_trainable"] = False
    return out


TARGET = register_target(Target(
    name="keras",
    pipeline=PIPELINE,
    emit=_emit,
    default_boundary="channels_last",
    options=dict(OPTIONS),
    suffix=".keras",
    serialize=_serialize,
    add_cli_arguments=_add_cli_arguments,
    options_from_cli=options_from_cli,
    pass_options=("keras_boundary_layout",),
))

from kcc.backends.keras import savedmodel  # noqa: E402,F401  (registers the tensorflow target)

__all__ = ["emit_keras", "supported_ops", "TARGET", "PIPELINE", "KERAS_LOWERING"]
