"""Structured fuzzing of layer configs with hypothesis: validation accepts or names the field.

Hypothesis draws values for the fields a layer's rule reads (ints of every size and
sign, floats, bools, strings, lists, None) over correctly shaped weights. Property:
``validate_layer`` either accepts the layer, or raises a ModelFileError that names
the layer and a field; never another exception. When it accepts, the fields the
lowering relies on really are what the rule promised (positive ints and so on).
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcc.errors import ModelFileError
from kcc.frontends.keras.spec import KerasLayer
from kcc.frontends.keras.validate import validate_layer

ANY = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70), st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(["same", "valid", "causal", "relu", "channels_last", "x", ""]),
    st.lists(st.integers(min_value=-2, max_value=5), max_size=4),
    st.dictionaries(st.sampled_from(["class_name", "config"]), st.just({}), max_size=2),
)
FIELDS = {
    "Conv2D": ["filters", "kernel_size", "strides", "padding", "groups", "dilation_rate", "activation",
               "data_format"],
    "Dense": ["units", "activation"],
    "MaxPooling2D": ["pool_size", "strides", "padding"],
    "LSTM": ["units", "activation", "recurrent_activation", "dropout"],
    "BatchNormalization": ["axis", "epsilon", "momentum"],
}
BASE = {
    "Conv2D": ({"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "groups": 1},
               {"kernel": (3, 3, 2, 4), "bias": (4,)}),
    "Dense": ({"units": 3}, {"kernel": (5, 3), "bias": (3,)}),
    "MaxPooling2D": ({"pool_size": [2, 2]}, {}),
    "LSTM": ({"units": 2}, {"kernel": (3, 8), "recurrent_kernel": (2, 8), "bias": (8,)}),
    "BatchNormalization": ({"axis": -1}, {n: (4,) for n in ("gamma", "beta", "moving_mean",
                                                           "moving_variance")}),
}


@st.composite
def layers(draw):
    cls = draw(st.sampled_from(sorted(BASE)))
    config, shapes = BASE[cls]
    config = dict(config)
    for field in draw(st.lists(st.sampled_from(FIELDS[cls]), min_size=1, max_size=3, unique=True)):
        config[field] = draw(ANY)
    weights = {n: np.zeros(s, np.float32) for n, s in shapes.items()}
    return KerasLayer(name="lay", class_name=cls, config=config, weights=weights)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(layers())
def test_validation_accepts_or_names_the_field(layer):
    try:
        validate_layer(layer, "f.keras")
    except ModelFileError as e:
        text = str(e)
        assert text.startswith("f.keras: layer 'lay'"), text
        assert any(field in text for field in FIELDS[layer.class_name] + ["stored"]), text
        return
    c = layer.config
    for field in ("filters", "units", "groups"):
        if field in c:
            assert isinstance(c[field], int) and not isinstance(c[field], bool) and c[field] >= 1
    for field in ("kernel_size", "strides", "pool_size", "dilation_rate"):
        value = c.get(field)
        if value is not None:
            items = value if isinstance(value, list) else [value]
            assert all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items)
