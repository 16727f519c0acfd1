"""The normalized description of a Keras model, independent of where it came from.

``load_keras_model`` (loader.py) turns every source -- an in-memory ``keras.Model``,
a Keras 3 ``.keras`` archive, a legacy ``.h5`` (Keras 3, tf.keras 2.x, Keras 2.0-2.2),
or an architecture ``.json`` plus weights ``.h5`` -- into one ``KerasModelSpec``.
The frontend (lower.py) only ever sees this structure, so a layer handler is
written once, not once per file format.

Invariants the loader guarantees:

* ``config`` dicts use Keras 3 names (``batch_shape`` not ``batch_input_shape``,
  ``activation`` as a plain string when it is a built-in, ``dtype`` as a string).
* Sequential models are normalized to the functional form: an explicit InputLayer
  and one call per layer, chained.
* ``weights`` are numpy arrays keyed by short canonical names, exactly the
  ``Variable.name`` Keras 3 gives them (``kernel``, ``bias``, ``gamma``, ``beta``,
  ``moving_mean``, ``moving_variance``, ``embeddings``, ``recurrent_kernel``,
  ``depthwise_kernel``, ``pointwise_kernel``, ``alpha``, ``mean``, ``variance``...).
  Wrappers prefix their inner layer: ``forward/kernel``, ``backward/recurrent_kernel``
  (Bidirectional), ``layer/kernel`` (TimeDistributed).
* Nested models are layers whose ``model`` field holds their own KerasModelSpec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorRef:
    """One Keras tensor: output ``tensor_index`` of call ``node_index`` of a layer."""

    layer: str
    node_index: int = 0
    tensor_index: int = 0


def has_ref(x: Any) -> bool:
    """Whether a call argument (a TensorRef, or lists/dicts of them) holds a Keras tensor."""
    if isinstance(x, TensorRef):
        return True
    if isinstance(x, (list, tuple)):
        return any(has_ref(y) for y in x)
    if isinstance(x, dict):
        return any(has_ref(y) for y in x.values())
    return False


@dataclass
class LayerCall:
    """One call of a layer: its positional tensor inputs and other call kwargs.

    ``args`` mirrors the structure of the first call argument: a single TensorRef
    for one input, a list of TensorRefs for merge layers (Add, Concatenate, ...).
    ``kwargs`` holds the remaining keyword arguments (e.g. ``training``,
    ``mask``, ``initial_state`` as TensorRefs, or plain constants).
    """

    args: Any
    kwargs: dict[str, Any] = field(default_factory=dict)

    def input_refs(self) -> list[TensorRef]:
        """All TensorRefs this call reads, positional first, in a stable order."""
        out: list[TensorRef] = []

        def walk(x: Any) -> None:
            if isinstance(x, TensorRef):
                out.append(x)
            elif isinstance(x, (list, tuple)):
                for y in x:
                    walk(y)
            elif isinstance(x, dict):
                for k in sorted(x):
                    walk(x[k])

        walk(self.args)
        walk(self.kwargs)
        return out


@dataclass
class KerasLayer:
    name: str
    class_name: str
    config: dict[str, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    calls: list[LayerCall] = field(default_factory=list)
    # For nested Sequential/Functional models: their own spec.
    model: "KerasModelSpec | None" = None
    # The live keras layer object, when one exists (in-memory models, or files
    # loaded with Keras because they hold Lambda/custom layers). Needed only to
    # trace Lambda and custom layers; None for everything read without Keras.
    live: Any = None
    # For a layer read from a file without Keras, whose handler may still hand it to the
    # fallback chain (which traces ``live``): builds ``live`` on demand from the layer's
    # config and weights (rebuild_layer.py). None otherwise.
    rebuild_live: Any = None
    module: str | None = None
    registered_name: str | None = None
    trainable: bool = True

    @property
    def keras_class(self) -> bool:
        """True when the class is Keras's own, so a handler for its class name applies.

        A same-named class of another package is not: KerasHub's Gemma
        ``RMSNormalization`` computes ``x * (1 + scale)``, Keras's ``x * scale``.
        Files without a ``module`` (Keras 2) hold Keras classes or their own
        ``custom_objects``, as before.
        """
        module = self.module or "keras"
        registered = self.registered_name
        renamed = registered not in (None, self.class_name) and not str(registered).startswith("keras")
        return (module == "keras" or module.startswith("keras.")) and not renamed


@dataclass
class KerasModelSpec:
    name: str
    layers: list[KerasLayer]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    # Where it came from: "memory", "keras", "h5", "json+h5".
    source: str = "memory"
    # The Keras version the source records ("3.15.1", "2.0.8", ...); None when it records none.
    keras_version: str | None = None
    # The compile() configuration, when the model was compiled and saved with it:
    # {"loss": ..., "optimizer": {"class_name": ..., "config": {...}}, "metrics": ...}
    training_config: dict[str, Any] | None = None

    def layer(self, name: str) -> KerasLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
