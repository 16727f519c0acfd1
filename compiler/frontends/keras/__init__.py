"""The Keras frontend: load (loader.py) -> KerasModelSpec -> lower (lower.py) -> IR graph."""
from __future__ import annotations

import os
from typing import Any

from kcc.errors import IRError, OptionError, ShapeError
from kcc.ir import Graph
from kcc.training import TrainingConfig


def _shape_overrides(spec, options: dict[str, Any]) -> dict[str, tuple]:
    """input_name_shape_dict keyed by Keras input names (accepting user input_names too)."""
    shapes = options.get("input_name_shape_dict") or {}
    keras_names = [r.layer for r in spec.inputs]
    alias = dict(zip(options.get("input_names") or [], keras_names))
    out = {}
    for name, shape in shapes.items():
        key = alias.get(name, name)
        if key not in keras_names:
            raise OptionError(f"input_name_shape_dict names input {name!r}, but the model's inputs are "
                              f"{', '.join(options.get('input_names') or keras_names)}")
        out[key] = tuple(shape)
    return out


def convert_keras(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    from kcc.frontends.keras.loader import load_keras_model
    from kcc.frontends.keras.lower import KerasLowering
    from kcc.frontends.keras import custom_layer  # noqa: F401  (registers the coreml_custom_layer step)
    from kcc.frontends.keras.fallback import lower_unknown_layer
    from kcc.frontends.keras.input_use import check_inputs_used

    spec = load_keras_model(source, safe_mode=options.get("safe_mode", True),
                            custom_objects=options.get("custom_objects"))
    lowering = KerasLowering(spec, boundary=boundary, input_shapes=_shape_overrides(spec, options),
                             fallback=options.get("keras_fallback") or lower_unknown_layer,
                             options=options)
    try:
        graph = lowering.lower()
    except IRError as e:
        if not isinstance(source, (str, os.PathLike, tuple, list)):
            raise  # a model Keras itself built: a disagreement is a kcc bug
        # Each layer is validated alone (validate.py); only lowering sees two layers meet.
        raise ShapeError(f"the model's layers do not fit together: {e}; the file's configs and "
                         "weights disagree (corrupt or edited file?)") from e
    _release_weights(spec)  # the graph holds what it uses; passes that replace a weight then free it
    check_inputs_used(spec, graph)  # a dropped mask input is an error, never silently ignored
    # For backends that keep training information (Core ML's respect_trainable).
    graph.training = TrainingConfig.from_dict(spec.training_config, _trainable_flags(spec))
    return graph


def _release_weights(spec) -> None:
    """Drop the spec's references to its weight arrays (the spec's objects form reference cycles,
    so without this they would live until Python's cycle collector runs)."""
    for layer in spec.layers:
        layer.weights = {}
        if layer.model is not None:
            _release_weights(layer.model)


def _trainable_flags(spec, prefix: str = "", outer: bool = True) -> dict[str, bool]:
    """Layer origin (``outer/inner`` for nested models) -> trainable, as KerasLowering names origins."""
    flags: dict[str, bool] = {}
    for layer in spec.layers:
        flag = outer and layer.trainable
        flags[f"{prefix}{layer.name}"] = flag
        if layer.model is not None:
            flags.update(_trainable_flags(layer.model, f"{prefix}{layer.name}/", flag))
    return flags
