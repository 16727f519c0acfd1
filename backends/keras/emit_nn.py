"""Keras emitters for layers with weights: conv, conv_transpose, dense, batch_norm, layer_norm, rms_norm, pooling, resize, gather.

Each emitter builds one Keras layer and loads the IR constants into its
variables (trainable unless the target was asked for inference only). Weight
relayouts, each stated once:

* conv ``(O, I/g, *K)`` -> ConvND ``(*K, I/g, O)``; depthwise ``(C*m, 1, *K)`` ->
  DepthwiseConvND ``(*K, C, m)`` (output channel ``c*m + j``);
* conv_transpose ``(I, O, *K)`` -> ConvNDTranspose ``(*K, O, I)``;
* dense ``(in, out)`` is Keras's kernel as it is.

Padding: ``valid`` when there is none, ``same`` when the pads are TensorFlow's
'same' for the known input size, else one ZeroPaddingND layer before a
``valid`` layer (max pooling pads with -inf through keras.ops.pad).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.backends.keras.context import KerasContext, keras_emitter
from kcc.backends.keras.emit_shape import dense_refined, is_refined
from kcc.ir import Node
from kcc.ops.shapes import same_pads

_ND = {1: "1D", 2: "2D", 3: "3D"}


def _window(node: Node, kernel: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = len(kernel)
    return node.attrs.get("strides") or (1,) * n, node.attrs.get("dilations") or (1,) * n


def _padding(ctx: KerasContext, node: Node, kernel, strides, dilations) -> tuple[str, list[tuple[int, int]] | None]:
    """("valid"|"same", explicit (begin, end) pads to add first or None)."""
    x = node.inputs[0]
    n = len(kernel)
    if node.attrs.get("auto_pad") == "same":
        return "same", None
    pads = node.attrs.get("pads") or (0,) * (2 * n)
    pairs = [(pads[i], pads[i + n]) for i in range(n)]
    if not any(p for pair in pairs for p in pair):
        return "valid", None
    spatial = x.shape[2:]
    if all(isinstance(d, int) for d in spatial) and all(
            same_pads(int(spatial[i]), kernel[i], strides[i], dilations[i]) == tuple(pairs[i]) for i in range(n)):
        return "same", None
    return "valid", pairs


def _pad_spatial(ctx: KerasContext, t: Any, pairs: list[tuple[int, int]], fill: float = 0.0) -> Any:
    n = len(pairs)
    if fill == 0.0:
        layer = getattr(ctx.layers, f"ZeroPadding{_ND[n]}")
        return layer(tuple(pairs) if n > 1 else pairs[0], name=ctx.name(f"{ctx.node.name}/pad"))(t)
    return ctx.ops.pad(t, [(0, 0)] + [tuple(p) for p in pairs] + [(0, 0)], constant_values=fill)


def _activation(node: Node) -> str:
    return node.attrs.get("activation", "linear")


def _conv_computed(ctx: KerasContext, node: Node) -> None:
    """Inference only: a conv whose kernel is computed in the graph, as keras.ops.conv (no variables)."""
    x, w, b = node.inputs
    y = node.output
    n = w.rank - 2
    if node.attrs["group"] != 1:
        ctx.fail(node, "a grouped convolution with a computed kernel")
    strides, dilations = _window(node, tuple(w.shape[2:]))
    kernel = tuple(int(k) for k in w.shape[2:])
    padding, pairs = _padding(ctx, node, kernel, strides, dilations)
    t = ctx.get(x, ctx.cl(x))
    if pairs:
        t = _pad_spatial(ctx, t, pairs)
    t = ctx.ops.conv(t, ctx.get(w, tuple(range(2, 2 + n)) + (1, 0)), strides=strides, padding=padding,
                     dilation_rate=dilations)
    if b is not None:
        t = ctx.ops.add(t, ctx.get(b))
    if _activation(node) != "linear":
        t = ctx.layers.Activation(_activation(node), name=ctx.name())(t)
    ctx.put(y, t, ctx.cl(y))


@keras_emitter("conv")
def _conv(ctx: KerasContext, node: Node) -> None:
    if ctx.computed(node, 1) or ctx.computed(node, 2):
        return _conv_computed(ctx, node)
    x, y = node.inputs[0], node.output
    w = ctx.weight(node, 1, "kernel")
    b = ctx.weight(node, 2, "bias")
    n = w.ndim - 2
    if n not in _ND:
        ctx.fail(node, f"a {n}-D convolution has no Keras layer")
    kernel = tuple(w.shape[2:])
    strides, dilations = _window(node, kernel)
    padding, pairs = _padding(ctx, node, kernel, strides, dilations)
    t = ctx.get(x, ctx.cl(x))
    if pairs:
        t = _pad_spatial(ctx, t, pairs)
    group, out_ch, in_per_group = node.attrs["group"], w.shape[0], w.shape[1]
    common = dict(strides=strides, padding=padding, dilation_rate=dilations, activation=_activation(node),
                  use_bias=b is not None, name=ctx.name(), trainable=ctx.trainable)
    if group > 1 and in_per_group == 1 and n in (1, 2):  # depthwise: one filter set per input channel
        mult = out_ch // group
        kern = w.reshape((group, mult) + kernel).transpose(tuple(range(2, 2 + n)) + (0, 1))
        layer = getattr(ctx.layers, f"DepthwiseConv{_ND[n]}")(kernel_size=kernel, depth_multiplier=mult, **common)
    else:
        kern = w.transpose(tuple(range(2, 2 + n)) + (1, 0))
        layer = getattr(ctx.layers, f"Conv{_ND[n]}")(out_ch, kernel, groups=group, **common)
    ctx.put(y, ctx.call(layer, t, [kern] + ([b] if b is not None else [])), ctx.cl(y))


@keras_emitter("conv_transpose")
def _conv_transpose(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    w = ctx.weight(node, 1, "kernel")
    b = ctx.weight(node, 2, "bias")
    n = w.ndim - 2
    if n not in _ND or node.attrs["group"] != 1:
        ctx.fail(node, f"a {n}-D convolution transpose with group {node.attrs['group']} has no Keras layer")
    kernel = tuple(w.shape[2:])
    strides, dilations = _window(node, kernel)
    out_pad = node.attrs["output_padding"] or None
    layer = getattr(ctx.layers, f"Conv{_ND[n]}Transpose")(
        w.shape[1], kernel, strides=strides, padding="valid", dilation_rate=dilations, output_padding=out_pad,
        use_bias=b is not None, name=ctx.name(), trainable=ctx.trainable)
    kern = w.transpose(tuple(range(2, 2 + n)) + (1, 0))
    t = ctx.call(layer, ctx.get(x, ctx.cl(x)), [kern] + ([b] if b is not None else []))
    pads = node.attrs["pads"] or (0,) * (2 * n)
    pairs = [(pads[i], pads[i + n]) for i in range(n)]
    if any(p for pair in pairs for p in pair):
        crop = getattr(ctx.layers, f"Cropping{_ND[n]}")
        t = crop(tuple(pairs) if n > 1 else pairs[0], name=ctx.name(f"{node.name}/crop"))(t)
    ctx.put(y, t, ctx.cl(y))


@keras_emitter("dense")
def _dense(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    if ctx.computed(node, 1) or ctx.computed(node, 2):  # inference only: no variables
        t = ctx.ops.matmul(ctx.get(x, ctx.cl(x)), ctx.get(node.inputs[1]))
        if node.inputs[2] is not None:
            t = ctx.ops.add(t, ctx.get(node.inputs[2]))
        if _activation(node) != "linear":
            t = ctx.layers.Activation(_activation(node), name=ctx.name())(t)
        ctx.put(y, t, ctx.cl(y))
        return
    w = ctx.weight(node, 1, "kernel")
    b = ctx.weight(node, 2, "bias")
    layer = ctx.layers.Dense(w.shape[1], activation=_activation(node), use_bias=b is not None, name=ctx.name(),
                             trainable=ctx.trainable)
    if is_refined(ctx, x) and dense_refined(ctx, node, layer, [w] + ([b] if b is not None else [])):
        return
    ctx.put(y, ctx.call(layer, ctx.get(x, ctx.cl(x)), [w] + ([b] if b is not None else [])), ctx.cl(y))


@keras_emitter("batch_norm")
def _batch_norm(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    scale, bias, mean, var = (ctx.weight(node, i, what) for i, what in
                              ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    perm = ctx.cl(x)
    layer = ctx.layers.BatchNormalization(axis=ctx.axis(x, 1, perm), epsilon=node.attrs["epsilon"],
                                          name=ctx.name(), trainable=ctx.trainable)
    ctx.put(y, ctx.call(layer, ctx.get(x, perm), [scale, bias, mean, var]), perm)


@keras_emitter("layer_norm")
def _layer_norm(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    perm = ctx.perm(x)
    ir_axes = [a % x.rank for a in node.attrs["axes"]]
    axes = sorted(perm.index(a) for a in ir_axes)
    gamma, beta = ctx.weight(node, 1, "scale"), ctx.weight(node, 2, "bias")
    weights = []
    for arr in (gamma, beta):
        if arr is not None:
            # The IR's parameter holds the normalized dims in ``axes`` order: place them on
            # the input's axes, move to the Keras layout, keep Keras's (sorted) axes.
            full = np.ones([1] * x.rank, np.float32) * np.moveaxis(
                arr.reshape(arr.shape + (1,) * (x.rank - arr.ndim)), list(range(arr.ndim)), ir_axes)
            full = full.transpose(perm)
            weights.append(full.reshape(tuple(full.shape[a] for a in axes)))
    layer = ctx.layers.LayerNormalization(axis=axes if len(axes) > 1 else axes[0], epsilon=node.attrs["epsilon"],
                                          center=beta is not None, scale=gamma is not None, name=ctx.name(),
                                          trainable=ctx.trainable)
    ctx.put(y, ctx.call(layer, ctx.get(x, perm), weights), perm)


@keras_emitter("rms_norm")
def _rms_norm(ctx: KerasContext, node: Node) -> None:
    """RMSNormalization over the (trailing) Keras axes; its scale broadcasts from the end, as Keras's does."""
    x, y = node.inputs[0], node.output
    perm = ctx.perm(x)
    ir_axes = [a % x.rank for a in node.attrs["axes"]]
    axes = sorted(perm.index(a) for a in ir_axes)
    if axes != list(range(x.rank - len(axes), x.rank)):
        ctx.fail(node, f"RMS normalization over Keras axes {axes} (not the trailing ones): Keras's "
                       f"RMSNormalization multiplies its scale along the trailing axes")
    scale = ctx.weight(node, 1, "scale")
    dims = [x.shape[a] for a in sorted(ir_axes, key=perm.index)]
    if scale is None:
        scale = np.ones(dims, np.float32)
    else:
        full = np.ones([1] * x.rank, np.float32) * np.moveaxis(
            scale.reshape(scale.shape + (1,) * (x.rank - scale.ndim)), list(range(scale.ndim)), ir_axes)
        full = full.transpose(perm)
        scale = full.reshape(tuple(full.shape[a] for a in axes))
    layer = ctx.layers.RMSNormalization(axis=axes if len(axes) > 1 else axes[0], epsilon=node.attrs["epsilon"],
                                        name=ctx.name(), trainable=ctx.trainable)
    ctx.put(y, ctx.call(layer, ctx.get(x, perm), [scale]), perm)


def _pool(ctx: KerasContext, node: Node, kind: str) -> None:
    x, y = node.inputs[0], node.output
    kernel = node.attrs["kernel"]
    n = len(kernel)
    if n not in _ND:
        ctx.fail(node, f"{n}-D pooling has no Keras layer")
    strides, dil = _window(node, kernel)
    padding, pairs = _padding(ctx, node, kernel, strides, dil)
    t = ctx.get(x, ctx.cl(x))
    if kind == "Average" and node.attrs["count_include_pad"] and padding == "same":
        padding, pairs = "valid", [same_pads(int(x.shape[2 + i]), kernel[i], strides[i], 1) for i in range(n)]
    if pairs:
        if kind == "Average" and not node.attrs["count_include_pad"]:
            ctx.fail(node, "average pooling that excludes explicit, non-'same' padding from the mean")
        t = _pad_spatial(ctx, t, pairs, fill=-np.inf if kind == "Max" else 0.0)
    layer = getattr(ctx.layers, f"{kind}Pooling{_ND[n]}")(pool_size=kernel, strides=strides, padding=padding,
                                                          name=ctx.name())
    ctx.put(y, layer(t), ctx.cl(y))


@keras_emitter("max_pool")
def _max_pool(ctx: KerasContext, node: Node) -> None:
    _pool(ctx, node, "Max")


@keras_emitter("avg_pool")
def _avg_pool(ctx: KerasContext, node: Node) -> None:
    _pool(ctx, node, "Average")


@keras_emitter("resize")
def _resize(ctx: KerasContext, node: Node) -> None:
    x, y = node.inputs[0], node.output
    n = x.rank - 2
    mode = node.attrs["mode"]
    scales = node.attrs["scales"] or tuple(o / i if isinstance(i, int) and isinstance(o, int) else 0.0
                                           for i, o in zip(x.shape[2:], y.shape[2:]))
    t = ctx.get(x, ctx.cl(x))
    if n in (1, 2, 3) and all(float(s).is_integer() and s >= 1 for s in scales) and (n == 2 or mode == "nearest"):
        size = tuple(int(s) for s in scales)
        if n == 1:
            out = ctx.layers.UpSampling1D(size[0], name=ctx.name())(t)
        elif n == 2:
            out = ctx.layers.UpSampling2D(size, interpolation=mode, name=ctx.name())(t)
        else:
            out = ctx.layers.UpSampling3D(size, name=ctx.name())(t)
    elif n == 2 and all(isinstance(d, int) for d in y.shape[2:]):
        out = ctx.layers.Resizing(y.shape[2], y.shape[3], interpolation=mode, name=ctx.name())(t)
    else:
        ctx.fail(node, f"resizing {n} spatial axes by {scales} to an unknown size")
    ctx.put(y, out, ctx.cl(y))


@keras_emitter("gather")
def _gather(ctx: KerasContext, node: Node) -> None:
    x, idx, y = node.inputs[0], node.inputs[1], node.output
    if x.is_const and x.rank == 2 and node.attrs["axis"] == 0 and not idx.is_const:
        # An embedding table: Keras's Embedding keeps it as a trainable variable.
        table = ctx.weight(node, 0, "embedding table")
        layer = ctx.layers.Embedding(table.shape[0], table.shape[1], name=ctx.name(), trainable=ctx.trainable)
        ctx.put(y, ctx.call(layer, ctx.get(idx, ctx.ident(idx)), [table]), ctx.ident(y))
        return
    axis = node.attrs["axis"] % x.rank
    if idx.rank == 0:
        perm = ctx.perm(x)
        t = ctx.ops.take(ctx.get(x, perm), ctx.get(idx), axis=perm.index(axis))
        kept = [a for a in perm if a != axis]
        ctx.put(y, t, tuple(a - (a > axis) for a in kept))
        return
    t = ctx.ops.take(ctx.get(x, ctx.ident(x)), ctx.get(idx, ctx.ident(idx)), axis=axis)
    ctx.put(y, t, ctx.ident(y))
