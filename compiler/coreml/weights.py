"""Decode ``WeightParams`` messages (NeuralNetwork.proto) into float32 numpy arrays.

A ``WeightParams`` holds its values in exactly one of: ``floatValue`` (repeated
float32), ``float16Value`` (little-endian IEEE half bytes), ``rawValue`` (float32
bytes when there is no quantization, otherwise packed unsigned N-bit integers) or
``int8RawValue`` (signed bytes, linear quantization only). Quantized values are
expanded here, so every layer implementation sees plain float32 arrays.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kcc.errors import RuntimeModelError


def decode(weights, shape: Sequence[int] | None = None, *, what: str = "weights") -> np.ndarray:
    """Return the values of a ``WeightParams`` as float32, reshaped to ``shape`` if given.

    ``what`` names the field in error messages ("layer 'conv1' weights").
    """
    values = _flat_values(weights, what)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        needed = int(np.prod(shape, dtype=np.int64))
        if weights.rawValue and values.size > needed and weights.HasField("quantization"):
            values = values[:needed]  # padding bits of a sub-byte quantized stream
        if values.size != int(np.prod(shape, dtype=np.int64)):
            raise RuntimeModelError(
                f"{what}: the model stores {values.size} values but shape {list(shape)} "
                f"needs {int(np.prod(shape, dtype=np.int64))}; the model file is inconsistent")
        values = values.reshape(shape)
    return values


def is_empty(weights) -> bool:
    """True when a ``WeightParams`` holds no values at all (an unset field)."""
    return not (len(weights.floatValue) or weights.float16Value or weights.rawValue
                or weights.int8RawValue)


def _flat_values(weights, what: str) -> np.ndarray:
    if len(weights.floatValue):
        return np.asarray(weights.floatValue, dtype=np.float32)
    if weights.float16Value:
        return np.frombuffer(weights.float16Value, dtype="<f2").astype(np.float32)
    quant = weights.quantization if weights.HasField("quantization") else None
    if weights.int8RawValue:
        q = np.frombuffer(weights.int8RawValue, dtype=np.int8).astype(np.float32)
        return _dequantize(q, quant, what)
    if weights.rawValue:
        if quant is None or quant.WhichOneof("QuantizationType") is None:
            # rawValue without quantization parameters carries float32 bytes.
            return np.frombuffer(weights.rawValue, dtype="<f4").astype(np.float32)
        q = _unpack_bits(weights.rawValue, int(quant.numberOfBits), what)
        return _dequantize(q, quant, what)
    return np.zeros(0, dtype=np.float32)


def _unpack_bits(raw: bytes, bits: int, what: str) -> np.ndarray:
    """Unpack ``bits``-wide unsigned integers (1..8 bits, most significant bit first)."""
    if not 1 <= bits <= 8:
        raise RuntimeModelError(f"{what}: {bits}-bit quantized weights are not supported")
    data = np.frombuffer(raw, dtype=np.uint8)
    if bits == 8:
        return data.astype(np.float32)
    # One bit stream, most significant bit first, both within a value and within a
    # byte; the last byte is zero-padded (so callers trim to the element count).
    bitstream = np.unpackbits(data, bitorder="big")
    bitstream = bitstream[: bitstream.size - bitstream.size % bits].reshape(-1, bits)
    powers = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)
    return (bitstream.astype(np.uint16) @ powers).astype(np.float32)


def _dequantize(q: np.ndarray, quant, what: str) -> np.ndarray:
    if quant is None:
        raise RuntimeModelError(f"{what}: int8 raw weights without quantization parameters")
    kind = quant.WhichOneof("QuantizationType")
    if kind == "lookupTableQuantization":
        table = np.asarray(quant.lookupTableQuantization.floatValue, dtype=np.float32)
        return table[q.astype(np.int64)]
    if kind == "linearQuantization":
        scale = np.asarray(quant.linearQuantization.scale, dtype=np.float32)
        bias = np.asarray(quant.linearQuantization.bias, dtype=np.float32)
        if scale.size <= 1 and bias.size <= 1:
            return q * (scale[0] if scale.size else 1.0) + (bias[0] if bias.size else 0.0)
        # One scale/bias per output channel: the leading axis of the weight tensor.
        rows = max(scale.size, bias.size)
        q = q.reshape(rows, -1)
        scale = scale.reshape(-1, 1) if scale.size > 1 else scale.reshape(1, 1)
        bias = bias.reshape(-1, 1) if bias.size > 1 else (bias.reshape(1, 1) if bias.size else 0.0)
        return (q * scale + bias).reshape(-1)
    raise RuntimeModelError(f"{what}: quantized weights of an unknown kind ({kind})")
