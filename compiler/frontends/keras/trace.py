"""Trace a live Keras layer (a Lambda, or a class kcc has no handler for) into IR.

The route (see docs/lambda.md for why this one):

    layer's call on a TensorSpec per input --tf.function--> TensorFlow graph
      --tf2onnx--> ONNX nodes --kcc's ONNX importer--> IR nodes, spliced in place

The body runs on Keras (channels-last) tensors, so the traced subgraph is
wrapped in ``to_keras_layout`` / ``from_keras_layout`` transposes (nothing for
rank <= 2); ``cancel_transposes`` removes back-to-back pairs. Python constants,
``arguments=`` and captured variables become constants of the traced graph;
symbolic dims (the batch) stay symbolic. kcc's own TensorFlow-op table
(tf_table.py) overrides or completes tf2onnx's. A TensorFlow op neither can
express raises a ConversionError naming the layer and the
op, and the ways forward.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import onnx

from kcc.errors import ConversionError, KccError
from kcc.extras import require
from kcc.frontends.keras.registry import KerasLayerContext
from kcc.frontends.keras.spec import TensorRef, has_ref
from kcc.frontends.keras.tf_table import patch_leftovers, tf2onnx_overrides
from kcc.ir import Value
from kcc.layout import keras_shape

# ONNX opset asked of tf2onnx; kcc's ONNX importer reads the opset 13+ forms.
TRACE_OPSET = 17

_TF_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "i32": "int32", "i64": "int64",
              "u8": "uint8", "i8": "int8", "bool": "bool"}


def _pack(structure: Any, flat: list[Any]) -> Any:
    """Rebuild a call argument (one tensor, a list, a dict) from flat tensors, consuming them in order."""
    it = iter(flat)

    def build(x: Any) -> Any:
        if isinstance(x, TensorRef):
            return next(it)
        if isinstance(x, (list, tuple)):
            return [build(y) for y in x]
        if isinstance(x, dict):
            return {k: build(x[k]) for k in sorted(x)}
        return x

    return build(structure)


_EXTRA_POSITIONAL = re.compile(r"^arg(\d+)$")


def call_tensor_kwargs(ctx: KerasLayerContext) -> dict[str, Any]:
    """The call's keyword arguments that hold tensors, by name, in the order their tensors are flattened.

    The caller hands the traced layer its tensors positional-first (``ctx.call.args``),
    then these in sorted key order (``LayerCall.input_refs``).
    """
    return {k: ctx.call.kwargs[k] for k in sorted(ctx.call.kwargs) if has_ref(ctx.call.kwargs[k])}


def count_refs(structure: Any) -> int:
    """How many tensors a call argument holds."""
    if isinstance(structure, TensorRef):
        return 1
    if isinstance(structure, (list, tuple)):
        return sum(count_refs(y) for y in structure)
    if isinstance(structure, dict):
        return sum(count_refs(y) for y in structure.values())
    return 0


def _plain_value(ctx: KerasLayerContext, key: str, value: Any) -> Any:
    """A non-tensor call argument as the layer gets it (a serialized numpy array or tensor is rebuilt)."""
    if isinstance(value, dict):
        keras = require("keras", f"tracing layer {ctx.layer.name!r}")
        try:
            return keras.saving.deserialize_keras_object(value)
        except Exception as e:  # whatever a malformed entry raises
            raise ctx.fail(f"its call argument {key}={value!r} could not be rebuilt for tracing: "
                           f"{type(e).__name__}: {e}") from e
    return value


def _with_globals(ctx: KerasLayerContext, fn: Any) -> Any:
    """A Lambda function rebuilt from bytecode sees only Keras's module globals; give it the names it uses.

    Keras 3 reloads a Lambda's bytecode with the globals of its own utility
    module, so ``tf.sin`` in the body is a NameError. The missing names are
    taken from ``custom_objects`` and, for the usual module aliases, from
    ``tf``/``keras``/``np`` themselves.
    """
    import builtins
    import types

    keras = require("keras", f"tracing layer {ctx.layer.name!r}")
    tf = require("tensorflow", f"tracing layer {ctx.layer.name!r}")

    code = getattr(fn, "__code__", None)
    if code is None:
        return fn
    missing = [n for n in code.co_names if n not in fn.__globals__ and not hasattr(builtins, n)]
    if not missing:
        return fn
    known = {"tf": tf, "tensorflow": tf, "keras": keras, "np": np, "numpy": np, "ops": keras.ops}
    known.update(ctx.options.get("custom_objects") or {})
    extra = {n: known[n] for n in missing if n in known}
    if not extra:
        return fn
    return types.FunctionType(code, {**fn.__globals__, **extra}, fn.__name__, fn.__defaults__, fn.__closure__)


def _keras_call(ctx: KerasLayerContext, live: Any):
    """The function tf.function traces: flat tensors in, flat tensors out.

    The layer is called as the model called it: the first argument rebuilt from
    the first tensors, further positional arguments (kept as ``arg1``, ``arg2`` ...
    by the loader) in their places, keyword arguments by name, tensors among
    them from the remaining flat inputs (``call_tensor_kwargs`` order). Non-tensor
    arguments pass through unchanged; a layer's ``training`` is always False.
    """
    tf = require("tensorflow", f"tracing layer {ctx.layer.name!r}")

    structure = ctx.call.args
    n_first = count_refs(structure)
    tensor_kwargs = call_tensor_kwargs(ctx)
    plain = {k: _plain_value(ctx, k, v) for k, v in ctx.call.kwargs.items()
             if k not in tensor_kwargs and k != "training"}

    # A keras.ops call recorded in the graph (an Operation, not a Layer) takes no ``training``.
    keras = require("keras", f"tracing layer {ctx.layer.name!r}")
    if isinstance(live, keras.layers.Layer):
        plain["training"] = False
    function = getattr(live, "function", None) if ctx.layer.class_name == "Lambda" else None
    patched = _with_globals(ctx, function) if function is not None else None

    def call(*xs):
        first = _pack(structure, list(xs[:n_first]))
        kw = {**plain, **_pack(tensor_kwargs, list(xs[n_first:]))}
        extra = sorted((int(m.group(1)), k) for k in kw if (m := _EXTRA_POSITIONAL.match(k)))
        if [i for i, _ in extra] != list(range(1, len(extra) + 1)):
            raise ctx.fail(f"its call's positional arguments {[k for _, k in extra]} have gaps")
        positional = [first] + [kw.pop(k) for _, k in extra]
        if patched is not None and patched is not function:
            live.function = patched
        try:
            out = live(*positional, **kw)
        finally:
            if patched is not None and patched is not function:
                live.function = function
        return [tf.identity(t) for t in tf.nest.flatten(out)]

    return call


def trace_to_onnx(ctx: KerasLayerContext, inputs: list[Value]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The layer's call as an ONNX model, and TF node name -> TF op type (for messages)."""
    purpose = f"tracing {ctx.layer.class_name} layer {ctx.layer.name!r}"
    tf = require("tensorflow", purpose)
    tf2onnx = require("tf2onnx", purpose)
    require("tf2onnx.convert", purpose)

    live = ctx.layer.live
    specs = [tf.TensorSpec([None if isinstance(d, str) else d for d in keras_shape(v)], _TF_DTYPES[v.dtype],
                           name=f"kcc_in{i}") for i, v in enumerate(inputs)]
    fn = tf.function(_keras_call(ctx, live), autograph=False)
    try:
        concrete = fn.get_concrete_function(*specs)
    except KccError:
        raise
    except Exception as e:  # whatever the body raises while TensorFlow traces it
        hint = ""
        if isinstance(e, NameError) or "is not defined" in str(e):
            # A Lambda reloaded from bytecode sees only Keras's globals (plus custom_objects).
            hint = (" A Lambda loaded from a file sees only the names Keras gives it (kcc adds tf, keras "
                    "and np): pass the other names its body uses in custom_objects={'name': object}.")
        raise ctx.fail(f"tracing its function with TensorFlow failed: {type(e).__name__}: "
                       f"{_nested_reason(e)}.{hint}") from e
    tf_ops = {op.name: op.type for op in concrete.graph.get_operations()}
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    try:
        model, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=TRACE_OPSET,
                                                 custom_op_handlers=tf2onnx_overrides())
    except Exception as e:  # tf2onnx raises plain exceptions for ops it cannot map
        raise ctx.fail(f"tf2onnx could not convert its traced TensorFlow graph: {type(e).__name__}: "
                       f"{_first_line(e)}. {ways_forward(ctx)}") from e
    patch_leftovers(model)
    _captures_to_initializers(model, concrete, len(specs))
    return model, tf_ops


def _captures_to_initializers(model: onnx.ModelProto, concrete: Any, n_args: int) -> None:
    """Tensors the layer captured (position ids built in ``build``, constant tables) become initializers.

    TensorFlow feeds a traced function's captured tensors through placeholders
    after the arguments; tf2onnx keeps those placeholders as graph inputs. Their
    values are known (``captured_inputs``), so they are constants, not inputs of
    the converted model. Captured variables are resources, which tf2onnx freezes
    itself; they are left alone.
    """
    from onnx import numpy_helper

    values = {}
    for placeholder, value in zip(concrete.graph.inputs[n_args:], concrete.captured_inputs):
        if placeholder.dtype.name == "resource" or not hasattr(value, "numpy"):
            continue
        values[placeholder.name] = value
        values[placeholder.name.split(":")[0]] = value
    keep = []
    for inp in model.graph.input:
        value = values.get(inp.name)
        if value is None:
            keep.append(inp)
            continue
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value.numpy()), inp.name))
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)


def ways_forward(ctx: KerasLayerContext) -> str:
    cls = ctx.layer.class_name
    key = ctx.layer.name if cls == "Lambda" else cls
    return (f"Ways forward: pass custom_conversion_functions={{{key!r}: fn}} (fn(ctx, inputs) builds IR "
            f"with ctx.op) to lower this layer yourself, or for Core ML add_custom_layers=True to emit it as "
            f"a Core ML custom layer; or rewrite the layer with operations kcc lowers (docs/lambda.md).")


def trace_layer(ctx: KerasLayerContext, inputs: list[Value]) -> list[Value]:
    """Lower one call of a live layer by tracing it; returns its outputs in the IR layout."""
    from kcc.frontends.onnx.importer import OnnxImporter, opset_of
    from kcc.frontends.onnx.registry import UnsupportedOnnxOp

    if ctx.layer.live is None:
        from kcc.errors import UnsupportedLayerError
        raise UnsupportedLayerError(
            f"layer {ctx.name!r} has class {ctx.layer.class_name!r}, which kcc has no lowering for, and there is "
            f"no live Keras layer object to trace (the model was read without Keras). " + ways_forward(ctx))
    expected = count_refs(ctx.call.args) + count_refs(call_tensor_kwargs(ctx))
    if len(inputs) != expected:
        raise ConversionError(f"layer {ctx.name!r}: its call reads {expected} tensors, {len(inputs)} were given "
                              f"to the tracer (a kcc bug; please report)")
    model, tf_ops = trace_to_onnx(ctx, inputs)
    keras_inputs = [ctx.to_keras_layout(v) for v in inputs]
    onnx_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(onnx_inputs) != len(keras_inputs):
        raise ConversionError(f"layer {ctx.name!r}: traced graph has {len(onnx_inputs)} inputs, "
                              f"the call has {len(keras_inputs)}")
    importer = OnnxImporter(ctx.graph, opset_of(model), origin=ctx.origin, name_prefix=f"{ctx.name}/",
                            exact_resize_sizes=True)
    try:
        missing = importer.unsupported_nodes(model.graph)
        if missing:
            raise UnsupportedOnnxOp("", missing[0].op_type, missing[0].name)
        outs = importer.import_graph(model.graph, dict(zip(onnx_inputs, keras_inputs)))
    except UnsupportedOnnxOp as e:
        tf_type = _tf_op_of(e.node_name, tf_ops) or e.op_type
        onnx_note = "" if tf_type == e.op_type else f" (tf2onnx made it ONNX {e.op_type!r})"
        raise ctx.fail(f"TensorFlow op {tf_type!r} (node {e.node_name!r}){onnx_note} cannot be lowered: "
                       f"{e.reason}. {ways_forward(ctx)}") from None
    except KccError as e:
        raise ctx.fail(f"lowering its traced graph failed: {e}. {ways_forward(ctx)}") from None
    values = [importer.materialize(x, f"{ctx.name}_out{i}") for i, x in enumerate(outs)]
    return [ctx.from_keras_layout(v) for v in values]


def _tf_op_of(node_name: str, tf_ops: dict[str, str]) -> str | None:
    """The TF op type of the node tf2onnx named ``node_name`` (it keeps TF names, maybe suffixed)."""
    if node_name in tf_ops:
        return tf_ops[node_name]
    for name in sorted(tf_ops, key=len, reverse=True):
        if node_name.startswith(name):
            return tf_ops[name]
    return None


def _nested_reason(e: Exception) -> str:
    """Keras wraps a body's error in 'Exception encountered when calling ...'; keep the real reason."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered"):
        return (lines[0] + " " + lines[1].replace("\x1b[1m", "").replace("\x1b[0m", ""))[:300]
    return _first_line(e)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


__all__ = ["trace_layer", "trace_to_onnx", "TRACE_OPSET", "ways_forward"]
