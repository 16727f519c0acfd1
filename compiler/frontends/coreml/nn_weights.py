"""Decode NeuralNetwork ``WeightParams`` into float32 numpy arrays for IR constants.

A ``WeightParams`` (NeuralNetwork.proto) holds its values in exactly one of
``floatValue`` (float32), ``float16Value`` (little-endian halves), ``rawValue``
(float32 bytes, or packed unsigned N-bit integers when ``quantization`` is set)
and ``int8RawValue`` (signed bytes, linear quantization). Quantized weights are
dequantized here, once, at import: the IR holds float32 weights, so the ONNX
model computes what Core ML computes.

* N-bit integers (1 to 8 bits) form one bit stream, most significant bit first,
  the last byte zero-padded;
* ``linearQuantization``: ``w = scale * q + bias``, one scale/bias for the whole
  tensor or one per output channel (the weight's leading axis);
* ``lookupTableQuantization``: ``w = table[q]`` (``2**bits`` entries).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kcc.errors import ModelFileError


def has_values(weights: Any) -> bool:
    """True when the message stores any value."""
    return bool(len(weights.floatValue) or weights.float16Value or weights.rawValue or weights.int8RawValue)


def decode_weights(weights: Any, shape: Sequence[int] | None, what: str) -> np.ndarray:
    """The values of ``weights`` as float32, reshaped to ``shape``; ``what`` names them in errors."""
    values = _flat(weights, what)
    if shape is None:
        return values
    shape = tuple(int(d) for d in shape)
    needed = int(np.prod(shape, dtype=np.int64))
    if weights.rawValue and weights.HasField("quantization") and values.size > needed:
        values = values[:needed]  # the zero padding of a sub-byte stream
    if values.size != needed:
        raise ModelFileError(f"{what}: the model stores {values.size} values, shape {list(shape)} needs {needed}; "
                             f"the model file is inconsistent (re-save it with coremltools)")
    return values.reshape(shape)


def _flat(weights: Any, what: str) -> np.ndarray:
    if len(weights.floatValue):
        return np.asarray(weights.floatValue, dtype=np.float32)
    if weights.float16Value:
        if len(weights.float16Value) % 2:
            raise ModelFileError(f"{what}: float16Value holds an odd number of bytes; the model file is corrupt")
        return np.frombuffer(weights.float16Value, dtype="<f2").astype(np.float32)
    quant = weights.quantization if weights.HasField("quantization") else None
    kind = quant.WhichOneof("QuantizationType") if quant is not None else None
    if weights.int8RawValue:
        if kind != "linearQuantization":
            raise ModelFileError(f"{what}: int8RawValue needs linear quantization parameters; the model is corrupt")
        return _dequantize(np.frombuffer(weights.int8RawValue, dtype=np.int8).astype(np.float32), quant, what)
    if weights.rawValue:
        if kind is None:
            if len(weights.rawValue) % 4:
                raise ModelFileError(f"{what}: float32 rawValue holds {len(weights.rawValue)} bytes, not a multiple "
                                     f"of 4; the model file is corrupt")
            return np.frombuffer(weights.rawValue, dtype="<f4").astype(np.float32)
        return _dequantize(unpack_bits(weights.rawValue, int(quant.numberOfBits), what), quant, what)
    return np.zeros(0, dtype=np.float32)


def unpack_bits(raw: bytes, bits: int, what: str) -> np.ndarray:
    """Unsigned ``bits``-wide integers (1..8) of a most-significant-bit-first stream, as float32."""
    if not 1 <= bits <= 8:
        raise ModelFileError(f"{what}: {bits}-bit quantized weights; Core ML quantizes to 1 to 8 bits")
    data = np.frombuffer(raw, dtype=np.uint8)
    if bits == 8:
        return data.astype(np.float32)
    stream = np.unpackbits(data, bitorder="big")
    stream = stream[: stream.size - stream.size % bits].reshape(-1, bits).astype(np.uint16)
    return (stream @ (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)).astype(np.float32)


def _dequantize(q: np.ndarray, quant: Any, what: str) -> np.ndarray:
    kind = quant.WhichOneof("QuantizationType")
    if kind == "lookupTableQuantization":
        table = np.asarray(quant.lookupTableQuantization.floatValue, dtype=np.float32)
        if q.size and int(q.max()) >= table.size:
            raise ModelFileError(f"{what}: a quantized index {int(q.max())} is past the {table.size}-entry lookup "
                                 f"table; the model file is corrupt")
        return table[q.astype(np.int64)]
    scale = np.asarray(quant.linearQuantization.scale, dtype=np.float32)
    bias = np.asarray(quant.linearQuantization.bias, dtype=np.float32)
    if scale.size <= 1 and bias.size <= 1:
        return q * (scale[0] if scale.size else np.float32(1)) + (bias[0] if bias.size else np.float32(0))
    rows = max(scale.size, bias.size)
    if q.size % rows:
        raise ModelFileError(f"{what}: {rows} per-channel quantization scales do not divide {q.size} weights")
    q = q.reshape(rows, -1)
    s = scale.reshape(-1, 1) if scale.size > 1 else scale.reshape(1, 1)
    b = bias.reshape(-1, 1) if bias.size > 1 else (bias.reshape(1, 1) if bias.size else np.float32(0))
    return (q * s + b).reshape(-1).astype(np.float32)
