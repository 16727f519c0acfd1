"""ConvLSTM1D / ConvLSTM2D / ConvLSTM3D -> the time-major ``conv_lstm`` op.

Keras ``(N, T, *S, C)`` is IR ``(N, C, T, *S)``; the op reads ``(T, N, C, *S)``
and writes ``(T, N, F, *S')``, so the layer is the op between two transposes
(``perm=(2, 0, 1, ...)`` in, ``(1, 2, 0, ...)`` out), as for the other
recurrent layers. Kernels ``(*K, C, 4F)`` become OIHW with the LSTM gates
reordered from Keras's i f c o to i o f c.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.frontends.keras.layers.common import as_tuple, check_channels_last, kernel_to_oihw
from kcc.frontends.keras.layers.recurrent import (
    LSTM_ORDER, hard_sigmoid_alpha, ir_activation, reverse_time, to_time_major)
from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value, is_static
from kcc.ops.shapes import same_pads


def _reorder_gates(m: np.ndarray) -> np.ndarray:
    blocks = np.split(m, 4, axis=-1)
    return np.concatenate([blocks[i] for i in LSTM_ORDER], axis=-1)


def _pad_attrs(ctx: KerasLayerContext, spatial: tuple, kernel, strides, dil) -> dict[str, Any]:
    padding = ctx.get("padding", "valid")
    n = len(kernel)
    if padding == "valid":
        return {}
    if padding != "same":
        raise ctx.fail(f"padding={padding!r} is not supported (use 'valid' or 'same')")
    if not is_static(spatial):
        return {"auto_pad": "same"}
    pairs = [same_pads(spatial[i], kernel[i], strides[i], dil[i]) for i in range(n)]
    return {"pads": tuple(p[0] for p in pairs) + tuple(p[1] for p in pairs)}


@keras_layer("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def conv_lstm(ctx: KerasLayerContext, x: Value, initial_state: Any = None, mask: Any = None) -> list[Value]:
    check_channels_last(ctx)
    if mask is not None:
        raise ctx.fail("masked sequences are not supported; remove the Masking layer / mask argument")
    if ctx.get("stateful"):
        raise ctx.fail("stateful=True keeps state between calls, which a converted model cannot; rebuild the "
                       "layer with stateful=False (pass the state as initial_state instead)")
    n = x.rank - 3
    if n < 1:
        raise ctx.fail(f"expects a (batch, time, *spatial, channels) input, got IR shape {x.shape}")
    kernel = as_tuple(ctx.get("kernel_size"), n)
    strides = as_tuple(ctx.get("strides", 1), n)
    dil = as_tuple(ctx.get("dilation_rate", 1), n)
    attrs = {
        "activation": ir_activation(ctx, ctx.get("activation", "tanh"), "activation"),
        "recurrent_activation": ir_activation(ctx, ctx.get("recurrent_activation", "sigmoid"),
                                               "recurrent_activation"),
        "direction": "reverse" if ctx.get("go_backwards") else "forward",
        "strides": strides, "dilations": dil,
        **_pad_attrs(ctx, x.shape[3:], kernel, strides, dil),
    }
    if "hard_sigmoid" in attrs.values():
        attrs["hard_sigmoid_alpha"] = hard_sigmoid_alpha(ctx)
    w = ctx.const(kernel_to_oihw(_reorder_gates(ctx.weight("kernel"))).astype(np.float32), "w")
    r = ctx.const(kernel_to_oihw(_reorder_gates(ctx.weight("recurrent_kernel"))).astype(np.float32), "r")
    b = ctx.const(_reorder_gates(ctx.weight("bias")).astype(np.float32), "b") if ctx.get("use_bias", True) else None
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else \
        ([] if initial_state is None else [initial_state])
    if states and len(states) != 2:
        raise ctx.fail(f"initial_state has {len(states)} tensors, ConvLSTM takes 2 (h, c)")
    perm_in = (2, 0, 1) + tuple(range(3, x.rank))
    x_tm = to_time_major(ctx, x, perm_in)
    y, h, c = ctx.op.conv_lstm(x_tm, w, r, b, *(states or [None, None]), **attrs)
    if ctx.get("return_sequences", False):
        if ctx.get("go_backwards"):
            y = reverse_time(ctx, y, 0)
        out = ctx.op.transpose(y, perm=(1, 2, 0) + tuple(range(3, y.rank)))
    else:
        out = h
    return [out, h, c] if ctx.get("return_state", False) else [out]
