"""Ops that traced Lambda bodies (and ONNX models) need beyond the Keras layers' set.

``one_hot`` (tf.one_hot / ONNX OneHot with a constant depth), ``argmax`` /
``argmin``, comparisons and logical ops (bool results), ``where``, ``is_nan`` /
``is_inf`` (tf.reduce_logsumexp guards with them), ``cumsum``,
``fill_like`` (tf.zeros_like / ones_like on a symbolic batch), and ``nonzero``
(Core ML whereNonZero, ONNX NonZero, tf.where with one argument). Axes are
explicit, in whatever layout the traced body used (a Lambda body runs in Keras
layout between the frontend's layout transposes).
"""
from __future__ import annotations

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import DTYPES, TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import broadcast, norm_axis


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


# ------------------------------------------------------------- comparisons
# name -> numpy function; a, b of one dtype, numpy broadcasting, bool out.
_COMPARE = {"greater": np.greater, "less": np.less, "equal": np.equal, "greater_equal": np.greater_equal,
            "less_equal": np.less_equal}
# name -> numpy function on bool operands.
_LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}


def _declare_compare(op_name: str, fn, bool_only: bool) -> None:
    class _Compare(OpDef):
        name = op_name
        inputs = ("a", "b")
        commutative = op_name in ("equal", "logical_and", "logical_or", "logical_xor")

        def infer(self, attrs, a, b):
            if a.dtype != b.dtype or (bool_only and a.dtype != "bool"):
                raise IRError(f"{op_name} of {a.dtype} and {b.dtype}")
            return TensorType(broadcast(a.shape, b.shape), "bool")

        def compute(self, attrs, a, b):
            return np.asarray(fn(a, b), dtype=np.bool_)

    _Compare.__name__ = _Compare.__qualname__ = "".join(p.title() for p in op_name.split("_"))
    register_op(_Compare)


for _name, _fn in _COMPARE.items():
    _declare_compare(_name, _fn, False)
for _name, _fn in _LOGICAL.items():
    _declare_compare(_name, _fn, True)

# name -> (input dtype rule, numpy function); bool out.
_PREDICATES = {"logical_not": np.logical_not, "is_nan": np.isnan, "is_inf": np.isinf}


def _declare_predicate(op_name: str, fn) -> None:
    class _Predicate(OpDef):
        name = op_name

        def infer(self, attrs, x):
            if (op_name == "logical_not") != (x.dtype == "bool"):
                raise IRError(f"{op_name} of {x.dtype}")
            return TensorType(x.shape, "bool")

        def compute(self, attrs, x):
            return np.asarray(fn(x), dtype=np.bool_)

    _Predicate.__name__ = _Predicate.__qualname__ = "".join(p.title() for p in op_name.split("_"))
    register_op(_Predicate)


for _name, _fn in _PREDICATES.items():
    _declare_predicate(_name, _fn)


@register_op
class Where(OpDef):
    """cond ? a : b with numpy broadcasting of all three (tf.where, keras.ops.where)."""

    name = "where"
    inputs = ("cond", "a", "b")

    def infer(self, attrs, cond, a, b):
        if cond.dtype != "bool" or a.dtype != b.dtype:
            raise IRError(f"where needs a bool condition and equal branch dtypes, got {cond.dtype}, {a.dtype}, {b.dtype}")
        return TensorType(broadcast(cond.shape, a.shape, b.shape), a.dtype)

    def compute(self, attrs, cond, a, b):
        return np.where(cond, a, b).astype(a.dtype, copy=False)


@register_op
class CumSum(OpDef):
    """Running sum along ``axis``; ``exclusive`` leaves out the current element, ``reverse`` runs backwards."""

    name = "cumsum"
    attrs = {"axis": Attr("int"), "exclusive": Attr("bool", False), "reverse": Attr("bool", False)}

    def infer(self, attrs, x):
        norm_axis(attrs["axis"], x.rank)
        return x

    def compute(self, attrs, x):
        a = attrs["axis"]
        y = np.flip(x, a) if attrs["reverse"] else x
        s = np.cumsum(y, axis=a)
        if attrs["exclusive"]:
            s = s - y
        return (np.flip(s, a) if attrs["reverse"] else s).astype(x.dtype, copy=False)


@register_op
class NonZero(OpDef):
    """The index of every non-zero entry of ``x``, one row each in row-major order: a
    ``(count, rank)`` int64 table (numpy's ``argwhere``; Core ML's whereNonZero; ONNX's
    NonZero transposed). The count is known only from the values, so it is the unknown
    dim ``"?"``: ops after it see a symbolic shape, as after a dynamic input."""

    name = "nonzero"

    @staticmethod
    def data_dependent_rows(types):
        return max(1, int(np.prod(types[0].shape)))

    def infer(self, attrs, x):
        return TensorType(("?", x.rank), "i64")

    def compute(self, attrs, x):
        return np.argwhere(x != 0).astype(np.int64)


@register_op
class FillLike(OpDef):
    """A tensor of ``x``'s shape filled with ``value`` (tf.zeros_like/ones_like/fill on a dynamic shape)."""

    name = "fill_like"
    attrs = {"value": Attr("float", 0.0), "dtype": Attr("str", "f32", tuple(DTYPES))}

    def infer(self, attrs, x):
        return TensorType(x.shape, attrs["dtype"])

    def compute(self, attrs, x):
        return np.full(x.shape, attrs["value"], dtype=DTYPES[attrs["dtype"]])
