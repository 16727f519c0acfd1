"""What a source model says beyond its tensors: training (loss, optimizer) and classifier outputs.

A frontend that reads a compiled model (Keras: ``model.compile(loss=...,
optimizer=...)``) fills a :class:`TrainingConfig` and sets ``graph.training``;
a backend that can make a model trainable on device (Core ML's
``respect_trainable``, kcc.backends.coreml.updatable) reads it. Neither imports
the other: this module is the meeting point, and it imports nothing of kcc.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class Classifier:
    """A classifier's outputs: the probabilities output, the label output and the labels.

    Set by the Core ML frontends (a ``neuralNetworkClassifier`` or an ML Program's
    ``classify`` op); read by the ONNX backend (ArgMax + Gather into the label
    output) and the ML Program runtime (``{label: probability}`` dictionaries).
    """

    labels: list[Any]
    label_output: str
    probabilities_output: str


@dataclass(frozen=True)
class Optimizer:
    """An optimizer by class name (``"SGD"``, ``"Adam"``) and its config (``learning_rate``, ``momentum``, ...)."""

    class_name: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    """The training configuration of a compiled source model."""

    # A loss name (``"mse"``, ``"categorical_crossentropy"``, a class name), or one per
    # output (a list, or a dict keyed by output name).
    loss: Any = None
    optimizer: Optimizer | None = None
    # Layer origin (as the frontend names node origins) -> whether its weights train.
    trainable: Mapping[str, bool] = field(default_factory=dict)
    metrics: Any = None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None, trainable: Mapping[str, bool]) -> "TrainingConfig | None":
        """From ``{"loss", "optimizer": {"class_name", "config"}, "metrics"}``; None when there is no config."""
        if not config:
            return None
        opt = config.get("optimizer")
        optimizer = Optimizer(str(opt.get("class_name", "")), dict(opt.get("config") or {})) if opt else None
        return cls(config.get("loss"), optimizer, dict(trainable), config.get("metrics"))


__all__ = ["TrainingConfig", "Optimizer"]
