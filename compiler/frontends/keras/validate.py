"""Check what a Keras model file claims, in one place, before anything is lowered.

``validate_spec`` runs after the config is parsed and the weights are read
(loader.py). It holds each layer to two tables keyed by Keras class name:

* ``CONFIG_RULES``: the config's own rules: positive ``filters``/``units``/
  ``kernel_size``/``strides``/``pool_size``/``groups``, known ``padding``,
  ``data_format`` and activation names, integer axes, ints where Keras expects
  ints (not lists, floats, bools or 10**30);
* ``WEIGHT_SHAPES``: the shape every stored variable must have given the config
  (Dense ``kernel`` is ``(in, units)``, Conv2D ``kernel`` is
  ``(kh, kw, in/groups, filters)``...). The variable names come from the
  weight-slot table in load_weights.py; a missing or extra variable, or one
  whose shape contradicts the config, is refused.

So a Conv2D saying ``"filters": 16`` over a stored 32-filter kernel, or
``"filters": -5``, is a ``ModelFileError`` naming the layer, the field and both
values, instead of a model that converts and computes something else. Layers
this module has no rule for are held to the generic checks only (numeric
weights, a unique name, calls that name layers of the model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kcc import limits
from kcc.errors import ModelFileError

from .activations import KERAS_ACTIVATIONS
from .load_weights import Child, flat_weight_names, weight_slots
from .spec import KerasLayer, KerasModelSpec, LayerCall, TensorRef

# Keras's own limit on one dimension is far below this; it bounds what a config can make kcc build.
MAX_DIM = 1 << 31
DATA_FORMATS = (None, "channels_last", "channels_first")


class Fields:
    """Typed reads of one layer config; every failure names the layer and the field."""

    def __init__(self, layer: str, class_name: str, config: dict, where: str):
        self.layer, self.class_name, self.config, self.where = layer, class_name, config, where

    def fail(self, field: str, value: Any, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: layer {self.layer!r} ({self.class_name}): "
                              f"{field} = {_show(value)} {problem}")

    def int(self, field: str, default: Any = None, low: int = 1, optional: bool = False) -> int | None:
        value = self.config.get(field, default)
        if value is None and optional:
            return None
        if not _is_int(value):
            raise self.fail(field, value, "must be an integer")
        if not low <= value < MAX_DIM:
            raise self.fail(field, value, f"must be at least {low}" if value < low else "is too large")
        return int(value)

    def ints(self, field: str, n: int, default: Any = None, low: int = 1,
             optional: bool = False) -> tuple[int, ...] | None:
        """An int or a list of ``n`` ints (Keras's ``kernel_size=3`` or ``(3, 3)``)."""
        value = self.config.get(field, default)
        if value is None and optional:
            return None
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(items) == 1:
            items = items * n
        if len(items) != n or not all(_is_int(v) for v in items):
            raise self.fail(field, value, f"must be an integer or {n} integers")
        if not all(low <= v < MAX_DIM for v in items):
            raise self.fail(field, value, f"must be at least {low}" if min(items) < low else "is too large")
        return tuple(int(v) for v in items)

    def choice(self, field: str, allowed: tuple, default: Any = None) -> Any:
        value = self.config.get(field, default)
        if value not in allowed:
            raise self.fail(field, value, f"is not one of {[a for a in allowed if a is not None]}")
        return value

    def number(self, field: str, default: Any = None, low: float | None = None,
               high: float | None = None, optional: bool = True) -> float | None:
        value = self.config.get(field, default)
        if value is None and optional:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise self.fail(field, value, "must be a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(field, value, f"must be in [{low}, {high}]")
        return float(value)

    def activation(self, field: str = "activation") -> None:
        value = self.config.get(field)
        if isinstance(value, str) and value not in KERAS_ACTIVATIONS:
            raise self.fail(field, value, f"is not a Keras activation kcc knows "
                                          f"(known: {', '.join(sorted(KERAS_ACTIVATIONS))})")
        if value is not None and not isinstance(value, (str, dict)):
            raise self.fail(field, value, "must be an activation name")

    def axis(self, field: str = "axis", default: Any = -1, rank: int | None = None,
             batch: bool = True) -> None:
        """An int axis or a list of them; ``batch=False`` refuses axis 0 (the batch axis)."""
        value = self.config.get(field, default)
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or not all(_is_int(a) for a in items):
            raise self.fail(field, value, "must be an integer axis or a list of them")
        if len(set(items)) != len(items):
            raise self.fail(field, value, "names an axis twice")
        if not batch and 0 in items:
            raise self.fail(field, value, "includes the batch axis 0; kcc normalizes within one sample")
        limit = rank if rank is not None else 32
        if not all(-limit <= a < limit for a in items):
            raise self.fail(field, value, f"is out of range for a rank-{limit} tensor"
                            if rank is not None else "is out of range")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _rank_of(class_name: str) -> int:
    for n in (1, 2, 3):
        if f"{n}D" in class_name:
            return n
    return 2


# ---- config rules ---------------------------------------------------------------------

def _window(f: Fields, kernel_field: str, paddings: tuple = ("valid", "same")) -> None:
    n = _rank_of(f.class_name)
    f.ints(kernel_field, n)
    f.ints("strides", n, default=1)
    f.choice("padding", paddings, default="valid")
    f.choice("data_format", DATA_FORMATS)


def _conv(f: Fields) -> None:
    paddings = ("valid", "same", "causal") if f.class_name in ("Conv1D", "Convolution1D") \
        else ("valid", "same")
    _window(f, "kernel_size", paddings)
    filters = f.int("filters")
    groups = f.int("groups", default=1)
    if filters % groups:
        raise f.fail("groups", groups, f"does not divide filters = {filters}")
    f.ints("dilation_rate", _rank_of(f.class_name), default=1)
    f.activation()


def _conv_transpose(f: Fields) -> None:
    _window(f, "kernel_size")
    f.int("filters")
    f.ints("dilation_rate", _rank_of(f.class_name), default=1)
    f.ints("output_padding", _rank_of(f.class_name), low=0, optional=True)
    f.activation()


def _depthwise(f: Fields) -> None:
    _window(f, "kernel_size")
    f.int("depth_multiplier", default=1)
    f.ints("dilation_rate", _rank_of(f.class_name), default=1)
    f.activation()


def _separable(f: Fields) -> None:
    _depthwise(f)
    f.int("filters")


def _pool(f: Fields) -> None:
    n = _rank_of(f.class_name)
    f.ints("pool_size", n)  # Keras always writes it; the lowering has no default
    f.ints("strides", n, optional=True)
    f.choice("padding", ("valid", "same"), default="valid")
    f.choice("data_format", DATA_FORMATS)


def _global_pool(f: Fields) -> None:
    f.choice("data_format", DATA_FORMATS)


def _dense(f: Fields) -> None:
    f.int("units")
    f.activation()


def _recurrent(f: Fields) -> None:
    f.int("units")
    f.activation()
    f.activation("recurrent_activation")
    f.number("dropout", low=0.0, high=1.0)
    f.number("recurrent_dropout", low=0.0, high=1.0)


def _conv_lstm(f: Fields) -> None:
    _window(f, "kernel_size")
    f.int("filters")
    f.ints("dilation_rate", _rank_of(f.class_name), default=1)
    f.activation()
    f.activation("recurrent_activation")


def _embedding(f: Fields) -> None:
    f.int("input_dim")
    f.int("output_dim")


def _normalization(f: Fields) -> None:
    f.axis(batch=False)
    f.number("epsilon", default=1e-3, low=0.0, optional=False)


def _batch_norm(f: Fields) -> None:
    _normalization(f)
    f.number("momentum", low=0.0, high=1.0)


def _group_norm(f: Fields) -> None:
    f.int("groups", default=32)
    _normalization(f)


def _dropout(f: Fields) -> None:
    f.number("rate", low=0.0, high=1.0)


def _activation_layer(f: Fields) -> None:
    f.activation()


def _softmax(f: Fields) -> None:
    f.axis()


def _concatenate(f: Fields) -> None:
    f.axis()


def _reshape(f: Fields) -> None:
    if "target_shape" not in f.config and "newshape" in f.config:   # keras.ops.reshape: the batch included
        value = f.config.get("newshape")
        if not isinstance(value, (list, tuple)) or not value or not all(
                _is_int(d) and (d == -1 or 0 < d < MAX_DIM) for d in value):
            raise f.fail("newshape", value, "must be a list of positive integers (one may be -1)")
        return
    value = f.config.get("target_shape")
    if not isinstance(value, (list, tuple)) or not all(d is None or (_is_int(d) and (d == -1 or 0 < d < MAX_DIM))
                                                      for d in value):
        raise f.fail("target_shape", value, "must be a list of positive integers (one may be -1)")
    if sum(d is None or d == -1 for d in value) > 1:
        raise f.fail("target_shape", value, "may hold -1 only once")


def _permute(f: Fields) -> None:
    dims = f.config.get("dims")
    if not isinstance(dims, (list, tuple)) or not all(_is_int(d) for d in dims) \
            or sorted(dims) != list(range(1, len(dims) + 1)):
        raise f.fail("dims", dims, "must be a permutation of 1..rank")


def _upsampling(f: Fields) -> None:
    f.ints("size", _rank_of(f.class_name), default=2)


def _padding_or_cropping(field: str) -> Callable[[Fields], None]:
    def rule(f: Fields) -> None:
        value = f.config.get(field)
        flat = _flatten(value)
        if not flat or not all(_is_int(v) and 0 <= v < MAX_DIM for v in flat):
            raise f.fail(field, value, "must be non-negative integers")
    return rule


def _flatten(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [value]


def _repeat_vector(f: Fields) -> None:
    f.int("n")


def _input_layer(f: Fields) -> None:
    dtype = f.config.get("dtype")
    if dtype is not None and not isinstance(dtype, str):
        raise f.fail("dtype", dtype, "must be a dtype name such as 'float32'")
    shape = f.config.get("batch_shape")
    if shape is None:
        return
    if not isinstance(shape, (list, tuple)) or len(shape) > 8 \
            or not all(d is None or (_is_int(d) and 0 < d < MAX_DIM) for d in shape):
        raise f.fail("batch_shape", shape, "must be a list of positive integers or None (at most rank 8)")


def _attention(f: Fields) -> None:
    f.int("num_heads")
    f.int("key_dim")
    f.int("value_dim", optional=True)


def _bidirectional(f: Fields) -> None:
    f.choice("merge_mode", ("concat", "sum", "mul", "ave", None), default="concat")


def _leaky_relu(f: Fields) -> None:
    f.number("negative_slope")


def _relu(f: Fields) -> None:
    f.number("max_value", low=0.0)
    f.number("negative_slope", low=0.0)
    f.number("threshold")


CONFIG_RULES: dict[str, Callable[[Fields], None]] = {
    **dict.fromkeys(["Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D",
                     "Convolution3D"], _conv),
    **dict.fromkeys(["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                     "Convolution2DTranspose", "Convolution3DTranspose"], _conv_transpose),
    **dict.fromkeys(["DepthwiseConv1D", "DepthwiseConv2D"], _depthwise),
    **dict.fromkeys(["SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
                     "SeparableConvolution2D"], _separable),
    **dict.fromkeys(["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
                     "AveragePooling2D", "AveragePooling3D", "MaxPool1D", "MaxPool2D",
                     "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D"], _pool),
    **dict.fromkeys(["GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                     "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
                     "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
                     "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D"], _global_pool),
    "Dense": _dense,
    **dict.fromkeys(["SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell"],
                    _recurrent),
    **dict.fromkeys(["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"], _conv_lstm),
    "Embedding": _embedding,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _normalization,
    "GroupNormalization": _group_norm,
    **dict.fromkeys(["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "AlphaDropout", "GaussianDropout"], _dropout),
    "Activation": _activation_layer,
    "Softmax": _softmax,
    "Concatenate": _concatenate,
    "Reshape": _reshape,
    "Permute": _permute,
    **dict.fromkeys(["UpSampling1D", "UpSampling2D", "UpSampling3D"], _upsampling),
    **dict.fromkeys(["ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"],
                    _padding_or_cropping("padding")),
    **dict.fromkeys(["Cropping1D", "Cropping2D", "Cropping3D"], _padding_or_cropping("cropping")),
    "RepeatVector": _repeat_vector,
    "InputLayer": _input_layer,
    "MultiHeadAttention": _attention,
    "Bidirectional": _bidirectional,
    "LeakyReLU": _leaky_relu,
    "ReLU": _relu,
}

# Built-in classes that own no variables: a file storing some for them is inconsistent.
WEIGHTLESS = frozenset(
    name for name, rule in CONFIG_RULES.items()
    if rule in (_pool, _global_pool, _dropout, _activation_layer, _softmax, _concatenate,
                _reshape, _permute, _upsampling, _repeat_vector, _input_layer, _leaky_relu, _relu)
    or name.startswith(("ZeroPadding", "Cropping"))
) | {"Flatten", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


# ---- weight shapes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Dim:
    """One expected dimension and the config field (or other variable) that implies it."""

    value: int
    field: str


Shape = tuple  # of int | Dim | None (None: any size, e.g. input channels)
ShapeRule = Callable[[Fields, dict[str, np.ndarray]], dict[str, Shape]]


def _kernel_bias(kernel: Shape, out: Dim) -> dict[str, Shape]:
    return {"kernel": kernel, "bias": (out,)}


def _dense_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    units = Dim(f.int("units"), "units")
    return _kernel_bias((None, units), units)


def _conv_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    n = _rank_of(f.class_name)
    ks = tuple(Dim(k, "kernel_size") for k in f.ints("kernel_size", n))
    filters = Dim(f.int("filters"), "filters")
    return _kernel_bias(ks + (None, filters), filters)


def _conv_transpose_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    n = _rank_of(f.class_name)
    ks = tuple(Dim(k, "kernel_size") for k in f.ints("kernel_size", n))
    filters = Dim(f.int("filters"), "filters")
    return _kernel_bias(ks + (filters, None), filters)


def _depthwise_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    n = _rank_of(f.class_name)
    ks = tuple(Dim(k, "kernel_size") for k in f.ints("kernel_size", n))
    mult = f.int("depth_multiplier", default=1)
    kernel = w.get("kernel")
    channels = kernel.shape[-2] if kernel is not None and kernel.ndim == n + 2 else None
    out = Dim(channels * mult, "depth_multiplier x the kernel's input channels") if channels else None
    return _kernel_bias(ks + (None, Dim(mult, "depth_multiplier")), out)


def _separable_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    n = _rank_of(f.class_name)
    ks = tuple(Dim(k, "kernel_size") for k in f.ints("kernel_size", n))
    mult = f.int("depth_multiplier", default=1)
    filters = Dim(f.int("filters"), "filters")
    depthwise = w.get("depthwise_kernel")
    channels = depthwise.shape[-2] if depthwise is not None and depthwise.ndim == n + 2 else None
    mid = Dim(channels * mult, "depth_multiplier x the depthwise kernel's input channels") \
        if channels else None
    return {"depthwise_kernel": ks + (None, Dim(mult, "depth_multiplier")),
            "pointwise_kernel": (1,) * n + (mid, filters), "bias": (filters,)}


def _gates(f: Fields, gates: int, w: dict) -> dict[str, Shape]:
    units = f.int("units")
    out = Dim(gates * units, f"units x {gates} gates" if gates > 1 else "units")
    bias: Shape = (out,)
    if f.class_name.startswith("GRU") and f.config.get("reset_after", True):
        bias = (2, out)
    return {"kernel": (None, out), "recurrent_kernel": (Dim(units, "units"), out), "bias": bias}


def _conv_lstm_cell_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    kernel = w.get("kernel")
    n = kernel.ndim - 2 if kernel is not None and kernel.ndim >= 3 else 2
    ks = tuple(Dim(k, "kernel_size") for k in f.ints("kernel_size", n))
    filters = f.int("filters")
    out = Dim(4 * filters, "filters x 4 gates")
    return {"kernel": ks + (None, out), "recurrent_kernel": ks + (Dim(filters, "filters"), out),
            "bias": (out,)}


def _embedding_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    return {"embeddings": (Dim(f.int("input_dim"), "input_dim"), Dim(f.int("output_dim"), "output_dim"))}


def _per_channel(names: tuple[str, ...]) -> ShapeRule:
    """Variables that all have the first one's shape (BatchNormalization's four vectors)."""
    def rule(f: Fields, w: dict) -> dict[str, Shape]:
        present = [n for n in names if n in w]
        if not present:
            return {}
        first = w[present[0]].shape
        return {n: tuple(Dim(d, f"the shape of {present[0]}") for d in first) for n in present}
    return rule


def _group_norm_shapes(f: Fields, w: dict) -> dict[str, Shape]:
    shapes = _per_channel(("gamma", "beta"))(f, w)
    groups = f.int("groups", default=32)
    for name in ("gamma", "beta"):
        if name in w and w[name].ndim == 1 and w[name].shape[0] % groups:
            raise f.fail("groups", groups, f"does not divide the {w[name].shape[0]} channels of "
                                           f"the stored {name}")
    return shapes


WEIGHT_SHAPES: dict[str, ShapeRule] = {
    "Dense": _dense_shapes,
    **dict.fromkeys(["Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D",
                     "Convolution3D"], _conv_shapes),
    **dict.fromkeys(["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                     "Convolution2DTranspose"], _conv_transpose_shapes),
    **dict.fromkeys(["DepthwiseConv1D", "DepthwiseConv2D"], _depthwise_shapes),
    **dict.fromkeys(["SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
                     "SeparableConvolution2D"], _separable_shapes),
    "SimpleRNNCell": lambda f, w: _gates(f, 1, w),
    "LSTMCell": lambda f, w: _gates(f, 4, w),
    "GRUCell": lambda f, w: _gates(f, 3, w),
    "ConvLSTMCell": _conv_lstm_cell_shapes,
    "Embedding": _embedding_shapes,
    "BatchNormalization": _per_channel(("gamma", "beta", "moving_mean", "moving_variance")),
    "LayerNormalization": _per_channel(("gamma", "beta")),
    "GroupNormalization": _group_norm_shapes,
    "Normalization": _per_channel(("mean", "variance")),
}


# ---- the walk ----------------------------------------------------------------------------

def validate_spec(spec: KerasModelSpec, where: str) -> None:
    """Refuse a spec whose configs break their layer's rules or contradict the stored weights."""
    limits.check_count(_count_layers(spec), limits.MAX_LAYERS, where, "layers")
    _validate_model(spec, where)


def _count_layers(spec: KerasModelSpec) -> int:
    total, stack = 0, [spec]
    while stack:
        model = stack.pop()
        total += len(model.layers)
        stack.extend(layer.model for layer in model.layers if layer.model is not None)
    return total


def _validate_model(spec: KerasModelSpec, where: str) -> None:
    if not isinstance(spec.name, str):
        raise ModelFileError(f"{where}: a model is named {_show(spec.name)}; model names are strings")
    names: set[str] = set()
    for layer in spec.layers:
        if not isinstance(layer.name, str):
            raise ModelFileError(f"{where}: a {layer.class_name} layer has name {_show(layer.name)}; "
                                 "layer names are strings")
        if layer.name in names:
            raise ModelFileError(f"{where}: model {spec.name!r} has two layers named {layer.name!r}; "
                                 "layer names must be unique")
        names.add(layer.name)
    for layer in spec.layers:
        for call in layer.calls:
            _check_call(layer, call, where)
        for ref in (r for call in layer.calls for r in call.input_refs()):
            if ref.layer not in names:
                raise ModelFileError(f"{where}: layer {layer.name!r} is called on the output of "
                                     f"{ref.layer!r}, which is not a layer of model {spec.name!r}")
    for ref in list(spec.inputs) + list(spec.outputs):
        if not isinstance(ref.layer, str) or ref.layer not in names:
            raise ModelFileError(f"{where}: model {spec.name!r} names {ref.layer!r} as an input or "
                                 "output, but has no layer of that name")
    for layer in spec.layers:
        if layer.model is not None:
            _validate_model(layer.model, where)
        else:
            validate_layer(layer, where)


# Call keyword arguments that must be tensors (or lists of them) when given.
TENSOR_KWARGS = frozenset({"mask", "initial_state", "constants", "query", "value", "key",
                           "attention_mask", "query_mask", "value_mask", "key_mask"})


def _check_call(layer: KerasLayer, call: LayerCall, where: str) -> None:
    """A call's inputs are tensors: a reference, or a non-empty (nested) list or dict of them."""
    def tensors(x: Any) -> bool:
        if isinstance(x, TensorRef):
            return isinstance(x.layer, str)
        if isinstance(x, dict):  # a model called on named inputs (a KerasHub backbone)
            return len(x) > 0 and all(isinstance(k, str) and tensors(v) for k, v in x.items())
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(tensors(v) for v in x)

    if layer.class_name != "InputLayer" and not tensors(call.args):
        raise ModelFileError(f"{where}: layer {layer.name!r} ({layer.class_name}) is called on "
                             f"{_show(call.args)}, not on tensors of the model")
    def constant(x: Any) -> bool:
        """A number, or a non-empty (nested) list of numbers: ``x + 3.0`` stores ``arg1 = 3.0``.

        ``x[:, 0]`` (GetItem) stores its key as ints and ``__slice__`` / ``__ellipsis__`` entries.
        """
        if isinstance(x, (int, float)) or _static_index(x):
            return True
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(constant(v) for v in x)

    def nothing(x: Any) -> bool:
        """None, or a list/dict of Nones: ``mask={"token_ids": None, ...}`` on a dict input."""
        if isinstance(x, (list, tuple)):
            return all(nothing(v) for v in x)
        if isinstance(x, dict):
            return all(nothing(v) for v in x.values())
        return x is None

    for key, value in call.kwargs.items():
        if nothing(value):
            continue
        if key in TENSOR_KWARGS and not tensors(value) or \
                key.startswith("arg") and not (tensors(value) or constant(value)):
            raise ModelFileError(f"{where}: layer {layer.name!r} ({layer.class_name}): call argument "
                                 f"{key} = {_show(value)} is not a tensor of the model")


def _static_index(x: Any) -> bool:
    """A serialized slice with int/None bounds, or ``...``."""
    if not isinstance(x, dict) or x.get("class_name") not in ("__slice__", "__ellipsis__"):
        return False
    config = x.get("config")
    if x["class_name"] == "__ellipsis__":
        return not config
    return isinstance(config, dict) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in config.values())


def validate_layer(layer: KerasLayer, where: str) -> None:
    """One layer's config against its rule, and its weights against the shapes it implies."""
    f = Fields(layer.name, layer.class_name, layer.config, where)
    rule = CONFIG_RULES.get(layer.class_name)
    if rule is not None:
        rule(f)
    for name, array in layer.weights.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise ModelFileError(f"{where}: layer {layer.name!r} ({layer.class_name}): stored "
                                 f"variable {name!r} is not a numeric array")
    if layer.class_name in WEIGHTLESS and layer.weights:
        raise ModelFileError(f"{where}: layer {layer.name!r} ({layer.class_name}) owns no variables, "
                             f"but the file stores {sorted(layer.weights)} for it")
    if layer.live is None or layer.weights:
        _check_weights(f, layer.class_name, layer.config, layer.weights, "")


def _check_weights(f: Fields, class_name: str, config: dict, weights: dict[str, np.ndarray],
                   prefix: str) -> None:
    """Every slot present with its implied shape; no variable the table does not name."""
    expected = flat_weight_names(class_name, config)
    if expected is None:
        return
    own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    missing = [n for n in expected if n not in own]
    extra = [n for n in own if n not in expected]
    if missing or extra:
        detail = (f"is missing {[prefix + n for n in missing]}" if missing else "") + \
                 (" and " if missing and extra else "") + \
                 (f"has unexpected {[prefix + n for n in extra]}" if extra else "")
        raise ModelFileError(f"{f.where}: layer {f.layer!r} ({f.class_name}): the stored weights "
                             f"{detail}; expected {[prefix + n for n in expected]}")
    sub = Fields(f.layer, class_name, config, f.where)
    shape_rule = WEIGHT_SHAPES.get(class_name)
    if shape_rule is not None:
        for name, shape in shape_rule(sub, own).items():
            if name in own:
                _check_shape(sub, prefix + name, own[name].shape, shape)
    for slot in weight_slots(class_name, config) or []:
        if isinstance(slot, Child):
            child = Fields(f.layer, slot.class_name, slot.config, f.where)
            child_rule = CONFIG_RULES.get(slot.class_name)
            if child_rule is not None:
                child_rule(child)
            _check_weights(child, slot.class_name, slot.config,
                           {k: v for k, v in weights.items() if k.startswith(prefix + slot.prefix)},
                           prefix + slot.prefix)


def _check_shape(f: Fields, name: str, actual: tuple, expected: Shape) -> None:
    if len(actual) != len(expected):
        raise ModelFileError(f"{f.where}: layer {f.layer!r} ({f.class_name}): stored {name} has "
                             f"shape {tuple(actual)}, expected rank {len(expected)} "
                             f"({_describe(expected)})")
    for axis, (got, want) in enumerate(zip(actual, expected)):
        if want is None:
            if got < 1:
                raise ModelFileError(f"{f.where}: layer {f.layer!r} ({f.class_name}): stored "
                                     f"{name} has shape {tuple(actual)}, an empty axis {axis}")
            continue
        value, field = (want.value, want.field) if isinstance(want, Dim) else (want, None)
        if got != value:
            if field is None:
                raise ModelFileError(f"{f.where}: layer {f.layer!r} ({f.class_name}): stored "
                                     f"{name} has shape {tuple(actual)}; axis {axis} must be {value}")
            raise ModelFileError(
                f"{f.where}: layer {f.layer!r} ({f.class_name}): {field} = {value} but the stored "
                f"{name} has shape {tuple(actual)} ({got} on axis {axis}); the config and the "
                "weights disagree (corrupt or edited file)")


def _describe(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d.value if isinstance(d, Dim) else d)
                           for d in shape) + ")"
