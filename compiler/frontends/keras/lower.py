"""Lower a KerasModelSpec to an IR graph.

Walks layer calls in dependency order, hands each to the handler registered for
its class (registry.py), and inlines nested models. Keras tensors map to IR
values in the IR layout (channels-first, see kcc.ir); the model boundary is
either kept in Keras's channels-last layout with explicit transposes
(``boundary="channels_last"``, ONNX's default) or declared channels-first
(``boundary="channels_first"``, what Core ML and NCHW users want).
"""
from __future__ import annotations

from typing import Any, Callable

from kcc.errors import ConversionError, ShapeError, UnsupportedLayerError
from kcc.frontends.keras.input_rules import check_inputs
from kcc.frontends.keras.layers.masking import Mask, handler_masks, output_masks
from kcc.frontends.keras.registry import KerasLayerContext, handler_for
from kcc.frontends.keras.spec import KerasLayer, KerasModelSpec, LayerCall, TensorRef, has_ref
from kcc.ir import DTYPES, Graph, TensorType, Value
from kcc.layout import to_ir_perm, to_keras_perm

BOUNDARIES = ("channels_last", "channels_first")
_INPUT_CLASSES = ("InputLayer",)
_MODEL_CLASSES = ("Sequential", "Functional", "Model")

# Called for a layer no handler knows: returns output values, or None to fall
# through to the error (the Lambda/custom-layer route and custom conversion
# functions hook in here).
Fallback = Callable[[KerasLayerContext, list[Value]], Any]


def _dtype(cfg: dict[str, Any]) -> str:
    name = cfg.get("dtype") or "float32"
    if isinstance(name, dict):
        name = name.get("config", {}).get("name", "float32")
    table = {"float32": "f32", "float16": "f16", "float64": "f32", "int32": "i32", "int64": "i64",
             "uint8": "u8", "bool": "bool", "mixed_float16": "f32", "mixed_bfloat16": "f32"}
    if name not in table:
        raise ConversionError(f"input dtype {name!r} is not supported")
    return table[name]


class KerasLowering:
    def __init__(self, spec: KerasModelSpec, *, boundary: str = "channels_last",
                 input_shapes: dict[str, tuple] | None = None, fallback: Fallback | None = None,
                 options: dict[str, Any] | None = None):
        if boundary not in BOUNDARIES:
            raise ConversionError(f"boundary layout {boundary!r} is not one of {BOUNDARIES}")
        self.spec = spec
        self.boundary = boundary
        self.input_shapes = dict(input_shapes or {})
        self.fallback = fallback
        self.options = options or {}
        self.graph = Graph(spec.name)
        # The models being lowered, outermost first (handlers such as Masking look downstream).
        self.spec_stack: list[KerasModelSpec] = []

    # ------------------------------------------------------------------ API
    def lower(self) -> Graph:
        g = self.graph
        env: dict[TensorRef, Value] = {}
        layout: dict[str, str] = {}
        for ref in self.spec.inputs:
            layer = self.spec.layer(ref.layer)
            v = self._graph_input(layer)
            layout[v.name] = "channels_last" if v.rank >= 3 and self.boundary == "channels_last" else "native"
            env[ref] = v if layout[v.name] == "native" else \
                g.add_node("transpose", [v], {"perm": to_ir_perm(v.rank)}, name=f"{v.name}_to_ir",
                           origin=layer.name).output
        unknown = [n for n in self.input_shapes if n not in {r.layer for r in self.spec.inputs}]
        if unknown:
            raise ShapeError(f"input shape given for {unknown}, but the model's inputs are "
                             f"{[r.layer for r in self.spec.inputs]}")
        outs = self._lower_model(self.spec, env, prefix="")
        values, names = [], []
        for ref, v in zip(self.spec.outputs, outs):
            name = ref.layer if sum(r.layer == ref.layer for r in self.spec.outputs) == 1 \
                else f"{ref.layer}_{ref.tensor_index}"
            if v.rank >= 3 and self.boundary == "channels_last":
                v = g.add_node("transpose", [v], {"perm": to_keras_perm(v.rank)}, name=f"{name}_to_keras",
                               origin=ref.layer).output
            elif v in values or v in g.inputs:
                v = g.add_node("identity", [v], {}, name=name, origin=ref.layer).output
            values.append(v)
            names.append(name)
        g.set_outputs(values, names)
        g.meta["boundary"] = self.boundary
        g.meta["input_layout"] = layout
        return g

    # ------------------------------------------------------------ internals
    def _graph_input(self, layer: KerasLayer) -> Value:
        cfg = layer.config
        shape = self.input_shapes.get(layer.name)
        if shape is None:
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if shape is None:
                raise ConversionError(f"input {layer.name!r} has no shape in its config")
            shape = list(shape)
        else:
            shape = list(shape)
            declared = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if declared is not None and len(shape) == len(declared) - 1:
                shape = [None] + shape
            if declared is not None and len(shape) != len(declared):
                raise ShapeError(f"input shape {tuple(shape)} for {layer.name!r} has rank {len(shape)}, "
                                 f"the model's input has rank {len(declared)} ({tuple(declared)})")
            if declared is not None:
                for got, want in zip(shape[1:], declared[1:]):
                    if want is not None and got is not None and got != want:
                        raise ShapeError(f"input shape {tuple(shape)} for {layer.name!r} conflicts with the "
                                         f"model's {tuple(declared)}")
        dims: list[Any] = []
        for i, d in enumerate(shape):
            dims.append(("N" if i == 0 else f"{layer.name}_d{i}") if d is None else int(d))
        keras_type = TensorType(tuple(dims), _dtype(cfg))
        if keras_type.rank >= 3 and self.boundary == "channels_first":
            keras_type = TensorType(tuple(keras_type.shape[p] for p in to_ir_perm(keras_type.rank)), keras_type.dtype)
        return self.graph.add_input(layer.name, keras_type)

    def _lower_model(self, spec: KerasModelSpec, env: dict[TensorRef, Value], prefix: str,
                     masks: dict[TensorRef, Mask] | None = None) -> list[Value]:
        """Lower every call in ``spec``; ``env`` already maps its input refs. Returns its outputs.

        ``masks`` holds the Keras masks of its tensors (layers/masking.py): those of
        the inputs on entry, every other one's filled in while lowering.
        """
        self.spec_stack.append(spec)
        try:
            return self._lower_calls(spec, env, prefix, {} if masks is None else masks)
        finally:
            self.spec_stack.pop()

    def _lower_calls(self, spec: KerasModelSpec, env: dict[TensorRef, Value], prefix: str,
                     masks: dict[TensorRef, Mask]) -> list[Value]:
        pending: list[tuple[KerasLayer, int, LayerCall]] = [
            (layer, i, call) for layer in spec.layers if layer.class_name not in _INPUT_CLASSES
            for i, call in enumerate(layer.calls)]
        while pending:
            progressed = False
            rest = []
            for layer, i, call in pending:
                refs = call.input_refs()
                if all(r in env for r in refs):
                    outs, out_masks = self._lower_call(layer, i, call, env, prefix, masks)
                    for k, (v, m) in enumerate(zip(outs, out_masks)):
                        env[TensorRef(layer.name, i, k)] = v
                        if m is not None:
                            masks[TensorRef(layer.name, i, k)] = m
                    progressed = True
                else:
                    rest.append((layer, i, call))
            if not progressed:
                missing = sorted({r.layer for _, _, c in rest for r in c.input_refs() if r not in env})
                raise ConversionError(f"model {spec.name!r}: layers {[l.name for l, _, _ in rest][:5]} read "
                                      f"tensors nobody produces (from {missing[:5]})")
            pending = rest
        try:
            return [env[r] for r in spec.outputs]
        except KeyError as e:
            raise ConversionError(f"model {spec.name!r}: output {e.args[0]} is never computed") from None

    def _lower_call(self, layer: KerasLayer, index: int, call: LayerCall, env: dict[TensorRef, Value],
                    prefix: str, masks: dict[TensorRef, Mask]) -> tuple[list[Value], list[Mask]]:
        origin = f"{prefix}{layer.name}"
        args = _resolve(call.args, env)
        arg_masks = _resolve(call.args, masks, missing=None)
        if layer.model is not None:
            inner = layer.model
            flat = _flatten(args)
            if len(flat) != len(inner.inputs):
                raise ConversionError(f"nested model {origin!r} takes {len(inner.inputs)} inputs, got {len(flat)}")
            inner_env = {ref: v for ref, v in zip(inner.inputs, flat)}
            flat_masks = _resolve(_flatten_refs(call.args), masks, missing=None)
            inner_masks = {ref: m for ref, m in zip(inner.inputs, flat_masks) if m is not None}
            outs = self._lower_model(inner, inner_env, prefix=f"{origin}/", masks=inner_masks)
            return outs, [inner_masks.get(r) for r in inner.outputs]
        ctx = KerasLayerContext(self.graph, layer, call, index, origin, self.options, self.spec_stack)
        tensor_kwargs = {k: v for k, v in call.kwargs.items() if has_ref(v)}
        explicit = {k: _resolve(v, env) for k, v in tensor_kwargs.items() if k == "mask" or k.endswith("_mask")}
        kwarg_masks = {k: _resolve(v, masks, missing=None) for k, v in tensor_kwargs.items() if k not in explicit}
        mask_kwargs = handler_masks(ctx, arg_masks, kwarg_masks, explicit)
        handler = handler_for(layer.class_name) if layer.keras_class else None  # not a same-named foreign class
        if handler is None:
            # Every tensor of the call, positional first, then keyword ones by name (trace.py's order).
            call_tensors = _flatten(args) + _flatten({k: _resolve(v, env) for k, v in tensor_kwargs.items()})
            result = self.fallback(ctx, call_tensors) if self.fallback else None
            if result is None:
                raise UnsupportedLayerError(
                    f"layer {origin!r} has class {layer.class_name!r}, which kcc cannot convert. Ways forward: "
                    f"pass custom_conversion_functions={{'{layer.class_name}': fn}} to map it yourself, or "
                    f"(Core ML) add_custom_layers=True to emit it as a Core ML custom layer.")
        else:
            check_inputs(layer.class_name, layer.config, _flatten(args), f"layer {origin!r}")
            kwargs = {k: _resolve(v, env) for k, v in tensor_kwargs.items() if k not in explicit}
            kwargs.update(mask_kwargs)
            try:
                result = handler(ctx, args, **kwargs) if kwargs else handler(ctx, args)
            except TypeError as e:
                if "argument" in str(e) and handler.__name__ in str(e):
                    raise ctx.fail(f"this call's inputs are not supported ({e})") from None
                raise
        outs = list(result) if isinstance(result, (list, tuple)) else [result]
        return outs, output_masks(ctx, arg_masks, explicit, args, outs, known=handler is not None)


_REQUIRED = object()


def _resolve(x: Any, env: dict[TensorRef, Any], missing: Any = _REQUIRED) -> Any:
    """``x`` with every TensorRef replaced by its entry in ``env`` (``missing`` if absent and given)."""
    if isinstance(x, TensorRef):
        return env[x] if missing is _REQUIRED else env.get(x, missing)
    if isinstance(x, (list, tuple)):
        return [_resolve(y, env, missing) for y in x]
    if isinstance(x, dict):
        return {k: _resolve(v, env, missing) for k, v in x.items()}
    return x


def _flatten_refs(x: Any) -> list[TensorRef]:
    if isinstance(x, TensorRef):
        return [x]
    if isinstance(x, (list, tuple)):
        return [r for y in x for r in _flatten_refs(y)]
    if isinstance(x, dict):
        return [r for k in sorted(x) for r in _flatten_refs(x[k])]
    return []


def _flatten(x: Any) -> list[Value]:
    if isinstance(x, Value):
        return [x]
    if isinstance(x, (list, tuple)):
        return [v for y in x for v in _flatten(y)]
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flatten(x[k])]
    return []


def lower_keras(spec: KerasModelSpec, **kwargs: Any) -> Graph:
    return KerasLowering(spec, **kwargs).lower()


__all__ = ["KerasLowering", "lower_keras", "BOUNDARIES", "DTYPES"]
