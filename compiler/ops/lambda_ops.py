"""Ops that traced Lambda bodies (and ONNX models) need beyond the Keras layers' set.

``one_hot`` (tf.one_hot / ONNX OneHot with a constant depth) and ``argmax`` /
``argmin`` (tf.argmax, often feeding one_hot). Both index along an explicit
axis in whatever layout the traced body used (a Lambda body runs in Keras
layout between the frontend's layout transposes).
"""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.ir import DTYPES, TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import norm_axis


@register_op
class OneHot(OpDef):
    """y[..., i, ...] = on if indices[...] == i else off, a new axis of size ``depth`` at ``axis``.

    Negative indices count from the end (ONNX's rule); out-of-range ones give an all-off row.
    """

    name = "one_hot"
    inputs = ("indices",)
    attrs = {"depth": Attr("int"), "axis": Attr("int", -1), "on_value": Attr("float", 1.0),
             "off_value": Attr("float", 0.0), "dtype": Attr("str", "f32", tuple(DTYPES))}

    def infer(self, attrs, idx):
        if idx.dtype not in ("i32", "i64", "i8", "u8"):
            raise IRError(f"one_hot indices must be integers, got {idx.dtype}")
        if attrs["depth"] < 1:
            raise IRError(f"one_hot depth {attrs['depth']} must be positive")
        r = idx.rank + 1
        a = norm_axis(attrs["axis"], r)
        shape = idx.shape[:a] + (attrs["depth"],) + idx.shape[a:]
        return TensorType(shape, attrs["dtype"])

    def compute(self, attrs, idx):
        depth = attrs["depth"]
        a = norm_axis(attrs["axis"], idx.ndim + 1)
        i = idx.astype(np.int64)
        i = np.where(i < 0, i + depth, i)
        hot = np.expand_dims(i, a) == np.arange(depth).reshape((-1,) + (1,) * (idx.ndim - a))
        return np.where(hot, attrs["on_value"], attrs["off_value"]).astype(DTYPES[attrs["dtype"]])


def _declare_arg(op_name: str, fn) -> None:
    class _Arg(OpDef):
        """Index of the first extreme value along ``axis`` (i64)."""

        name = op_name
        attrs = {"axis": Attr("int", 0), "keepdims": Attr("bool", False)}

        def infer(self, attrs, x):
            a = norm_axis(attrs["axis"], x.rank)
            shape = tuple(1 if i == a else d for i, d in enumerate(x.shape)) if attrs["keepdims"] \
                else x.shape[:a] + x.shape[a + 1:]
            return TensorType(shape, "i64")

        def compute(self, attrs, x):
            return fn(x, axis=attrs["axis"], keepdims=attrs["keepdims"]).astype(np.int64)

    _Arg.__name__ = _Arg.__qualname__ = op_name.title().replace("_", "")
    register_op(_Arg)


_declare_arg("argmax", np.argmax)
_declare_arg("argmin", np.argmin)
