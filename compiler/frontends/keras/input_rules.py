"""What each Keras layer needs of the tensors it is called on, checked before its handler runs.

A file can call a layer on a tensor it was never meant for (a Conv2D on a
sequence, a normalization whose ``axis`` is the batch axis, a 1-D pooling on a
vector): Keras would refuse it when building the model, so kcc refuses it too,
with the layer, the expected and the actual shape, instead of letting a handler
fail somewhere inside shape arithmetic. One table for every class:

* ``INPUT_RANK``: the ranks (batch included, Keras layout) a layer's inputs may have;
* ``AXIS_FIELDS``: config fields holding axes that must lie in ``1 .. rank-1``
  (``axis=0`` or ``-rank`` would normalize or concatenate over the batch).
"""
from __future__ import annotations

from typing import Any

from kcc.errors import ConversionError
from kcc.ir import Value

_SPATIAL = {
    "Conv{}D": 0, "Conv{}DTranspose": 0, "SeparableConv{}D": 0, "DepthwiseConv{}D": 0,
    "MaxPooling{}D": 0, "AveragePooling{}D": 0, "GlobalMaxPooling{}D": 0, "GlobalAveragePooling{}D": 0,
    "UpSampling{}D": 0, "ZeroPadding{}D": 0, "Cropping{}D": 0, "SpatialDropout{}D": 0,
    "ConvLSTM{}D": 1,
}
INPUT_RANK: dict[str, tuple[int, ...]] = {
    pattern.format(d): (d + 2 + extra,) for pattern, extra in _SPATIAL.items() for d in (1, 2, 3)
}
INPUT_RANK.update({name: (3,) for name in ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")})
INPUT_RANK["Dense"] = tuple(range(2, 9))

AXIS_FIELDS: dict[str, str] = {
    "BatchNormalization": "axis", "LayerNormalization": "axis", "GroupNormalization": "axis",
    "UnitNormalization": "axis", "RMSNormalization": "axis", "Softmax": "axis",
    "Concatenate": "axis",
}


def check_inputs(class_name: str, config: dict[str, Any], inputs: list[Value], where: str) -> None:
    """Raise ConversionError naming ``where`` if ``inputs`` break the class's rule."""
    ranks = INPUT_RANK.get(class_name)
    if ranks is not None:
        for v in inputs:
            if v.rank not in ranks:
                want = " or ".join(str(r) for r in ranks) if len(ranks) < 4 else f"{ranks[0]} or more"
                raise ConversionError(
                    f"{where} ({class_name}) takes rank-{want} inputs (batch included), but is "
                    f"called on a rank-{v.rank} tensor; the file's layer graph does not fit together")
    field = AXIS_FIELDS.get(class_name)
    if field is not None and inputs:
        rank = inputs[0].rank
        value = config.get(field, -1)
        for axis in (value if isinstance(value, (list, tuple)) else [value]):
            if not isinstance(axis, int) or isinstance(axis, bool) or not -rank < axis < rank \
                    or axis % rank == 0:
                raise ConversionError(
                    f"{where} ({class_name}): {field} = {value!r} is not an axis of its rank-{rank} "
                    f"input other than the batch axis (use 1 .. {rank - 1} or -1 .. -{rank - 1})")
