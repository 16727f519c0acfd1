"""Helpers shared by layer handlers: weight layout conversion, padding, activations."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kcc.frontends.keras.activations import apply_keras_activation
from kcc.frontends.keras.registry import KerasLayerContext
from kcc.ir import Value, is_static
from kcc.ops.shapes import same_pads


def as_tuple(v, n: int) -> tuple[int, ...]:
    """Keras allows an int or a tuple for kernel_size/strides/...; normalize to n ints."""
    if isinstance(v, (list, tuple)):
        if len(v) == 1 and n > 1:
            return tuple(int(v[0]) for _ in range(n))
        return tuple(int(x) for x in v)
    return (int(v),) * n


def kernel_to_oihw(k: np.ndarray) -> np.ndarray:
    """Keras conv kernel (*K, I, O) -> IR (O, I, *K)."""
    n = k.ndim - 2
    return np.transpose(k, (n + 1, n) + tuple(range(n)))


def window_padding(ctx: KerasLayerContext, x: Value, kernel: Sequence[int], strides: Sequence[int],
                   dilations: Sequence[int], padding: str) -> dict:
    """IR pads/auto_pad attributes for Keras 'valid' / 'same' on ``x`` (IR layout)."""
    n = len(kernel)
    if padding == "valid":
        return {"pads": (0,) * (2 * n)}
    if padding == "same":
        spatial = x.shape[2:]
        if is_static(spatial):
            pairs = [same_pads(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(n)]
            return {"pads": tuple(p[0] for p in pairs) + tuple(p[1] for p in pairs)}
        return {"auto_pad": "same"}
    raise ctx.fail(f"padding {padding!r} is not supported here (use 'valid' or 'same')")


def activate(ctx: KerasLayerContext, y: Value) -> Value:
    """Apply the layer's ``activation=`` as separate IR nodes (fusion is a pass's job)."""
    return apply_keras_activation(ctx.op, y, ctx.get("activation"), ctx.name, ctx.keras2)


def check_channels_last(ctx: KerasLayerContext) -> None:
    fmt = ctx.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise ctx.fail(f"data_format={fmt!r} is not supported; kcc reads channels_last models "
                       "(Keras's default). Rebuild the layer with data_format='channels_last'.")
