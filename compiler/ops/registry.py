"""The op registry: every IR op is declared exactly once, here or in a sibling module.

A declaration is a class with:

* ``name``: the op's IR name (what the printer shows, what emitter tables key on);
* ``inputs``: input slot names; ``"b?"`` is optional (may be ``None``), ``"xs*"``
  (last only) takes any number of values;
* ``attrs``: attribute name -> ``Attr(kind, default)``; kinds are checked and
  values normalized (lists become tuples, numpy scalars become Python ones);
* ``infer(attrs, *input_types)``: the shape/dtype function, returning a
  ``TensorType`` or a list of them;
* ``compute(attrs, *arrays)``: the numpy reference implementation, returning an
  array or a tuple of arrays. The interpreter is nothing but these.

``@register_op`` instantiates the class and refuses a duplicate name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from kcc.errors import IRError
from kcc.ops.shape_values import with_value
from kcc.tensor_type import TensorType
from kcc.table import Table

_REQUIRED = object()

# Attribute kind -> check that returns the normalized value or raises TypeError("a <kind>").
ATTR_KINDS: Table[Callable[[Any], Any]] = Table("attribute kind")
_kind = ATTR_KINDS.register


@_kind("int")
def _as_int(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError("an int")
    return int(v)


@_kind("float")
def _as_float(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError("a float")
    return float(v)


@_kind("bool")
def _as_bool(v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError("a bool")
    return bool(v)


@_kind("str")
def _as_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("a str")
    return v


@_kind("ints")
def _as_ints(v: Any) -> tuple[int, ...]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, np.ndarray)):
        raise TypeError("a sequence of ints")
    return tuple(_as_int(x) for x in v)


@_kind("floats")
def _as_floats(v: Any) -> tuple[float, ...]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, np.ndarray)):
        raise TypeError("a sequence of floats")
    return tuple(_as_float(x) for x in v)


@_kind("strs")
def _as_strs(v: Any) -> tuple[str, ...]:
    if isinstance(v, str) or not isinstance(v, (list, tuple)):
        raise TypeError("a sequence of str")
    return tuple(_as_str(x) for x in v)


@_kind("any")
def _as_any(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class Attr:
    kind: str
    default: Any = _REQUIRED
    # For "str" attributes: the allowed values (None = any string).
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


class OpDef:
    """Base class of op declarations (see the module docstring)."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    attrs: ClassVar[dict[str, Attr]] = {}
    commutative: ClassVar[bool] = False
    # For an op whose output has a dim known only from the input's values (the "?" of
    # ``nonzero``): the most rows it can give, from its concrete input types. Backends that
    # need a size for every value (Core ML's default shapes) use it as a stand-in.
    data_dependent_rows: ClassVar[Callable[[list[Any]], int] | None] = None

    # ------------------------------------------------------------- inputs
    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].endswith("*")

    def check_arity(self, n: int, where: str) -> None:
        fixed = [s for s in self.inputs if not s.endswith("*")]
        required = [s for s in fixed if not s.endswith("?")]
        if n < len(required) or (not self.variadic and n > len(fixed)):
            raise IRError(f"{where}: {self.name} takes inputs {self.inputs}, got {n}")

    # -------------------------------------------------------------- attrs
    def normalize_attrs(self, attrs: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in attrs:
            if key not in self.attrs:
                raise IRError(f"{where}: {self.name} has no attribute {key!r} (it has {sorted(self.attrs)})")
        for key, spec in self.attrs.items():
            if key in attrs and attrs[key] is not None:
                try:
                    val = ATTR_KINDS[spec.kind](attrs[key])
                except TypeError as e:
                    raise IRError(f"{where}: {self.name}.{key} must be {e}, got {attrs[key]!r}") from None
                if spec.choices is not None and val not in spec.choices:
                    raise IRError(f"{where}: {self.name}.{key} must be one of {spec.choices}, got {val!r}")
                out[key] = val
            elif spec.required:
                raise IRError(f"{where}: {self.name} needs attribute {key!r}")
            else:
                out[key] = spec.default
        return self.canonicalize(out)

    def canonicalize(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Rewrite attributes into one canonical spelling (e.g. all-1 strides -> ()).

        Equal meanings then have equal attributes, which keeps patterns and the
        printed IR simple. The default keeps attributes as they are.
        """
        return attrs

    # ------------------------------------------------------------- typing
    def infer_types(self, attrs: dict[str, Any], types: Sequence[TensorType | None], where: str) -> list[TensorType]:
        self.check_arity(len(types), where)
        try:
            result = self.infer(attrs, *types)
        except IRError as e:
            raise IRError(f"{where} ({self.name}): {e}") from None
        if not isinstance(result, (list, tuple)):
            # A single output may carry a symbolic value (kcc.ops.shape_values).
            return [with_value(attrs, self.name, types, result)]
        return list(result)

    def infer(self, attrs: dict[str, Any], *types: TensorType | None) -> TensorType | list[TensorType]:
        raise NotImplementedError(f"op {self.name} declares no shape function")

    def compute(self, attrs: dict[str, Any], *arrays: np.ndarray | None) -> np.ndarray | tuple[np.ndarray, ...]:
        raise NotImplementedError(f"op {self.name} declares no reference implementation")

    def run(self, attrs: dict[str, Any], arrays: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        result = self.compute(attrs, *arrays)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def _load_all() -> None:
    # Importing the package imports every op module, which registers its ops.
    import kcc.ops  # noqa: F401


# IR op name -> its declaration (an OpDef instance).
OPS: Table[OpDef] = Table("IR op", _load_all)


def register_op(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: declare an op. A second op of the same name is refused."""
    name = getattr(cls, "name", None)
    if not name:
        raise IRError(f"{cls.__name__} declares no op name")
    earlier = OPS.registered(name)
    if earlier is not None:
        raise IRError(f"op {name!r} is declared twice ({type(earlier).__name__} and {cls.__name__})")
    for key, spec in cls.attrs.items():
        if spec.kind not in ATTR_KINDS:
            raise IRError(f"op {name}: attribute {key} has unknown kind {spec.kind!r}")
    OPS.register(name)(cls())
    return cls


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise IRError(f"no IR op named {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    return dict(OPS.items())
