"""``x[...]`` in a functional model (a GetItem operation) lowers to slice + squeeze.

Unequal dims (T=7, F=5) so a slice on the wrong axis cannot match; each key is
checked in memory and from its ``.keras`` file (read without Keras: GetItem is
Keras's own operation and has a handler), to ONNX and Core ML, against Keras.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError  # noqa: E402
from kcc.testing import seeded  # noqa: E402
from targets_helpers import check_targets, randomize  # noqa: E402

KEYS = {
    "first_token": lambda x: x[:, 0, :],
    "last_token": lambda x: x[:, -1],
    "strided_features": lambda x: x[..., ::2],
    "window": lambda x: x[:, 1:6:2, 1:-1],
    "reversed_time": lambda x: x[:, ::-1],
    "one_feature": lambda x: x[:, :, 3],
}


def _model(key):
    x = keras.Input((7, 5), name="x")
    y = KEYS[key](x)
    # A Dense after a rank-2 result, so the selected values feed a computation.
    return keras.Model(x, keras.layers.Dense(3, name="head")(y) if len(y.shape) == 2 else y, name=key)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_getitem_matches_keras(key, tmp_path):
    model = randomize(_model(key))
    check_targets(model, [seeded((2, 7, 5))], tmp_path)


def test_getitem_on_the_batch_axis_is_refused():
    x = keras.Input((7, 5), name="x")
    model = keras.Model(x, x[0])
    with pytest.raises(ConversionError, match=r"GetItem.*batch axis"):
        kcc.compile(model, target="onnx")


@pytest.mark.parametrize("key", ["first_token", "last_token"])
def test_one_token_of_a_dynamic_length_sequence(key, tmp_path):
    """``x[:, 0]`` / ``x[:, -1]`` of a ``(None, 5)`` sequence keeps one step whatever the length
    (a symbolic dim is at least 1), so the squeeze after the slice is valid; run at two lengths."""
    x = keras.Input((None, 5), name="x")
    model = randomize(keras.Model(x, keras.layers.Dense(3, name="head")(KEYS[key](x)), name=key))
    for length in (4, 9):
        check_targets(model, [seeded((2, length, 5))], tmp_path, coreml=False)
