"""Keras layer handlers, one module per family. Importing this package registers them."""
from kcc.frontends.keras.layers import conv, core, lambda_layer, pooling, recurrent, regularization, time_distributed  # noqa: F401
