"""kcc: a graph-IR rewriting compiler from Keras (and ONNX, Core ML) to Core ML and ONNX.

    import kcc
    onnx_model = kcc.compile(keras_model, target="onnx")
    mlmodel = kcc.compile("model.keras", target="coreml", class_labels=[...])

Importing kcc does not import TensorFlow or Keras; they are loaded only when a
model needs them (an in-memory keras.Model, Lambda or custom layers).
"""
from __future__ import annotations

from kcc.version import __version__

from kcc.api import COMMON_OPTIONS, CompileResult, compile, compile_model, compile_to_file, save  # noqa: E402
# The Core ML runtime (kcc.coreml, a core module) runs ML Programs through this frontend's runner,
# registered on import (see kcc.frontends.coreml.mlprogram_run).
from kcc.frontends.coreml import mlprogram_run as _mlprogram_run  # noqa: E402,F401
from kcc.errors import (  # noqa: E402
    ConversionError,
    IRError,
    KccError,
    ModelFileError,
    OptionError,
    RuntimeModelError,
    ShapeError,
    UnsafeModelError,
    UnsupportedLayerError,
    UnsupportedOpError,
)

__all__ = [
    "compile", "compile_model", "compile_to_file", "save", "CompileResult", "COMMON_OPTIONS", "__version__",
    "KccError", "ConversionError", "IRError", "ModelFileError", "OptionError", "RuntimeModelError",
    "ShapeError", "UnsafeModelError", "UnsupportedLayerError", "UnsupportedOpError",
]
