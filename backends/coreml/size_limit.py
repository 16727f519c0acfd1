"""The 2 GB ceiling of a NeuralNetwork ``.mlmodel``: refuse a model past it before emitting a layer.

A ``.mlmodel`` is one protobuf, and a serialized protobuf cannot exceed 2 GiB, so
the NeuralNetwork format has no room for larger weights (ML Program's
``.mlpackage`` keeps them in a separate weight file; kcc does not write ML
Program). The weight bytes are known from the IR's constants before anything is
emitted: float32 weights take 2 bytes each under ``model_precision='float16'``.
"""
from __future__ import annotations

from kcc.errors import ConversionError
from kcc.ir import Graph

# A serialized protobuf holds at most 2 GiB - 1 bytes; 64 MiB are left for the layers
# themselves. A module constant, so tests can lower it.
NEURALNETWORK_WEIGHT_LIMIT = 2**31 - 1 - 2**26


def weight_bytes(graph: Graph, *, float16: bool) -> int:
    """Bytes the graph's constants take in the spec (float weights halved under float16)."""
    total = 0
    for v in graph.constants():
        array = v.const
        total += array.size * 2 if float16 and array.dtype.kind == "f" else array.nbytes
    return total


def check_neuralnetwork_size(graph: Graph, *, float16: bool) -> None:
    """A ConversionError when the weights cannot fit in one ``.mlmodel``."""
    size = weight_bytes(graph, float16=float16)
    if size <= NEURALNETWORK_WEIGHT_LIMIT:
        return
    hint = ("" if float16 or size // 2 > NEURALNETWORK_WEIGHT_LIMIT else
            " model_precision='float16' halves the weights and would fit;")
    raise ConversionError(
        f"Core ML: the model's weights take {size / 2**30:.2f} GiB, past the 2 GB a NeuralNetwork .mlmodel "
        f"(one protobuf) can hold. ML Program (.mlpackage, weights in a separate file) is the Core ML "
        f"format for that size, and kcc does not write it yet;{hint} or convert to ONNX "
        f"(--emit onnx), which writes the weights to a .data file beside the model.")


__all__ = ["check_neuralnetwork_size", "weight_bytes", "NEURALNETWORK_WEIGHT_LIMIT"]
