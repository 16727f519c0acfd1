"""Image inputs (and outputs) of NeuralNetwork models.

An image input arrives as a PIL image or an H x W (x C) array of 0-255 pixel
values in RGB(A) order. It becomes a [C, H, W] float32 tensor in the model's
color space (BGR swaps channels, GRAYSCALE has one channel), then the
``NeuralNetworkPreprocessing`` entries for that input apply in order: the scaler
(``channelScale * x + per-channel bias``: scale first, then bias) or the mean
image subtraction. The result is shaped [1, 1, C, H, W] (RANK5_IMAGE_MAPPING) or
[1, C, H, W] (RANK4_IMAGE_MAPPING).
"""
from __future__ import annotations

import numpy as np

from kcc.errors import RuntimeModelError

_BIASES = {  # per color space: the scaler bias fields in tensor channel order
    "RGB": ("redBias", "greenBias", "blueBias"),
    "BGR": ("blueBias", "greenBias", "redBias"),
    "GRAYSCALE": ("grayBias",),
    "GRAYSCALE_FLOAT16": ("grayBias",),
}


def color_space(image_type) -> str:
    return type(image_type).ColorSpace.Name(image_type.colorSpace)


def image_tensor(name: str, image_type, value, preprocessing, rank5: bool) -> np.ndarray:
    """The network's input blob for image feature ``name``."""
    space = color_space(image_type)
    if space not in _BIASES:
        raise RuntimeModelError(f"image input '{name}' has color space {space}, which the runtime does not support")
    gray = space.startswith("GRAYSCALE")
    pixels = _pixels(name, value, gray)
    h, w = pixels.shape[:2]
    _check_size(name, image_type, w, h)
    chw = pixels.transpose(2, 0, 1).astype(np.float32)
    if space == "BGR":
        chw = chw[::-1]
    for entry in preprocessing:
        chw = _preprocess(name, entry, chw, space)
    chw = np.ascontiguousarray(chw, dtype=np.float32)
    return chw[None, None] if rank5 else chw[None]


def _pixels(name: str, value, gray: bool) -> np.ndarray:
    """H x W x C (C = 1 or 3) pixel values as float32."""
    if hasattr(value, "convert") and hasattr(value, "size"):  # a PIL image
        value = value.convert("L" if gray else "RGB")
    arr = np.asarray(value)
    if arr.dtype.kind not in "uif":
        raise RuntimeModelError(f"image input '{name}' must be a PIL image or a numeric array, got {arr.dtype}")
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise RuntimeModelError(
            f"image input '{name}' must be H x W or H x W x 3 (RGB) pixels, got shape {list(arr.shape)}")
    if gray:
        if arr.shape[2] != 1:  # ITU-R 601 luma, as PIL's convert("L")
            arr = (arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        return arr
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return arr[..., :3]


def _check_size(name: str, image_type, width: int, height: int) -> None:
    flex = image_type.WhichOneof("SizeFlexibility")
    if flex == "enumeratedSizes":
        sizes = [(int(s.width), int(s.height)) for s in image_type.enumeratedSizes.sizes]
        if (width, height) in sizes:
            return
        wanted = " or ".join(f"{w}x{h}" for w, h in sizes)
    elif flex == "imageSizeRange":
        rng = image_type.imageSizeRange
        if _in_range(width, rng.widthRange) and _in_range(height, rng.heightRange):
            return
        wanted = f"width {_describe(rng.widthRange)} x height {_describe(rng.heightRange)}"
    else:
        if (width, height) == (int(image_type.width), int(image_type.height)):
            return
        wanted = f"{image_type.width}x{image_type.height}"
    raise RuntimeModelError(
        f"image input '{name}' is {width}x{height} (width x height) but the model expects {wanted}; "
        f"resize the image first")


def _describe(size_range) -> str:
    upper = int(size_range.upperBound)
    return f"{int(size_range.lowerBound)}..{'*' if upper < 0 else upper}"


def _in_range(value: int, size_range) -> bool:
    upper = int(size_range.upperBound)
    return value >= int(size_range.lowerBound) and (upper < 0 or value <= upper)


def _preprocess(name: str, entry, chw: np.ndarray, space: str) -> np.ndarray:
    kind = entry.WhichOneof("preprocessor")
    if kind == "scaler":
        sc = entry.scaler
        bias = np.array([getattr(sc, f) for f in _BIASES[space]], dtype=np.float32)
        return chw * np.float32(sc.channelScale) + bias.reshape(-1, 1, 1)
    if kind == "meanImage":
        mean = np.asarray(entry.meanImage.meanImage, dtype=np.float32)
        if mean.size != chw.size:
            raise RuntimeModelError(
                f"image input '{name}': the mean image has {mean.size} values, the image {chw.size}")
        return chw - mean.reshape(chw.shape)
    return chw


def blob_to_image(name: str, image_type, blob: np.ndarray):
    """An image output: the [..., C, H, W] blob clipped to 0-255 as a PIL image."""
    from PIL import Image

    space = color_space(image_type)
    chw = blob.reshape(blob.shape[-3:])
    if space == "BGR":
        chw = chw[::-1]
    pixels = np.clip(np.rint(chw), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    if pixels.shape[2] == 1:
        return Image.fromarray(pixels[..., 0])
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
