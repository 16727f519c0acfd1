"""The IR's layout rule and the permutations between it and Keras's layout.

The IR is channels-first: a rank >= 3 tensor that Keras holds as
``(N, *spatial, C)`` is ``(N, C, *spatial)`` in the IR; ranks 1 and 2 are the
same in both. Every module that converts between the two (the Keras frontend,
passes that recognise the Keras round trip, backends that fold it away)
imports these functions instead of spelling the permutation again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kcc.ir import Value


def to_ir_perm(rank: int) -> tuple[int, ...]:
    """``transpose(keras_tensor, perm)`` gives the IR layout: ``(0, rank-1, 1, ..., rank-2)``."""
    return tuple(range(rank)) if rank < 3 else (0, rank - 1) + tuple(range(1, rank - 1))


def to_keras_perm(rank: int) -> tuple[int, ...]:
    """``transpose(ir_tensor, perm)`` gives the Keras layout: ``(0, 2, ..., rank-1, 1)``."""
    return tuple(range(rank)) if rank < 3 else (0,) + tuple(range(2, rank)) + (1,)


def ir_axis(keras_axis: int, rank: int) -> int:
    """Where Keras axis ``keras_axis`` (negative counts from the end) of a rank-``rank`` tensor is in the IR."""
    k = keras_axis % rank
    if rank < 3 or k == 0:
        return k
    return 1 if k == rank - 1 else k + 1


def keras_shape(v: Value) -> tuple:
    """The Keras-layout shape of an IR value (its shape permuted by ``to_keras_perm``)."""
    return tuple(v.shape[p] for p in to_keras_perm(v.rank))
