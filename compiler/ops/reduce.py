"""Reductions over a set of axes, with or without keeping the reduced dims."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.tensor_type import TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import norm_axes

_REDUCE: dict[str, Callable[..., np.ndarray]] = {
    "reduce_mean": np.mean,
    "reduce_sum": np.sum,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
}


def reduced_shape(shape: tuple, axes: tuple[int, ...], keepdims: bool) -> tuple:
    axes = norm_axes(axes, len(shape))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _declare_reduce(op_name: str, fn: Callable[..., np.ndarray]) -> None:
    class _Reduce(OpDef):
        name = op_name
        attrs = {"axes": Attr("ints"), "keepdims": Attr("bool", False)}

        def infer(self, attrs: dict[str, Any], x: TensorType) -> TensorType:
            return TensorType(reduced_shape(x.shape, attrs["axes"], attrs["keepdims"]), x.dtype)

        def compute(self, attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
            axes = norm_axes(attrs["axes"], x.ndim)
            return np.asarray(fn(x, axis=axes, keepdims=attrs["keepdims"])).astype(x.dtype, copy=False)

    _Reduce.__name__ = _Reduce.__qualname__ = "".join(p.title() for p in op_name.split("_"))
    register_op(_Reduce)


for _name, _fn in _REDUCE.items():
    _declare_reduce(_name, _fn)
