"""The static type of an IR value: a shape of dims and a dtype name.

Shapes are tuples of dims; a dim is an ``int`` or a ``str`` symbol (``"N"`` for
the batch dim, ``"?"`` for a dim derived from symbols). Kept below both the
graph (kcc.ir) and the op declarations (kcc.ops), which type their values with
it, so that the graph can use the op registry without an import cycle.
kcc.ir re-exports everything here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kcc.errors import IRError

Dim = int | str
Shape = tuple[Dim, ...]

# IR dtype names and their numpy equivalents.
DTYPES: dict[str, np.dtype] = {
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "u8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}
_NP_TO_IR = {v: k for k, v in DTYPES.items()}


def dtype_of(array: np.ndarray) -> str:
    try:
        return _NP_TO_IR[np.dtype(array.dtype)]
    except KeyError:
        raise IRError(f"numpy dtype {array.dtype} has no IR equivalent") from None


def is_static(shape: Shape) -> bool:
    return all(isinstance(d, int) for d in shape)


@dataclass(frozen=True)
class TensorType:
    """The static type of a value: a shape (ints and symbols) and a dtype name."""

    shape: Shape
    dtype: str = "f32"
    # The symbolic contents of a small integer tensor of rank <= 1 (a shape, an index),
    # flattened: ints and dim symbols ("?" = unknown). Set by the op registry's value
    # rules (kcc.ops.shape_values) and on constants; None when nothing is known. Not part
    # of equality: it is what the graph knows about a value, not its type.
    value: tuple[Dim, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise IRError(f"unknown dtype {self.dtype!r}")
        for d in self.shape:
            if not (isinstance(d, str) or (isinstance(d, (int, np.integer)) and d >= 0)):
                raise IRError(f"bad dim {d!r} in shape {self.shape}")
        object.__setattr__(self, "shape", tuple(d if isinstance(d, str) else int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"
