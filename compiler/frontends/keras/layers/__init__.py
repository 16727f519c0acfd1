"""Keras layer handlers, one module per family. Importing this package registers them."""
from kcc.frontends.keras.layers import conv, conv_lstm, core, lambda_layer, pooling, recurrent, regularization, time_distributed  # noqa: F401
from kcc.frontends.keras.layers import (  # noqa: F401
    activation_layers, applications, merging, normalization, preprocessing, reshaping,
)
