"""Keras layer handlers, one module per family. Importing this package registers them."""
from kcc.frontends.keras.layers import conv, core, pooling, regularization  # noqa: F401
