"""convolution3d (forward and deconvolution), pooling3d and globalPooling3d on hand-built
specs (coremltools' NeuralNetworkBuilder writes them, not kcc), each checked against
plain Python loops over output / input positions written independently here."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import coreml_runtime_helpers  # noqa: F401  (quiet TF/coremltools logs)
from kcc.coreml import predict
from kcc.testing import assert_close, assert_not_degenerate

from coremltools.models import datatypes  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402

RNG = np.random.default_rng(2024)
X = RNG.standard_normal((2, 4, 5, 6, 7)).astype(np.float32)   # [N, C, D, H, W]
NEG = -np.abs(X) - 0.1                                           # all negative: padding must never win a max


def _run(add_layer, x: np.ndarray) -> np.ndarray:
    b = NeuralNetworkBuilder([("x", datatypes.Array(*x.shape))], [("y", None)], disable_rank5_shape_mapping=True)
    add_layer(b)
    return np.asarray(predict(b.spec, {"x": x})["y"])


def _same(size: int, k: int, s: int) -> tuple[int, int]:
    total = max(0, (-(-size // s) - 1) * s + k - size)
    return total // 2, total - total // 2


def _pads(mode: str, sizes, keff, strides, custom) -> list[tuple[int, int]]:
    if mode == "same":
        return [_same(n, k, s) for n, k, s in zip(sizes, keff, strides)]
    if mode == "custom":
        return [tuple(custom[i:i + 2]) for i in (0, 2, 4)]
    return [(0, 0)] * 3


# ------------------------------------------------------------- reference loops

def ref_conv(x, w, b, groups, strides, dil, mode, custom=(0,) * 6):
    """y[n, o, p] = sum over the group's channels and kernel taps of xpad * w, one position at a time."""
    n, c = x.shape[:2]
    cout, cg = w.shape[:2]
    kernel = w.shape[2:]
    keff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    pads = _pads(mode, x.shape[2:], keff, strides, custom)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + pads)
    outs = [(xp.shape[2 + i] - keff[i]) // strides[i] + 1 for i in range(3)]
    y = np.zeros((n, cout, *outs))
    og = cout // groups
    for o in range(cout):
        chans = slice((o // og) * cg, (o // og + 1) * cg)
        for pos in itertools.product(*(range(v) for v in outs)):
            acc = np.zeros(n)
            for tap in itertools.product(*(range(k) for k in kernel)):
                at = [p * s + t * d for p, s, t, d in zip(pos, strides, tap, dil)]
                acc += xp[:, chans, at[0], at[1], at[2]] @ w[o, :, tap[0], tap[1], tap[2]]
            y[:, o][(slice(None),) + pos] = acc
    return y + (0 if b is None else b.reshape(1, -1, 1, 1, 1))


def ref_deconv(x, w_in_out, b, groups, strides, dil, mode, custom=(0,) * 6, out_shape=None):
    """Scatter every input cell times the kernel into the full output, then crop.

    ``w_in_out`` is [Cin, Cout / groups, kD, kH, kW].
    """
    n, c = x.shape[:2]
    og = w_in_out.shape[1]
    kernel = w_in_out.shape[2:]
    cg = c // groups
    full = [(s_in - 1) * s + (k - 1) * d + 1 for s_in, s, k, d in zip(x.shape[2:], strides, kernel, dil)]
    y = np.zeros((n, og * groups, *full))
    for ci in range(c):
        g = ci // cg
        for pos in itertools.product(*(range(v) for v in x.shape[2:])):
            for tap in itertools.product(*(range(k) for k in kernel)):
                at = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, dil))
                y[(slice(None), slice(g * og, (g + 1) * og)) + at] += (
                    x[(slice(None), ci) + pos][:, None] * w_in_out[ci, :, tap[0], tap[1], tap[2]][None])
    sizes = x.shape[2:]
    if mode == "custom":
        starts = custom[0::2]
        outs = out_shape or [f - a - e for f, a, e in zip(full, custom[0::2], custom[1::2])]
    elif mode == "same":
        outs = out_shape or [s_in * s for s_in, s in zip(sizes, strides)]
        starts = [max(f - o, 0) // 2 for f, o in zip(full, outs)]
    else:
        starts, outs = [0, 0, 0], out_shape or full
    res = np.zeros((n, og * groups, *outs))
    src = y[(slice(None), slice(None)) + tuple(slice(a, a + o) for a, o in zip(starts, outs))]
    res[(slice(None), slice(None)) + tuple(slice(0, v) for v in src.shape[2:])] = src
    return res + (0 if b is None else b.reshape(1, -1, 1, 1, 1))


def ref_pool(x, kind, kernel, strides, mode, custom=(0,) * 6, exclude=False):
    """Each output cell looks at the part of its window that lies inside the input."""
    sizes = x.shape[2:]
    pads = _pads(mode, sizes, kernel, strides, custom)
    outs = [(n + a + e - k) // s + 1 for n, (a, e), k, s in zip(sizes, pads, kernel, strides)]
    y = np.zeros(x.shape[:2] + tuple(outs))
    for pos in itertools.product(*(range(v) for v in outs)):
        lo = [p * s - a for p, s, (a, _) in zip(pos, strides, pads)]
        box = tuple(slice(max(l, 0), min(l + k, n)) for l, k, n in zip(lo, kernel, sizes))
        cells = x[(slice(None), slice(None)) + box].reshape(x.shape[:2] + (-1,)).astype(np.float64)
        if kind == "MAX":
            y[(slice(None), slice(None)) + pos] = cells.max(-1)
        else:
            count = cells.shape[-1] if exclude else int(np.prod(kernel))
            y[(slice(None), slice(None)) + pos] = cells.sum(-1) / count
    return y


# ------------------------------------------------------------------- the cases

def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 0.5


def conv_case(cin, cout, kernel, groups=1, strides=(1, 1, 1), dil=(1, 1, 1), mode="valid", custom=(0,) * 6,
              bias=True):
    w = _w(cout, cin // groups, *kernel)
    b = _w(cout) if bias else None
    names = dict(zip(("padding_front", "padding_back", "padding_top", "padding_bottom",
                      "padding_left", "padding_right"), custom))

    def add(bld):
        bld.add_convolution3d("l", cin, cout, *kernel, W=w, b=b, has_bias=bias, groups=groups,
                              stride_depth=strides[0], stride_height=strides[1], stride_width=strides[2],
                              dilation_depth=dil[0], dilation_height=dil[1], dilation_width=dil[2],
                              padding_mode=mode, input_name="x", output_name="y", **names)
    return add, lambda x: ref_conv(x, w, b, groups, strides, dil, mode, custom)


def deconv_case(cin, cout, kernel, groups=1, strides=(1, 1, 1), dil=(1, 1, 1), mode="valid", custom=(0,) * 6,
                out_shape=None, bias=True):
    w_in_out = _w(cin, cout // groups, *kernel)
    b = _w(cout) if bias else None
    names = dict(zip(("padding_front", "padding_back", "padding_top", "padding_bottom",
                      "padding_left", "padding_right"), custom))

    def add(bld):
        # the builder takes [Cout / groups, Cin, k...] and stores it transposed
        bld.add_convolution3d("l", cin, cout, *kernel, W=w_in_out.transpose(1, 0, 2, 3, 4), b=b, has_bias=bias,
                              groups=groups, stride_depth=strides[0], stride_height=strides[1],
                              stride_width=strides[2], dilation_depth=dil[0], dilation_height=dil[1],
                              dilation_width=dil[2], is_deconv=True, output_shape=out_shape, padding_mode=mode,
                              input_name="x", output_name="y", **names)
    return add, lambda x: ref_deconv(x, w_in_out, b, groups, strides, dil, mode, custom, out_shape)


def pool_case(kind, kernel, strides, mode="valid", custom=(0,) * 6, exclude=False):
    names = dict(zip(("custom_padding_front", "custom_padding_back", "custom_padding_top",
                      "custom_padding_bottom", "custom_padding_left", "custom_padding_right"), custom))

    def add(bld):
        bld.add_pooling3d("l", "x", "y", kind, *kernel, *strides, padding_mode=mode,
                          average_pooling_count_excludes_padding=exclude, **names)
    return add, lambda x: ref_pool(x, kind, kernel, strides, mode, custom, exclude)


CASES = {
    "conv-valid-stride": (conv_case(4, 3, (2, 3, 2), strides=(1, 2, 1)), X),
    "conv-custom-dilated-grouped": (conv_case(4, 6, (2, 2, 3), groups=2, dil=(2, 1, 2),
                                              mode="custom", custom=(1, 0, 0, 2, 1, 1)), X),
    "conv-same-stride2-oddpad": (conv_case(4, 2, (3, 2, 4), strides=(2, 2, 2), mode="same", bias=False), X),
    "conv-depthwise-same": (conv_case(4, 4, (3, 3, 3), groups=4, mode="same"), X),
    "deconv-valid-overlap-grouped": (deconv_case(4, 6, (3, 2, 3), groups=2, strides=(2, 2, 1)), X),
    "deconv-custom-outputshape": (deconv_case(4, 3, (3, 3, 2), strides=(2, 1, 2), mode="custom",
                                              custom=(1, 0, 0, 1, 1, 0), out_shape=[10, 7, 14]), X),
    "deconv-same-stride2": (deconv_case(4, 2, (3, 3, 3), strides=(2, 2, 2), mode="same"), X),
    "deconv-dilated": (deconv_case(4, 2, (2, 2, 2), dil=(2, 1, 3), bias=False), X),
    "maxpool-valid": (pool_case("MAX", (2, 2, 3), (2, 2, 2)), X),
    "maxpool-same-negative": (pool_case("MAX", (3, 3, 2), (2, 2, 2), mode="same"), NEG),
    "maxpool-custom-negative": (pool_case("MAX", (2, 3, 3), (1, 2, 2), mode="custom", custom=(1, 1, 0, 2, 2, 0)), NEG),
    "avgpool-custom-include": (pool_case("AVERAGE", (2, 3, 3), (1, 2, 2), mode="custom",
                                         custom=(1, 1, 0, 2, 2, 0)), X),
    "avgpool-custom-exclude": (pool_case("AVERAGE", (2, 3, 3), (1, 2, 2), mode="custom",
                                         custom=(1, 1, 0, 2, 2, 0), exclude=True), X),
    "avgpool-same-exclude": (pool_case("AVERAGE", (3, 2, 3), (2, 2, 2), mode="same", exclude=True), X),
    "avgpool-same-include": (pool_case("AVERAGE", (3, 2, 3), (2, 2, 2), mode="same"), X),
    "global-max": ((lambda b: b.add_global_pooling3d("l", "x", "y", "MAX"),
                    lambda x: x.max(axis=(2, 3, 4), keepdims=True)), X),
    "global-average": ((lambda b: b.add_global_pooling3d("l", "x", "y", "AVERAGE"),
                        lambda x: x.mean(axis=(2, 3, 4), keepdims=True)), X),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_3d(name):
    (add, reference), x = CASES[name]
    ref = np.asarray(reference(x), dtype=np.float64)
    assert_not_degenerate(ref)
    got = _run(add, x)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    assert_close(ref, got, 1e-5, what=name)


def test_leading_axes_fold_into_batch():
    """A rank-6 input runs like its leading axes flattened into the batch axis."""
    add, _ = CASES["conv-custom-dilated-grouped"][0]
    x6 = X.reshape((1,) + X.shape)
    assert_close(_run(add, X)[None], _run(add, x6), 1e-6, what="rank-6 convolution3d")


def test_bad_groups_is_a_clear_error():
    from kcc.errors import RuntimeModelError
    add, _ = conv_case(4, 3, (1, 1, 1), groups=2)
    with pytest.raises(RuntimeModelError, match="convolution3d.*nGroups=2"):
        _run(add, X)
