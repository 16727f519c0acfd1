"""Small MIL programs, one per op family, written with coremltools' builder, and their numpy references.

Each entry: ``(opset, input arrays, program builder, reference)``. Dims are
unequal everywhere (a swapped axis cannot pass) and inputs hold exact ties
(0, +-0.5, +-1, 6) where an op has a boundary. References are plain numpy (or
TensorFlow for windowed ops), never kcc's own op implementations.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from mlp_helpers import coremltools, seeded, with_ties

_erf = np.vectorize(math.erf, otypes=[np.float32])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _tf():
    import tensorflow as tf
    return tf


def _nchw(f):
    """Run a TF NHWC op on NCHW arrays."""
    def run(x, *args, **kw):
        y = f(np.transpose(x, (0, 2, 3, 1)), *args, **kw)
        return np.transpose(np.asarray(y), (0, 3, 1, 2))
    return run


Case = tuple[str, dict[str, np.ndarray], Callable[[Any, Any], Any], Callable[..., dict[str, np.ndarray]]]


def activations() -> Case:
    x = with_ties(seeded((2, 3, 4, 5), 1, 3.0), 1)
    alpha = np.array([0.1, 0.25, -0.3], np.float32)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape)])
        def prog(x):
            return (mb.relu(x=x, name="relu"), mb.relu6(x=x, name="relu6"),
                    mb.leaky_relu(x=x, alpha=0.1, name="leaky"), mb.elu(x=x, alpha=0.7, name="elu"),
                    mb.sigmoid(x=x, name="sigmoid"), mb.sigmoid_hard(x=x, alpha=0.3, beta=0.4, name="hard"),
                    mb.silu(x=x, name="silu"), mb.gelu(x=x, mode="EXACT", name="gelu"),
                    mb.gelu(x=x, mode="TANH_APPROXIMATION", name="gelu_tanh"),
                    mb.gelu(x=x, mode="SIGMOID_APPROXIMATION", name="gelu_sig"),
                    mb.softplus(x=x, name="softplus"), mb.softsign(x=x, name="softsign"),
                    mb.tanh(x=x, name="tanh"), mb.prelu(x=x, alpha=alpha, name="prelu"),
                    mb.scaled_tanh(x=x, alpha=0.5, beta=2.0, name="scaled_tanh"),
                    mb.clamped_relu(x=x, alpha=0.1, beta=2.0, name="clamped"),
                    mb.thresholded_relu(x=x, alpha=0.5, name="thresholded"),
                    mb.linear_activation(x=x, alpha=2.0, beta=-1.0, name="linear_act"),
                    mb.erf(x=x, name="erf"),
                    mb.softplus_parametric(x=x, alpha=np.array([1.0, 2.0, 0.5], np.float32),
                                           beta=np.array([0.5, 1.0, 3.0], np.float32), name="softplus_p"))
        return prog

    def ref(x):
        a = alpha.reshape(3, 1, 1)
        return {"relu": np.maximum(x, 0), "relu6": np.clip(x, 0, 6), "leaky": np.where(x >= 0, x, 0.1 * x),
                "elu": np.where(x > 0, x, 0.7 * np.expm1(np.minimum(x, 0))), "sigmoid": _sigmoid(x),
                "hard": np.clip(0.3 * x + 0.4, 0, 1), "silu": x * _sigmoid(x), "gelu": 0.5 * x * (1 + _erf(x / np.sqrt(2))),
                "gelu_tanh": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                "gelu_sig": x * _sigmoid(1.702 * x), "softplus": _softplus(x), "softsign": x / (1 + np.abs(x)),
                "tanh": np.tanh(x), "prelu": np.where(x >= 0, x, a * x), "scaled_tanh": 0.5 * np.tanh(2.0 * x),
                "clamped": np.minimum(np.where(x >= 0, x, 0.1 * x), 2.0), "thresholded": np.where(x > 0.5, x, 0),
                "linear_act": 2 * x - 1, "erf": _erf(x),
                "softplus_p": np.array([1.0, 2.0, 0.5]).reshape(3, 1, 1)
                * _softplus(np.array([0.5, 1.0, 3.0]).reshape(3, 1, 1) * x)}
    return "iOS15", {"x": x}, build, ref


def elementwise() -> Case:
    x = with_ties(seeded((2, 3, 4), 2, 2.0), 2)
    y = (np.abs(seeded((3, 4), 3)) + 0.5).astype(np.float32)
    y[0, 0] = 1.0
    x[:, 0, 0] = 1.0  # exact ties between x and y (equal, max, min, floor_div)
    x[1, 2, 3] = y[2, 3]

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(y.shape)])
        def prog(x, y):
            ax = mb.abs(x=x)
            one, zero = np.float32(1), np.float32(0)
            return (mb.add(x=x, y=y, name="add"), mb.sub(x=y, y=x, name="sub"), mb.mul(x=x, y=y, name="mul"),
                    mb.real_div(x=x, y=y, name="div"), mb.pow(x=y, y=x, name="pow"),
                    mb.maximum(x=x, y=y, name="maximum"), mb.minimum(x=x, y=y, name="minimum"),
                    mb.floor_div(x=x, y=y, name="floor_div"), mb.mod(x=x, y=y, name="mod"),
                    mb.select(cond=mb.equal(x=x, y=y), a=one, b=zero, name="equal"),
                    mb.select(cond=mb.not_equal(x=x, y=y), a=x, b=y, name="not_equal"),
                    mb.select(cond=mb.greater(x=x, y=y), a=x, b=y, name="greater"),
                    mb.select(cond=mb.greater_equal(x=x, y=one), a=x, b=y, name="greater_equal"),
                    mb.select(cond=mb.less(x=x, y=zero), a=x, b=y, name="less"),
                    mb.select(cond=mb.logical_and(x=mb.less_equal(x=x, y=one), y=mb.greater(x=x, y=-one)),
                              a=x, b=y, name="logic"),
                    mb.select(cond=mb.logical_not(x=mb.logical_or(x=mb.less(x=x, y=zero),
                                                                  y=mb.logical_xor(x=mb.greater(x=x, y=one),
                                                                                   y=mb.greater(x=y, y=one)))),
                              a=x, b=y, name="logic2"),
                    mb.abs(x=x, name="abs"), mb.ceil(x=x, name="ceil"), mb.floor(x=x, name="floor"),
                    mb.round(x=x, name="round"), mb.sign(x=x, name="sign"), mb.sqrt(x=ax, name="sqrt"),
                    mb.rsqrt(x=y, name="rsqrt"), mb.inverse(x=y, name="inverse"),
                    mb.inverse(x=y, epsilon=0.0, name="inverse0"), mb.log(x=y, name="log"),
                    mb.exp(x=x, name="exp"), mb.exp2(x=x, name="exp2"), mb.sin(x=x, name="sin"),
                    mb.cos(x=x, name="cos"), mb.square(x=x, name="square"), mb.tan(x=mb.mul(x=x, y=0.3), name="tan"),
                    mb.clip(x=x, alpha=-0.5, beta=1.0, name="clip"), mb.threshold(x=x, alpha=0.5, name="threshold"))
        return prog

    def ref(x, y):
        return {"add": x + y, "sub": y - x, "mul": x * y, "div": x / y, "pow": y ** x, "maximum": np.maximum(x, y),
                "minimum": np.minimum(x, y), "floor_div": np.floor(x / y), "mod": x - np.floor(x / y) * y,
                "equal": (x == y).astype(np.float32), "not_equal": np.where(x != y, x, y),
                "greater": np.where(x > y, x, y), "greater_equal": np.where(x >= 1, x, y),
                "less": np.where(x < 0, x, y), "logic": np.where((x <= 1) & (x > -1), x, y),
                "logic2": np.where(~((x < 0) | ((x > 1) ^ (y > 1))), x, y),
                "abs": np.abs(x), "ceil": np.ceil(x), "floor": np.floor(x), "round": np.round(x),
                "sign": np.sign(x), "sqrt": np.sqrt(np.abs(x)), "rsqrt": 1 / np.sqrt(y + 1e-12),
                "inverse": 1 / (y + 1e-4), "inverse0": 1 / y, "log": np.log(y + 1e-45), "exp": np.exp(x),
                "exp2": 2.0 ** x, "sin": np.sin(x), "cos": np.cos(x), "square": x * x, "tan": np.tan(0.3 * x), "clip": np.clip(x, -0.5, 1.0),
                "threshold": np.maximum(x, 0.5)}
    return "iOS15", {"x": x, "y": y}, build, ref


def reductions() -> Case:
    x = with_ties(seeded((2, 3, 4, 5), 4), 4)
    p = (np.abs(x) + 0.1).astype(np.float32)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(p.shape)])
        def prog(x, p):
            return (mb.reduce_sum(x=x, axes=[1, 3], keep_dims=True, name="sum"),
                    mb.reduce_mean(x=x, axes=[-1], name="mean"), mb.reduce_max(x=x, axes=[2], name="max"),
                    mb.reduce_min(x=x, axes=[0, 2], name="min"), mb.reduce_prod(x=p, axes=[3], name="prod"),
                    mb.reduce_l1_norm(x=x, axes=[1], name="l1"), mb.reduce_l2_norm(x=x, axes=[2, 3], name="l2"),
                    mb.reduce_log_sum_exp(x=x, axes=[3], name="lse"), mb.reduce_log_sum(x=p, axes=[1], name="ls"),
                    mb.reduce_sum_square(x=x, axes=[2], keep_dims=True, name="ss"),
                    mb.cast(x=mb.reduce_argmax(x=x, axis=2, name="am"), dtype="fp32", name="argmax"),
                    mb.cast(x=mb.reduce_argmin(x=x, axis=-1, keep_dims=True), dtype="fp32", name="argmin"),
                    mb.softmax(x=x, axis=1, name="softmax"))
        return prog

    def ref(x, p):
        e = np.exp(x - x.max(1, keepdims=True))
        return {"sum": x.sum((1, 3), keepdims=True), "mean": x.mean(-1), "max": x.max(2), "min": x.min((0, 2)),
                "prod": p.prod(3), "l1": np.abs(x).sum(1), "l2": np.sqrt((x * x).sum((2, 3))),
                "lse": np.log(np.exp(x).sum(3)), "ls": np.log(p.sum(1)), "ss": (x * x).sum(2, keepdims=True),
                "argmax": x.argmax(2).astype(np.float32), "argmin": x.argmin(-1)[..., None].astype(np.float32),
                "softmax": e / e.sum(1, keepdims=True)}
    return "iOS15", {"x": x, "p": p}, build, ref


def tensor_ops() -> Case:
    x = seeded((2, 3, 4, 5), 5)
    idx = np.array([2, 0, 3, 3, -1], np.int32)
    gidx = np.random.default_rng(6).integers(0, 4, (2, 3, 2, 5)).astype(np.int32)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape)])
        def prog(x):
            s0, s1, s2 = mb.split(x=x, split_sizes=[1, 3, 1], axis=3)
            h0, h1 = mb.split(x=x, num_splits=2, axis=2)
            shp = mb.shape(x=x)
            r = mb.range_1d(start=np.int32(0), end=mb.slice_by_index(x=shp, begin=[3], end=[4], squeeze_mask=[True]),
                            step=np.int32(2))
            return (mb.reshape(x=x, shape=[2, -1, 10], name="reshape"), mb.transpose(x=x, perm=[0, 3, 1, 2], name="transpose"),
                    mb.squeeze(x=mb.expand_dims(x=mb.slice_by_size(x=x, begin=[0, 0, 0, 0], size=[1, 3, 4, 5]), axes=[-1]),
                               axes=[0], name="expand_squeeze"),
                    mb.concat(values=[s2, s0, x], axis=-1, name="concat"), mb.mul(x=s1, y=2.0, name="split_mid"),
                    mb.sub(x=h1, y=h0, name="halves"), mb.stack(values=[s0, s2], axis=1, name="stack"),
                    mb.slice_by_index(x=x, begin=[0, 1, 0, 4], end=[2, 3, 4, 0], stride=[1, 1, 2, -2],
                                      begin_mask=[False, False, True, False], end_mask=[True, False, True, True],
                                      name="slice_index"),
                    mb.slice_by_index(x=x, begin=[1, 0, 2, 0], end=[2, 3, 3, 5], squeeze_mask=[True, False, True, False],
                                      name="slice_squeeze"),
                    mb.slice_by_size(x=x, begin=[0, 1, 1, 2], size=[-1, 2, 3, -1], name="slice_size"),
                    mb.gather(x=x, indices=idx, axis=3, name="gather"),
                    mb.gather_along_axis(x=x, indices=gidx, axis=2, name="gather_axis"),
                    mb.pad(x=x, pad=[1, 0, 2, 1], mode="constant", constant_val=-2.0, name="pad"),
                    mb.pad(x=x, pad=[0, 0, 1, 2, 2, 1], mode="reflect", name="pad_reflect"),
                    mb.pad(x=x, pad=[2, 1, 0, 3], mode="replicate", name="pad_edge"),
                    mb.tile(x=x, reps=[1, 2, 1, 3], name="tile"), mb.reverse(x=x, axes=[1, 3], name="reverse"),
                    mb.flatten2d(x=x, axis=2, name="flatten2d"),
                    mb.cast(x=mb.cast(x=mb.mul(x=x, y=3.0), dtype="int32"), dtype="fp32", name="cast"),
                    mb.add(x=x, y=mb.fill(shape=[4, 5], value=1.5), name="fill"),
                    mb.gather(x=x, indices=r, axis=3, name="shape_range"))
        return prog

    def ref(x):
        ia = np.indices(gidx.shape)
        return {"reshape": x.reshape(2, -1, 10), "transpose": x.transpose(0, 3, 1, 2), "expand_squeeze": x[:1, ..., None][0],
                "concat": np.concatenate([x[..., 4:], x[..., :1], x], -1), "split_mid": 2 * x[..., 1:4],
                "halves": x[:, :, 2:] - x[:, :, :2], "stack": np.stack([x[..., :1], x[..., 4:]], 1),
                "slice_index": x[:, 1:3, ::2, 4::-2], "slice_squeeze": x[1, 0:3, 2, 0:5],
                "slice_size": x[:, 1:3, 1:4, 2:], "gather": np.take(x, idx, axis=3),
                "gather_axis": x[ia[0], ia[1], gidx, ia[3]],
                "pad": np.pad(x, [(0, 0), (0, 0), (1, 0), (2, 1)], constant_values=-2.0),
                "pad_reflect": np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode="reflect"),
                "pad_edge": np.pad(x, [(0, 0), (0, 0), (2, 1), (0, 3)], mode="edge"), "tile": np.tile(x, (1, 2, 1, 3)),
                "reverse": x[:, ::-1, :, ::-1], "flatten2d": x.reshape(6, 20),
                "cast": np.trunc(3 * x).astype(np.float32), "fill": x + 1.5, "shape_range": x[..., 0:5:2]}
    return "iOS15", {"x": x}, build, ref


def nn_ops() -> Case:
    x = with_ties(seeded((2, 3, 9, 7), 7), 7)
    w = seeded((4, 3, 3, 2), 8, 0.5)
    wg = seeded((6, 1, 3, 3), 9, 0.5)
    b = seeded((4,), 10)
    wt = seeded((3, 5, 3, 2), 11, 0.5)
    lw, lb = seeded((6, 7), 12, 0.5), seeded((6,), 13)
    mean, var = seeded((3,), 14), np.abs(seeded((3,), 15)) + 0.5
    gamma, beta = seeded((3,), 16), seeded((3,), 17)
    lg, lbeta = seeded((7,), 18), seeded((7,), 19)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape)])
        def prog(x):
            x6 = mb.concat(values=[x, mb.mul(x=x, y=-0.5)], axis=1)
            return (mb.conv(x=x, weight=w, bias=b, strides=[2, 1], pad_type="custom", pad=[1, 2, 0, 1],
                            dilations=[1, 2], name="conv"),
                    mb.conv(x=x6, weight=wg, strides=[1, 2], pad_type="same", groups=6, name="conv_dw"),
                    mb.conv_transpose(x=x, weight=wt, strides=[2, 3], pad_type="valid", name="deconv"),
                    mb.conv_transpose(x=x, weight=wt, strides=[2, 2], pad_type="custom", pad=[1, 1, 0, 1],
                                      output_shape=[2, 5, 18, 13], name="deconv_out"),
                    mb.max_pool(x=x, kernel_sizes=[3, 2], strides=[2, 1], pad_type="same", name="max_pool"),
                    mb.avg_pool(x=x, kernel_sizes=[2, 3], strides=[1, 2], pad_type="custom", pad=[1, 1, 1, 0],
                                exclude_padding_from_average=True, name="avg_pool"),
                    mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="custom", pad=[0, 1, 1, 0],
                                exclude_padding_from_average=False, name="avg_pool_incl"),
                    mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", name="l2_pool"),
                    mb.linear(x=x, weight=lw, bias=lb, name="linear"),
                    mb.matmul(x=x, y=x, transpose_y=True, name="matmul"),
                    mb.einsum(values=(x, mb.transpose(x=x, perm=[0, 3, 2, 1])), equation="nchw,nwhu->nchu",
                              name="einsum"),
                    mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3, name="bn"),
                    mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-5, name="in"),
                    mb.layer_norm(x=x, axes=[-1], gamma=lg, beta=lbeta, epsilon=1e-5, name="ln"),
                    mb.layer_norm(x=x, axes=[1, 2, 3], epsilon=1e-5, name="ln_all"),
                    mb.l2_norm(x=x, epsilon=1e-6, name="l2_norm"),
                    mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3, name="up_nn"),
                    mb.resize_bilinear(x=x, target_size_height=13, target_size_width=5, sampling_mode="UNALIGN_CORNERS",
                                       name="resize_bilinear"))
        return prog

    def ref(x):
        tf = _tf()
        conv = _nchw(lambda a, k, **kw: tf.nn.conv2d(a, k, **kw))
        out = {}
        xp = np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 1)])
        out["conv"] = conv(xp, np.transpose(w, (2, 3, 1, 0)), strides=[1, 2, 1, 1], padding="VALID",
                           dilations=[1, 1, 2, 1]) + b.reshape(4, 1, 1)
        x6 = np.concatenate([x, -0.5 * x], 1)
        dw = np.transpose(wg, (2, 3, 0, 1))  # (kh, kw, C, 1)
        out["conv_dw"] = _nchw(lambda a: tf.nn.depthwise_conv2d(a, dw, [1, 1, 2, 1], "SAME"))(x6)
        kt = np.transpose(wt, (2, 3, 1, 0))  # (kh, kw, out, in)
        out["deconv"] = _nchw(lambda a: tf.nn.conv2d_transpose(a, kt, [2, 19, 20, 5], [1, 2, 3, 1], "VALID"))(x)
        full = _nchw(lambda a: tf.nn.conv2d_transpose(a, kt, [2, 19, 14, 5], [1, 2, 2, 1], "VALID"))(x)
        out["deconv_out"] = full[:, :, 1:19, 0:13]
        out["max_pool"] = _nchw(lambda a: tf.nn.max_pool2d(a, [3, 2], [2, 1], "SAME"))(x)
        ones = np.ones_like(x)
        xs = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 0)])
        cnt = np.pad(ones, [(0, 0), (0, 0), (1, 1), (1, 0)])
        sumw = _nchw(lambda a: tf.nn.avg_pool2d(a, [2, 3], [1, 2], "VALID"))
        out["avg_pool"] = sumw(xs) / sumw(cnt)
        out["avg_pool_incl"] = _nchw(lambda a: tf.nn.avg_pool2d(a, [2, 2], [2, 2], "VALID"))(
            np.pad(x, [(0, 0), (0, 0), (0, 1), (1, 0)]))
        out["l2_pool"] = np.sqrt(4 * _nchw(lambda a: tf.nn.avg_pool2d(a, [2, 2], [2, 2], "VALID"))(x * x))
        out["linear"] = x @ lw.T + lb
        out["matmul"] = x @ np.swapaxes(x, -1, -2)
        out["einsum"] = np.einsum("nchw,nwhu->nchu", x, np.transpose(x, (0, 3, 2, 1)))
        out["bn"] = (x - mean.reshape(3, 1, 1)) / np.sqrt(var.reshape(3, 1, 1) + 1e-3) * gamma.reshape(3, 1, 1) \
            + beta.reshape(3, 1, 1)
        m, v = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
        out["in"] = (x - m) / np.sqrt(v + 1e-5) * gamma.reshape(3, 1, 1) + beta.reshape(3, 1, 1)
        m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        out["ln"] = (x - m) / np.sqrt(v + 1e-5) * lg + lbeta
        m, v = x.mean((1, 2, 3), keepdims=True), x.var((1, 2, 3), keepdims=True)
        out["ln_all"] = (x - m) / np.sqrt(v + 1e-5)
        out["l2_norm"] = x / np.sqrt(np.maximum((x * x).sum((1, 2, 3), keepdims=True), 1e-6))
        out["up_nn"] = x.repeat(2, axis=2).repeat(3, axis=3)
        out["resize_bilinear"] = _nchw(lambda a: tf.image.resize(a, [13, 5], method="bilinear"))(x)
        return out
    return "iOS15", {"x": x}, build, ref


def _lstm_ref(x, h, c, wih, whh, bias, reverse=False):
    """MIL lstm, gates [i, f, o, z] (coremltools' iOS15 recurrent.py docstring)."""
    hs = []
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    ys = [None] * x.shape[0]
    for t in steps:
        g = x[t] @ wih.T + h @ whh.T + bias
        i, f, o, z = np.split(g, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(z)
        h = _sigmoid(o) * np.tanh(c)
        ys[t] = h
    hs = np.stack(ys)
    return hs, h, c


def recurrent() -> Case:
    T, N, F, H = 5, 2, 3, 4
    x = seeded((T, N, F), 20)
    h0, c0 = seeded((N, H), 21, 0.5), seeded((N, H), 22, 0.5)
    wih, whh, bias = seeded((4 * H, F), 23, 0.6), seeded((4 * H, H), 24, 0.6), seeded((4 * H,), 25, 0.3)
    wb, whb, bb = seeded((4 * H, F), 26, 0.6), seeded((4 * H, H), 27, 0.6), seeded((4 * H,), 28, 0.3)
    gih, ghh, gb = seeded((3 * H, F), 29, 0.6), seeded((3 * H, H), 30, 0.6), seeded((3 * H,), 31, 0.3)
    rih, rhh, rb = seeded((H, F), 32, 0.6), seeded((H, H), 33, 0.6), seeded((H,), 34, 0.3)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(h0.shape), mb.TensorSpec(c0.shape)])
        def prog(x, h, c):
            y, hl, cl = mb.lstm(x=x, initial_h=h, initial_c=c, weight_ih=wih, weight_hh=whh, bias=bias,
                                output_sequence=True, direction="forward")
            hh, cc = mb.concat(values=[h, h], axis=1), mb.concat(values=[c, c], axis=1)
            yb, hb, cb = mb.lstm(x=x, initial_h=hh, initial_c=cc, weight_ih=wih, weight_hh=whh, bias=bias,
                                 weight_ih_back=wb, weight_hh_back=whb, bias_back=bb, output_sequence=True,
                                 direction="bidirectional")
            gy, gh = mb.gru(x=x, initial_h=h, weight_ih=gih, weight_hh=ghh, bias=gb, output_sequence=True)
            ry, rh = mb.rnn(x=x, initial_h=h, weight_ih=rih, weight_hh=rhh, bias=rb, output_sequence=False,
                            direction="reverse")
            return (mb.identity(x=y, name="lstm_y"), mb.identity(x=hl, name="lstm_h"),
                    mb.identity(x=cl, name="lstm_c"), mb.identity(x=yb, name="bilstm_y"),
                    mb.identity(x=cb, name="bilstm_c"), mb.identity(x=gy, name="gru_y"),
                    mb.identity(x=ry, name="rnn_last"), mb.identity(x=rh, name="rnn_h"))
        return prog

    def ref(x, h, c):
        y, hl, cl = _lstm_ref(x, h, c, wih, whh, bias)
        yr, hr, cr = _lstm_ref(x, h, c, wb, whb, bb, reverse=True)
        hg, gys = h, []
        for t in range(T):  # MIL gru, gates [r, o, z]
            xr, xo, xz = np.split(x[t] @ gih.T, 3, -1)
            hr_, ho, hz = np.split(hg @ ghh.T, 3, -1)
            br, bo, bz = np.split(gb, 3)
            r = _sigmoid(xr + hr_ + br)
            z = _sigmoid(xz + hz + bz)
            o = np.tanh(xo + bo + r * ho)
            hg = (1 - z) * o + z * hg
            gys.append(hg)
        hn = h
        for t in range(T - 1, -1, -1):
            hn = np.tanh(x[t] @ rih.T + hn @ rhh.T + rb)
        return {"lstm_y": y, "lstm_h": hl, "lstm_c": cl, "bilstm_y": np.concatenate([y, yr], -1),
                "bilstm_c": np.concatenate([cl, cr], -1), "gru_y": np.stack(gys), "rnn_last": hn[None],
                "rnn_h": hn}
    return "iOS15", {"x": x, "h": h0, "c": c0}, build, ref


def constexpr_ios16() -> Case:
    x = seeded((2, 6), 40)
    rng = np.random.default_rng(41)
    q = rng.integers(0, 256, (5, 6)).astype(np.uint8)
    zp, scale = np.array([128, 120, 130, 127, 125], np.uint8), (rng.random(5) * 0.02 + 0.01).astype(np.float32)
    lut = rng.standard_normal(4).astype(np.float32)
    lut_idx = rng.integers(0, 4, 30)
    packed = np.packbits(((lut_idx[:, None] >> np.arange(2)) & 1).astype(np.uint8).reshape(-1), bitorder="little")
    dense = rng.standard_normal((5, 6)).astype(np.float32) * (rng.random((5, 6)) > 0.5)
    mask = np.packbits((dense.reshape(-1) != 0).astype(np.uint8), bitorder="little")
    nonzero = dense.reshape(-1)[dense.reshape(-1) != 0]

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=coremltools().target.iOS16)
        def prog(x):
            w1 = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=0)
            w2 = mb.constexpr_lut_to_dense(lut=lut, indices=packed, shape=np.array([5, 6], np.uint32))
            w3 = mb.constexpr_sparse_to_dense(nonzero_data=nonzero, mask=mask, shape=np.array([5, 6], np.uint32))
            w4 = mb.constexpr_cast(source_val=dense.astype(np.float16), output_dtype="fp32")
            return (mb.linear(x=x, weight=w1, name="affine"), mb.linear(x=x, weight=w2, name="lut"),
                    mb.linear(x=x, weight=w3, name="sparse"), mb.linear(x=x, weight=w4, name="cast16"))
        return prog

    def ref(x):
        w1 = (q.astype(np.float32) - zp[:, None]) * scale[:, None]
        return {"affine": x @ w1.T, "lut": x @ lut[lut_idx].reshape(5, 6).T, "sparse": x @ dense.T,
                "cast16": x @ dense.astype(np.float16).astype(np.float32).T}
    return "iOS16", {"x": x}, build, ref


def constexpr_ios18() -> Case:
    x = seeded((2, 8), 50)
    rng = np.random.default_rng(51)
    data = rng.integers(-8, 8, (4, 8)).astype(np.int8)
    scale = (rng.random((4, 2)) * 0.1 + 0.05).astype(np.float32)
    offset = rng.integers(-2, 3, (4, 2)).astype(np.int8)
    idx = rng.integers(0, 4, (4, 8)).astype(np.uint8)
    lut = rng.standard_normal((2, 1, 4, 1)).astype(np.float32)
    dense = rng.standard_normal((4, 8)).astype(np.float32) * (rng.random((4, 8)) > 0.4)
    mask = (dense != 0).astype(np.uint8)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=coremltools().target.iOS18)
        def prog(x):
            w1 = mb.constexpr_blockwise_shift_scale(data=mb.const(val=data), scale=scale,
                                                    offset=mb.const(val=offset))
            w2 = mb.constexpr_lut_to_dense(indices=mb.const(val=idx.astype(types.np_uint2_dtype)), lut=lut)
            w3 = mb.constexpr_sparse_to_dense(nonzero_data=dense[dense != 0],
                                              mask=mb.const(val=mask.astype(types.np_uint1_dtype)))
            return (mb.linear(x=x, weight=w1, name="blockwise"), mb.linear(x=x, weight=w2, name="lut18"),
                    mb.linear(x=x, weight=w3, name="sparse18"))
        return prog

    def ref(x):
        w1 = np.repeat(scale, 4, axis=1) * (data.astype(np.float32) - np.repeat(offset, 4, axis=1))
        table = np.repeat(lut[..., 0], 2, axis=0)  # (4, 1, 4): rows 0-1 block 0, rows 2-3 block 1
        w2 = np.take_along_axis(np.broadcast_to(table, (4, 8, 4)), idx[..., None].astype(np.int64), -1)[..., 0]
        return {"blockwise": x @ w1.T, "lut18": x @ w2.T, "sparse18": x @ dense.T}
    return "iOS18", {"x": x}, build, ref


def layout_ops() -> Case:
    x = seeded((2, 8, 6, 4), 60)
    m = seeded((2, 5, 7), 61)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(m.shape)],
                    opset_version=coremltools().target.iOS16)
        def prog(x, m):
            return (mb.depth_to_space(x=x, block_size=2, name="d2s"),
                    mb.space_to_depth(x=x, block_size=2, name="s2d"),
                    mb.pixel_shuffle(x=x, upscale_factor=2, name="shuffle"),
                    mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2), name="unshuffle"),
                    mb.band_part(x=m, lower=1, upper=2, name="band"),
                    mb.band_part(x=m, lower=-1, upper=0, name="lower_tri"),
                    mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 1], name="crop"),
                    mb.cumsum(x=m, axis=2, exclusive=True, reverse=True, name="cumsum"),
                    mb.non_zero(x=mb.relu(x=m), name="nonzero"),   # about half: a row count from the values
                    mb.one_hot(indices=mb.reduce_argmax(x=m, axis=2), one_hot_vector_size=7, axis=1, on_value=2.0,
                               off_value=-1.0, name="one_hot"),
                    mb.resize_nearest_neighbor(x=x, target_size_height=12, target_size_width=12, name="resize_nn"),
                    mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=1.5, align_corners=False,
                                         half_pixel_centers=True, name="up_bilinear"))
        return prog

    def ref(x, m):
        n, c, h, w = x.shape
        d2s = x.reshape(n, 2, 2, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // 4, h * 2, w * 2)
        s2d = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * 4, h // 2, w // 2)
        shuffle = x.reshape(n, c // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)
        i, j = np.indices(m.shape[1:])
        cs = np.flip(np.cumsum(np.flip(m, 2), 2), 2) - m
        oh = np.where(np.arange(7)[None, :, None] == m.argmax(2)[:, None, :], 2.0, -1.0)
        tf = _tf()
        up = _nchw(lambda a: tf.image.resize(a, [12, 6], method="bilinear"))(x)
        unshuffle = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)
        return {"d2s": d2s, "s2d": s2d, "shuffle": shuffle, "unshuffle": unshuffle, "band": np.where((i - j <= 1) & (j - i <= 2), m, 0),
                "lower_tri": np.where(j <= i, m, 0), "crop": x[:, :, 1:4, 0:3], "cumsum": cs, "one_hot": oh,
                "nonzero": np.argwhere(m > 0),
                "resize_nn": x.repeat(2, axis=2).repeat(3, axis=3), "up_bilinear": up}
    return "iOS16", {"x": x, "m": m}, build, ref


def attention_ios18() -> Case:
    q, k, v = seeded((2, 3, 5, 4), 70), seeded((2, 3, 6, 4), 71), seeded((2, 3, 6, 7), 72)
    keep = np.random.default_rng(73).random((5, 6)) > 0.3
    keep[:, 0] = True
    bias = seeded((5, 6), 74)

    def build(mb, types):
        @mb.program(input_specs=[mb.TensorSpec(q.shape), mb.TensorSpec(k.shape), mb.TensorSpec(v.shape)],
                    opset_version=coremltools().target.iOS18)
        def prog(q, k, v):
            return (mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=keep, name="masked"),
                    mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=bias, name="biased"),
                    mb.resize(x=q, shape=np.array([10, 8], np.int32), resized_dims=np.uint32(2),
                              interpolation_mode="NEAREST_NEIGHBOR", name="resize17"))
        return prog

    def ref(q, k, v):
        s = q @ np.swapaxes(k, -1, -2) / 2.0
        def attend(scores):
            e = np.exp(scores - scores.max(-1, keepdims=True))
            return (e / e.sum(-1, keepdims=True)) @ v
        return {"masked": attend(np.where(keep, s, -np.inf)), "biased": attend(s + bias),
                "resize17": q.repeat(2, axis=2).repeat(2, axis=3)}
    return "iOS18", {"q": q, "k": k, "v": v}, build, ref


CASES: dict[str, Callable[[], Case]] = {
    "activations": activations, "elementwise": elementwise, "reductions": reductions, "tensor": tensor_ops,
    "nn": nn_ops, "recurrent": recurrent, "constexpr_ios16": constexpr_ios16, "constexpr_ios18": constexpr_ios18,
    "layout": layout_ops, "attention_ios18": attention_ios18,
}
