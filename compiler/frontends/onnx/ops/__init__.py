"""ONNX op handlers, one module per family. Importing this package registers them."""
from kcc.frontends.onnx.ops import (  # noqa: F401
    onnx_attention, onnx_loop, onnx_math, onnx_nn, onnx_recurrent, onnx_sequence, onnx_shape, onnx_spatial,
    onnx_table, onnx_tensor)
