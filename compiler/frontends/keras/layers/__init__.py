"""Keras layer handlers, one module per family. Importing this package registers them."""
from kcc.frontends.keras.layers import conv, conv_lstm, core, lambda_layer, pooling, recurrent, regularization, time_distributed  # noqa: F401
from kcc.frontends.keras.layers import (  # noqa: F401
    activation_layers, applications, merging, normalization, preprocessing, reshaping,
)
from kcc.frontends.keras.layers import einsum_dense  # noqa: F401
from kcc.frontends.keras.layers import keras_ops  # noqa: F401
from kcc.frontends.keras.layers import attention  # noqa: F401
from kcc.frontends.keras.layers import mask_ops  # noqa: F401
from kcc.frontends.keras.layers import numpy_ops  # noqa: F401
