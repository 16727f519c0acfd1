"""NeuralNetwork weights in float16 and quantized form (linear and lookup table, 1 to 8 bits).

Quantized specs are made here from a float32 spec: every weight is quantized
with numpy (values packed most-significant-bit first with ``np.packbits``), and
the reference is the same spec holding the dequantized float32 values, run by
kcc's NeuralNetwork runtime. The float16 spec is checked against the float32
source within 1e-2.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import kcc
from kcc.testing import assert_close, assert_not_degenerate
from nn_helpers import run_onnx
from nn_specs import rank5_cnn

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)

X = np.random.default_rng(5).standard_normal((2, 3, 5, 7)).astype(np.float32)


def _weight_params(spec):
    """Every WeightParams message of the network that holds float values."""
    for layer in spec.neuralNetwork.layers:
        params = getattr(layer, layer.WhichOneof("layer"))
        for field, value in params.ListFields():
            if type(value).__name__ == "WeightParams" and len(value.floatValue):
                yield value
        if layer.WhichOneof("layer") == "activation":
            act = params.PReLU
            if len(act.alpha.floatValue):
                yield act.alpha


def _quantized(bits: int, kind: str):
    """(quantized spec, the same spec with the dequantized values as float32)."""
    spec, deq = rank5_cnn(), rank5_cnn()
    for w, d in zip(_weight_params(spec), _weight_params(deq)):
        values = np.asarray(w.floatValue, np.float32)
        levels = 2 ** bits
        if kind == "linear":
            lo, hi = float(values.min()), float(values.max())
            scale = (hi - lo) / (levels - 1) or 1.0
            q = np.clip(np.rint((values - lo) / scale), 0, levels - 1).astype(np.uint8)
            back = (q.astype(np.float32) * np.float32(scale) + np.float32(lo)).astype(np.float32)
            w.quantization.linearQuantization.scale.append(scale)
            w.quantization.linearQuantization.bias.append(lo)
        else:
            # A non-uniform table (denser near 0), as k-means palettes are.
            grid = np.linspace(-1.0, 1.0, levels, dtype=np.float32)
            table = (grid * np.abs(grid) * np.float32(np.abs(values).max())).astype(np.float32)
            q = np.abs(values[:, None] - table[None]).argmin(axis=1).astype(np.uint8)
            back = table[q]
            w.quantization.lookupTableQuantization.floatValue.extend(table.tolist())
        w.quantization.numberOfBits = bits
        bitstream = ((q[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8).reshape(-1)
        del w.floatValue[:]
        w.rawValue = np.packbits(bitstream, bitorder="big").tobytes()
        del d.floatValue[:]
        d.floatValue.extend(back.tolist())
    return spec, deq


@functools.lru_cache(maxsize=None)
def _float_result() -> np.ndarray:
    return run_onnx(kcc.compile(rank5_cnn(), target="onnx"), {"x": X})["y"]


@pytest.mark.parametrize("bits,kind", [(1, "linear"), (2, "lut"), (3, "linear"), (4, "lut"), (5, "linear"),
                                       (6, "lut"), (7, "linear"), (8, "lut")])
def test_quantized_weights_match_dequantized_reference(bits, kind):
    spec, deq = _quantized(bits, kind)
    got = run_onnx(kcc.compile(spec, target="onnx"), {"x": X})["y"]
    ref = np.stack([kcc.coreml.predict(deq, {"x": X[i]})["y"].reshape(-1) for i in range(len(X))])
    assert_not_degenerate(ref)
    assert_close(ref, got, 1e-4, f"{bits}-bit {kind}")
    if bits <= 4:  # the quantized weights were read as such, not as floats
        assert np.abs(_float_result() - got).max() > 1e-3


def test_int8_raw_linear_per_channel():
    """int8RawValue with one scale per output channel (innerProduct)."""
    spec, deq = rank5_cnn(), rank5_cnn()
    fc = [l for l in spec.neuralNetwork.layers if l.name == "fc"][0].innerProduct
    fc_deq = [l for l in deq.neuralNetwork.layers if l.name == "fc"][0].innerProduct
    w = np.asarray(fc.weights.floatValue, np.float32).reshape(5, 48)
    scale = np.abs(w).max(axis=1) / 127
    q = np.rint(w / scale[:, None]).astype(np.int8)
    del fc.weights.floatValue[:]
    fc.weights.int8RawValue = q.tobytes()
    fc.weights.quantization.numberOfBits = 8
    fc.weights.quantization.linearQuantization.scale.extend(scale.tolist())
    del fc_deq.weights.floatValue[:]
    fc_deq.weights.floatValue.extend((q * scale[:, None].astype(np.float32)).reshape(-1).tolist())
    got = run_onnx(kcc.compile(spec, target="onnx"), {"x": X})["y"]
    ref = np.stack([kcc.coreml.predict(deq, {"x": X[i]})["y"].reshape(-1) for i in range(len(X))])
    assert_close(ref, got, 1e-4, "int8 per-channel")


def test_float16_weights_within_1e_2():
    full, half = rank5_cnn(), rank5_cnn()
    for w in _weight_params(half):
        values = np.asarray(w.floatValue, np.float32)
        del w.floatValue[:]
        w.float16Value = values.astype("<f2").tobytes()
    ref = _float_result()
    ref_rt = np.stack([kcc.coreml.predict(full, {"x": X[i]})["y"].reshape(-1) for i in range(len(X))])
    assert_close(ref_rt, ref, 1e-4, "float32 source")
    got = run_onnx(kcc.compile(half, target="onnx"), {"x": X})["y"]
    err = assert_close(ref, got, 1e-2, "float16 weights")
    assert err > 0  # the float16 values were read as float16
    assert_close(np.stack([kcc.coreml.predict(half, {"x": X[i]})["y"].reshape(-1) for i in range(len(X))]), got,
                 1e-4, "float16 weights vs the runtime")
