"""Helpers for the flexible-shape tests: feed a Keras-layout batch to kcc's Core ML runtime at any size.

The spec decides the feed: with the rank-5 mapping (``arrayInputShapeMapping`` 0) a
sequence ``(B, T, F)`` is the IR value ``(B, F, T)`` held as the blob
``[1, B, F, 1, T]`` (Seq 1, then the batch); a vector ``(B, F)`` is ``[1, B, F]``.
With the ND mapping the feed is the IR value itself. Outputs come back in the
IR's layout and are moved to Keras's.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kcc.coreml import predict
from kcc.layout import to_ir_perm, to_keras_perm


def network(spec: Any) -> Any:
    return getattr(spec, spec.WhichOneof("Type"))


def feed(spec: Any, keras_x: np.ndarray) -> np.ndarray:
    """A Keras-layout batch as the runtime's input array for ``spec``."""
    x = np.asarray(keras_x, dtype=np.float32)
    ir = np.transpose(x, to_ir_perm(x.ndim))
    if network(spec).arrayInputShapeMapping != 0:
        return ir
    b = ir.shape[0]
    if ir.ndim == 2:
        return ir.reshape(1, b, ir.shape[1])
    if ir.ndim == 3:
        return ir.reshape(1, b, ir.shape[1], 1, ir.shape[2])
    return ir.reshape((1,) + ir.shape)


def run(spec: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the whole batch in one call; each output reshaped to the IR form of its Keras reference."""
    feeds = {f.name: feed(spec, x) for f, x in zip(spec.description.input, xs)}
    outs = predict(spec, feeds)
    got = []
    for f, r in zip(spec.description.output, refs):
        ir_shape = tuple(r.shape[p] for p in to_ir_perm(r.ndim))
        ir = np.asarray(outs[f.name], dtype=np.float32).reshape(ir_shape)
        got.append(np.transpose(ir, to_keras_perm(ir.ndim)))
    return got


def ranges(feature: Any) -> list[tuple[int, int]]:
    """(lowerBound, upperBound) per declared axis of a multiarray feature's shapeRange."""
    return [(int(r.lowerBound), int(r.upperBound)) for r in feature.type.multiArrayType.shapeRange.sizeRanges]
