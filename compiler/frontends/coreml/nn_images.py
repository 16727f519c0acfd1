"""Image inputs of NeuralNetwork models, with their preprocessing lowered to IR ops.

Core ML turns an image into a ``[C, H, W]`` tensor of 0-255 values in the
model's color space, then applies the ``NeuralNetworkPreprocessing`` entries of
that input: the scaler (``channelScale * x + bias`` per channel) or the mean
image (``x - mean``). In the IR the input is the image itself, channels-first:

* RGB and BGR models: ``(N, 3, H, W)`` **RGB** pixels (the order images are
  stored in); a BGR model's channel swap is an IR op (a reversing slice);
* grayscale models: ``(N, 1, H, W)`` gray levels.

then the preprocessing as ``mul``/``add``/``sub`` nodes, so an ONNX model made
from a Core ML image model takes the same pixels Core ML does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import UnsupportedOpError
from kcc.ir import Graph, TensorType, Value

_BIASES = {"RGB": ("redBias", "greenBias", "blueBias"), "BGR": ("blueBias", "greenBias", "redBias"),
           "GRAYSCALE": ("grayBias",), "GRAYSCALE_FLOAT16": ("grayBias",)}


def image_input(graph: Graph, name: str, image_type: Any, preprocessing: list[Any],
                where: str) -> tuple[Value, dict[str, Any]]:
    """(the network's input blob as an IR value, a description of the image input for graph.meta)."""
    space = type(image_type).ColorSpace.Name(image_type.colorSpace)
    if space not in _BIASES:
        raise UnsupportedOpError(f"{where}: image input {name!r} has color space {space}; kcc reads RGB, BGR and "
                                 f"GRAYSCALE images")
    channels = 1 if space.startswith("GRAYSCALE") else 3
    h, w = int(image_type.height), int(image_type.width)
    x = graph.add_input(name, TensorType(("N", channels, h, w), "f32"))
    y = x
    if space == "BGR":
        y = graph.add_node("slice", [y], {"starts": (-1,), "ends": (np.iinfo(np.int64).min,), "axes": (1,),
                                          "steps": (-1,)}, name=f"{name}_to_bgr", origin=name).output
    for entry in preprocessing:
        kind = entry.WhichOneof("preprocessor")
        if kind == "scaler":
            s = entry.scaler
            if s.channelScale != 1.0:
                y = _node(graph, "mul", y, np.float32(s.channelScale), name)
            bias = np.asarray([getattr(s, f) for f in _BIASES[space]], np.float32).reshape(-1, 1, 1)
            if np.any(bias != 0):
                y = _node(graph, "add", y, bias, name)
        elif kind == "meanImage":
            mean = np.asarray(entry.meanImage.meanImage, np.float32)
            if mean.size != channels * h * w:
                raise UnsupportedOpError(f"{where}: the mean image of {name!r} has {mean.size} values, the image "
                                         f"{channels}x{h}x{w}")
            y = _node(graph, "sub", y, mean.reshape(channels, h, w), name)
    info = {"color_space": space, "layout": "NCHW", "pixels": "RGB 0-255" if channels == 3 else "gray 0-255",
            "height": h, "width": w}
    return y, info


def _node(graph: Graph, op: str, x: Value, array: np.ndarray, name: str) -> Value:
    c = graph.add_const(np.asarray(array, np.float32), name=f"{name}_{op}")
    return graph.add_node(op, [x, c], {}, name=f"{name}_preprocess", origin=name).output
