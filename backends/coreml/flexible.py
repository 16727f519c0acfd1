"""Flexible input shapes: the dynamic axes of the model's inputs, as the NeuralNetwork spec declares them.

A Keras ``Input((None, 16))`` is the IR input ``f32[N,16,x_d1]`` (channels-first):
the batch ``N`` and the sequence length ``x_d1`` are symbols. Core ML declares a
multiarray input with a default ``shape`` plus a ``ShapeFlexibility``
(FeatureTypes.proto, specification 3 and up):

* ``shapeRange``: one ``SizeRange`` per declared axis (``lowerBound``, and
  ``upperBound`` -1 for unbounded). In the rank-5 layout declared shapes are
  ``(C,)`` or ``(C, H, W)`` and the range has 1 or 3 entries, as the validator
  wants; in the ND layout it has the rank of the default shape.
* ``enumeratedShapes``: a list of whole shapes, for axes whose valid sizes are
  not an interval (a reshape that needs an even length).
* images: ``imageSizeRange`` (width and height ranges) or ``enumeratedSizes``.

How the sizes are found (:func:`plan_shapes`, :func:`plan_batch`): the graph's
shape functions run at concrete sizes (concrete.py). The batch and the other
symbols are probed separately (the batch only in the ND layout: the rank-5
layout's batch axis is implicit and never declared); the non-batch symbols
move together, because two inputs of one sequence (tokens and their mask)
carry two symbols that must be equal. A size is valid when every node's shape
function accepts it and no dim drops below 1. The valid sizes among 1-16 and a
few larger probes (24 ... 1000, with an odd 61) give the lower bound; when every
probe from there up is valid the axis is a range without an upper bound,
otherwise the valid probes are enumerated. An axis valid at one size only is
that size. The default size (what the layers are written for and the declared
``shape`` holds) is 1 for the batch and the smallest valid size of at least 2
for the others (size 1 is where broadcasting and squeezing take special cases).

Which axes stay flexible (``_flexible_network`` in ``__init__.py``): a layer may
carry a size (a legacy rank-5 ``reshape``'s target shape, a deconvolution's
``outputShape``). Emitters write ``-1`` or read shapes at run
time where they can (``CoremlContext.dynamic``); to prove the rest, the backend
writes the network a second time with the flexible sizes moved (``ShapePlan.moved``)
and compares (:func:`first_difference`). A batch the layers depend on stays 1,
as kcc has always declared it; any other such axis is an error naming the layer,
with the fix (``input_name_shape_dict`` fixes the axis to a size).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from kcc.backends.coreml.concrete import ConcreteShapes
from kcc.errors import ConversionError, IRError
from kcc.ir import Graph, Value

BATCH = "N"
# Sizes tried for every dynamic axis: an interval, then a few large sizes to see it has no upper bound.
PROBES: tuple[int, ...] = tuple(range(1, 17)) + (24, 32, 61, 128, 1000)
# The batch rarely limits anything: fewer probes.
BATCH_PROBES: tuple[int, ...] = (1, 2, 3, 5, 16, 61)
# At most this many shapes are enumerated per input (the default shape first).
MAX_ENUMERATED = 64


@dataclass(frozen=True)
class AxisSizes:
    """The sizes a dynamic axis accepts: ``lower..upper`` (upper -1: unbounded), or ``enumerated``."""

    symbol: str
    default: int
    lower: int
    upper: int = -1
    enumerated: tuple[int, ...] | None = None

    def describe(self) -> str:
        if self.enumerated is not None:
            return "{" + ", ".join(str(s) for s in self.enumerated) + "}"
        return f"{self.lower}..{'*' if self.upper < 0 else self.upper}"

    def sizes(self) -> tuple[int, ...]:
        """Concrete sizes to enumerate (a range's probed sizes when an input mixes both kinds)."""
        if self.enumerated is not None:
            return self.enumerated
        return tuple(s for s in PROBES if s >= self.lower and (self.upper < 0 or s <= self.upper))


@dataclass
class ShapePlan:
    """The sizes the layers are written for and the axes declared flexible."""

    sizes: dict[str, int] = field(default_factory=dict)
    flexible: dict[str, AxisSizes] = field(default_factory=dict)

    def moved(self, symbols: Iterable[str]) -> dict[str, int]:
        """``sizes`` with ``symbols`` at another valid size (a second writing of the network)."""
        out = dict(self.sizes)
        for s in symbols:
            axis = self.flexible[s]
            others = [k for k in axis.sizes() if k != axis.default]    # flexible axes have two sizes or more
            far = [k for k in others if k >= axis.default + 3]
            out[s] = (far or others)[0]
        return out

    def fix(self, symbol: str) -> None:
        self.flexible.pop(symbol, None)


def input_symbols(graph: Graph) -> list[str]:
    """The symbols of the inputs' dims, in order of first appearance."""
    out: list[str] = []
    for v in graph.inputs:
        for d in v.shape:
            if isinstance(d, str) and d not in out:
                out.append(d)
    return out


def _fits(graph: Graph, sizes: dict[str, int]) -> bool:
    """Whether every node's shape function accepts ``sizes`` (a probe: any refusal means no)."""
    try:
        ConcreteShapes(graph, sizes).check_all()
    except (IRError, ConversionError, ArithmeticError, ValueError, IndexError):
        return False
    return True


def _axis(symbol: str, valid: Sequence[int], default: int, probes: Sequence[int] = PROBES) -> AxisSizes:
    lower = min(valid)
    if all(k in valid for k in probes if k >= lower):
        return AxisSizes(symbol, default, lower)
    return AxisSizes(symbol, default, lower, enumerated=tuple(valid))


def plan_shapes(graph: Graph) -> ShapePlan:
    """Probe the sizes the non-batch input symbols accept (module docstring); the batch is 1.

    A ConversionError when no probed size fits.
    """
    symbols = input_symbols(graph)
    others = [s for s in symbols if s != BATCH]
    batch = {BATCH: 1} if BATCH in symbols else {}
    if not others:
        return ShapePlan(sizes=batch)

    def at(k: int) -> dict[str, int]:
        return {**batch, **{s: k for s in others}}

    valid = [k for k in PROBES if _fits(graph, at(k))]
    if not valid:
        raise ConversionError(
            f"Core ML: no size in {PROBES[0]}..{PROBES[-1]} fits the dynamic input axes {others} (every size "
            f"makes some layer's shape invalid); give the inputs fixed shapes with input_name_shape_dict")
    default = next((k for k in valid if k >= 2), valid[0])
    plan = ShapePlan(sizes=at(default))
    if len(valid) > 1:      # an axis that fits one size only is that size
        for s in others:
            plan.flexible[s] = _axis(s, valid, default)
    return plan


def plan_batch(graph: Graph, plan: ShapePlan) -> None:
    """Add the batch to ``plan.flexible`` (ND layout: the batch is the first declared axis)."""
    if BATCH not in input_symbols(graph):
        return
    valid = [k for k in BATCH_PROBES if _fits(graph, {**plan.sizes, BATCH: k})]
    if valid[:1] == [1] and len(valid) > 1:
        plan.flexible[BATCH] = _axis(BATCH, valid, 1, BATCH_PROBES)


# ------------------------------------------------------------------ baked sizes
def _layer_bytes(network: Any) -> list[tuple[str, str, bytes]]:
    return [(lyr.name, lyr.WhichOneof("layer"), lyr.SerializeToString(deterministic=True))
            for lyr in network.layers]


def first_difference(a: Any, b: Any) -> tuple[str, str] | None:
    """(name, type) of the first layer where two writings of a network differ; None when equal."""
    la, lb = _layer_bytes(a), _layer_bytes(b)
    for x, y in zip(la, lb):
        if x != y:
            return x[0], x[1]
    if len(la) != len(lb):
        extra = (la if len(la) > len(lb) else lb)[min(len(la), len(lb))]
        return extra[0], extra[1]
    return None


# ------------------------------------------------------------------ declarations
def declared_axes(nd: bool, v: Value) -> list[int | None]:
    """The IR axis behind each axis of the declared shape (None: a unit axis the CHW form inserts)."""
    if nd:
        return list(range(v.rank))
    return {2: [1], 3: [1, None, 2], 4: [1, 2, 3]}[v.rank]


def _symbols_of(v: Value, axes: list[int | None], plan: dict[str, AxisSizes]) -> list[str | None]:
    out: list[str | None] = []
    for a in axes:
        d = v.shape[a] if a is not None else 1
        out.append(d if isinstance(d, str) and d in plan else None)
    return out


def flexibility(nd: bool, v: Value, plan: dict[str, AxisSizes]) -> str | None:
    """A description of ``v``'s flexible axes (``"axis 2: 1..*"``), None when its shape is fixed."""
    syms = _symbols_of(v, declared_axes(nd, v), plan)
    parts = [f"axis {i}: {plan[s].describe()}" for i, s in enumerate(syms) if s is not None]
    return f"input {v.name} ({', '.join(parts)})" if parts else None


def declare_array(array_type: Any, nd: bool, v: Value, default: Sequence[int], plan: dict[str, AxisSizes]) -> None:
    """Fill ``array_type``'s ShapeFlexibility for the flexible axes of ``v`` (its ``shape`` is ``default``)."""
    syms = _symbols_of(v, declared_axes(nd, v), plan)
    if all(s is None for s in syms):
        return
    if all(plan[s].enumerated is None for s in syms if s is not None):
        ranges = array_type.shapeRange
        for d, s in zip(default, syms):
            r = ranges.sizeRanges.add()
            r.lowerBound, r.upperBound = (int(d), int(d)) if s is None else (plan[s].lower, plan[s].upper)
        return
    for shape in enumerate_shapes(default, syms, plan):
        array_type.enumeratedShapes.shapes.add().shape.extend(shape)


def enumerate_shapes(default: Sequence[int], syms: Sequence[str | None],
                     plan: dict[str, AxisSizes]) -> list[tuple[int, ...]]:
    """Every combination of the axes' sizes (a symbol on two axes takes one size), default first, capped."""
    names = sorted({s for s in syms if s is not None})
    shapes = [tuple(int(d) for d in default)]
    for combo in itertools.product(*(plan[s].sizes() for s in names)):
        size = dict(zip(names, combo))
        shape = tuple(int(d) if s is None else size[s] for d, s in zip(default, syms))
        if shape not in shapes:
            shapes.append(shape)
        if len(shapes) >= MAX_ENUMERATED:
            break
    return shapes


def declare_image(image_type: Any, v: Value, plan: dict[str, AxisSizes]) -> None:
    """imageSizeRange (or enumeratedSizes) for an image input ``(N, C, H, W)`` with flexible H or W."""
    h_sym, w_sym = (d if isinstance(d, str) and d in plan else None for d in v.shape[2:])
    if h_sym is None and w_sym is None:
        return
    height, width = int(image_type.height), int(image_type.width)
    if all(plan[s].enumerated is None for s in (h_sym, w_sym) if s is not None):
        rng = image_type.imageSizeRange
        for sym, fixed, r in ((h_sym, height, rng.heightRange), (w_sym, width, rng.widthRange)):
            r.lowerBound, r.upperBound = (fixed, fixed) if sym is None else (plan[sym].lower, plan[sym].upper)
        return
    for h, w in enumerate_shapes((height, width), (h_sym, w_sym), plan):
        size = image_type.enumeratedSizes.sizes.add()
        size.height, size.width = h, w


__all__ = ["AxisSizes", "ShapePlan", "plan_shapes", "input_symbols", "first_difference", "declare_array",
           "declare_image", "flexibility", "declared_axes", "enumerate_shapes", "plan_batch", "BATCH", "PROBES"]
