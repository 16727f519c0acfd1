"""The one place where a Keras layer without a built-in lowering is converted.

Lambda layers (layers/lambda_layer.py) and layers of classes no handler knows
(KerasLowering's ``fallback``) go through the same chain of steps, in this
order; the first step that returns values wins:

1. ``custom_conversion_function``: the user's ``custom_conversion_functions``
   entry for the layer's name or class: ``fn(ctx, inputs)`` builds IR with
   ``ctx.op`` and returns the output value(s), or None to pass. Its errors
   propagate: the user asked for it.
2. ``trace``: trace the live layer with TensorFlow and lower the traced ops
   (trace.py); a layer read from a file without Keras is rebuilt first, alone
   (``live_layer``). If it fails, the failure is kept and the chain continues.
3. ``coreml_custom_layer``: a ``custom_layer`` node for the Core ML backend
   (custom_layer.py, registered with ``@fallback_step``) when
   ``add_custom_layers=True`` or a one-argument conversion function.

If no step converts the layer, the first deferred failure (tracing's, which
names the TensorFlow op) is raised; with nothing to report, None (the caller's
"unsupported layer" error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kcc.errors import ConversionError, KccError
from kcc.frontends.keras.registry import KerasLayerContext
from kcc.ir import Value
from kcc.table import Table

Step = Callable[[KerasLayerContext, list[Value]], Any]

ORDER = ("custom_conversion_function", "trace", "coreml_custom_layer")


@dataclass(frozen=True)
class FallbackStep:
    name: str
    fn: Step
    # A ConversionError from this step is kept while later steps get their turn.
    defer_errors: bool


STEPS: Table[FallbackStep] = Table("Keras fallback step")


def fallback_step(name: str, *, defer_errors: bool = False) -> Callable[[Step], Step]:
    """Register the step called ``name`` (one of ORDER)."""
    if name not in ORDER:
        raise AssertionError(f"fallback step {name!r} is not one of {ORDER}")

    def deco(fn: Step) -> Step:
        STEPS.register(name)(FallbackStep(name, fn, defer_errors))
        return fn
    return deco


def lower_unknown_layer(ctx: KerasLayerContext, inputs: list[Value]) -> list[Value] | None:
    """Run the steps in ORDER; the first result wins (see the module docstring)."""
    deferred: ConversionError | None = None
    for name in ORDER:
        step = STEPS.get(name)
        if step is None:
            continue
        try:
            result = step.fn(ctx, inputs)
        except ConversionError as e:
            if not step.defer_errors:
                raise
            deferred = deferred or e
            continue
        if result is not None:
            return list(result) if isinstance(result, (list, tuple)) else [result]
    if deferred is not None:
        raise deferred
    return None


@fallback_step("custom_conversion_function")
def _custom_conversion_function(ctx: KerasLayerContext, inputs: list[Value]) -> Any:
    table = ctx.options.get("custom_conversion_functions") or {}
    fn = table.get(ctx.layer.name) or table.get(ctx.layer.class_name)
    if fn is None or _takes_one_argument(fn):
        return None  # coremltools-style fn(keras_layer) -> custom layer params: the coreml_custom_layer step
    result = fn(ctx, inputs)
    if result is not None and not isinstance(result, (Value, list, tuple)):
        raise ConversionError(f"custom_conversion_functions entry for layer {ctx.name!r} returned a "
                              f"{type(result).__name__}; it must return IR value(s) built with ctx.op, or None")
    return result


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    """True for a coremltools-style conversion function ``fn(keras_layer)``."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1 and not any(p.kind == p.VAR_POSITIONAL for p in params)


def live_layer(ctx: KerasLayerContext) -> Any:
    """The layer's live Keras object; for a layer read from a file without Keras, built now (or None).

    The loader gives such layers a ``rebuild_live`` (rebuild_layer.py): only the
    layer that reaches a step needing the object is rebuilt, never the model.
    """
    layer = ctx.layer
    if layer.live is None and layer.rebuild_live is not None:
        try:
            layer.live = layer.rebuild_live()
        except KccError:
            raise
        except Exception as e:  # Keras raises many types; all mean "could not rebuild it"
            text = str(e).strip()
            raise ctx.fail(f"rebuilding it with Keras (to trace it) failed: {type(e).__name__}: "
                           f"{text.splitlines()[0][:300] if text else ''}") from e
    return layer.live


@fallback_step("trace", defer_errors=True)
def _trace(ctx: KerasLayerContext, inputs: list[Value]) -> list[Value]:
    from kcc.frontends.keras.trace import trace_layer

    live_layer(ctx)
    return trace_layer(ctx, inputs)


__all__ = ["lower_unknown_layer", "live_layer", "fallback_step", "ORDER", "FallbackStep", "STEPS"]
