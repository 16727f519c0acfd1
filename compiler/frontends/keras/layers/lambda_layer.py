"""Lambda layers: traced and lowered through the fallback chain (fallback.py, trace.py)."""
from __future__ import annotations

from typing import Any

from kcc.errors import ConversionError
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value


def _flat(x: Any) -> list[Value]:
    if isinstance(x, Value):
        return [x]
    if isinstance(x, (list, tuple)):
        return [v for y in x for v in _flat(y)]
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flat(x[k])]
    return []


@keras_layer("Lambda")
def lambda_layer(ctx: KerasLayerContext, args: Any, **kwargs: Any) -> list[Value]:
    """A custom conversion function if given, else the traced body (the same chain as custom layers)."""
    from kcc.frontends.keras.fallback import lower_unknown_layer

    # The call's tensors in the tracer's order: the first argument's, then keyword tensors by name
    # (masks kcc derived itself are not call arguments; masking.py decides about those).
    tensor_keys = [k for k in sorted(kwargs) if k in ctx.call.kwargs]
    result = lower_unknown_layer(ctx, _flat(args) + [v for k in tensor_keys for v in _flat(kwargs[k])])
    if result is None:
        raise ConversionError(f"layer {ctx.name!r} (Lambda): no step could convert it")
    return result
