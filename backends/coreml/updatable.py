"""respect_trainable: make the trainable Dense and Conv layers updatable on device.

The Keras frontend records each layer's ``trainable`` flag and the compiled
model's training configuration in ``graph.training`` (kcc.training.TrainingConfig). Every innerProduct or
convolution layer emitted for a trainable Keras layer, and its weights and
bias, is marked updatable; the loss and optimizer come from the compile
configuration:

* loss: categorical (or sparse categorical) cross-entropy, on the output of
  the final softmax layer, target ``<output>_true`` (an int32 class index; the
  class label for a classifier); or mean squared error on the output, target
  ``<output>_true`` with the output's shape;
* optimizer: SGD (learning rate, momentum) or Adam (learning rate, beta1,
  beta2, epsilon); mini-batch size 32 (Keras's fit default) and 1 epoch,
  changeable on device within the declared ranges; shuffling on.

Updatable models need specification 4 and float32 weights.
"""
from __future__ import annotations

from typing import Any

from kcc.backends.coreml.context import CoremlContext
from kcc.errors import ConversionError
from kcc.ir import Graph
from kcc.training import Optimizer

UPDATABLE_LAYERS = ("innerProduct", "convolution")
TRAINABLE_OPS = ("dense", "conv")
BATCH_SIZE = 32
EPOCHS = 1

_CCE = {"categorical_crossentropy", "categoricalcrossentropy", "sparse_categorical_crossentropy",
        "sparsecategoricalcrossentropy"}
_MSE = {"mse", "mean_squared_error", "meansquarederror"}


def _loss_kind(loss: Any) -> str:
    if isinstance(loss, (list, dict)):
        values = list(loss.values()) if isinstance(loss, dict) else loss
        if len(values) != 1:
            raise ConversionError(f"respect_trainable: the model has {len(values)} losses; Core ML updates "
                                  f"models with one loss")
        loss = values[0]
    key = str(loss).lower()
    if key in _CCE:
        return "cce"
    if key in _MSE:
        return "mse"
    raise ConversionError(f"respect_trainable: loss {loss!r} has no Core ML equivalent; compile the model with "
                          f"'categorical_crossentropy' or 'mse'")


def _learning_rate(cfg: dict) -> float:
    lr = cfg.get("learning_rate", 0.01)
    if isinstance(lr, dict):  # a schedule: start from its initial rate
        lr = (lr.get("config") or {}).get("initial_learning_rate", 0.01)
    return float(lr)


def _set(param: Any, value: float, lo: float = 0.0, hi: float = 1.0) -> None:
    param.defaultValue = value
    param.range.minValue = min(lo, value)
    param.range.maxValue = max(hi, value)


def _optimizer(updates: Any, optimizer: Optimizer | None) -> None:
    if optimizer is None:
        raise ConversionError("respect_trainable: the model has no optimizer; compile it first")
    name = optimizer.class_name
    cfg = dict(optimizer.config)
    if name.lower() == "sgd":
        sgd = updates.optimizer.sgdOptimizer
        _set(sgd.learningRate, _learning_rate(cfg))
        _set(sgd.momentum, float(cfg.get("momentum", 0.0)))
        batch = sgd.miniBatchSize
    elif name.lower() == "adam":
        adam = updates.optimizer.adamOptimizer
        _set(adam.learningRate, _learning_rate(cfg))
        _set(adam.beta1, float(cfg.get("beta_1", 0.9)))
        _set(adam.beta2, float(cfg.get("beta_2", 0.999)))
        _set(adam.eps, float(cfg.get("epsilon", 1e-7)))
        batch = adam.miniBatchSize
    else:
        raise ConversionError(f"respect_trainable: optimizer {name!r} has no Core ML equivalent; use SGD or Adam")
    batch.defaultValue = BATCH_SIZE
    batch.set.values.append(BATCH_SIZE)


def make_updatable(ctx: CoremlContext, spec: Any, network: Any, graph: Graph) -> list[str]:
    """Mark layers updatable and add the loss and optimizer; returns the updatable layer names."""
    config = graph.training
    if config is None:
        raise ConversionError("respect_trainable=True needs a compiled Keras model (model.compile(loss=..., "
                              "optimizer=...)) so Core ML knows the loss and optimizer")
    marked: list[str] = []
    for node in graph.nodes():
        if node.op not in TRAINABLE_OPS or not config.trainable.get(node.origin, False):
            continue
        for lyr in ctx.layers_of.get(node.name, []):
            kind = lyr.WhichOneof("layer")
            if kind not in UPDATABLE_LAYERS:
                continue
            lyr.isUpdatable = True
            params = getattr(lyr, kind)
            params.weights.isUpdatable = True
            if params.hasBias:
                params.bias.isUpdatable = True
            marked.append(lyr.name)
    if not marked:
        raise ConversionError("respect_trainable=True but no trainable Dense or Conv layer was found")
    spec.isUpdatable = True
    updates = network.updateParams
    _loss(spec, network, graph, _loss_kind(config.loss))
    _optimizer(updates, config.optimizer)
    updates.epochs.defaultValue = EPOCHS
    updates.epochs.set.values.append(EPOCHS)
    updates.shuffle.defaultValue = True
    ctx.require(4, None, "an updatable model (respect_trainable=True)")
    return marked


def _loss(spec: Any, network: Any, graph: Graph, kind: str) -> None:
    out_name = spec.description.predictedProbabilitiesName or graph.output_names[0]
    loss = network.updateParams.lossLayers.add()
    training = spec.description.trainingInput
    training.extend(spec.description.input)
    target = training.add()
    if kind == "cce":
        producers = [l for l in network.layers if out_name in l.output]
        if not producers or producers[-1].WhichOneof("layer") not in ("softmax", "softmaxND"):
            raise ConversionError(f"respect_trainable: categorical cross-entropy needs the output {out_name!r} "
                                  f"to come from a softmax; end the model with a softmax activation")
        loss.name = "loss"
        loss.categoricalCrossEntropyLossLayer.input = out_name
        loss.categoricalCrossEntropyLossLayer.target = f"{out_name}_true"
        if spec.description.predictedFeatureName:
            label = [f for f in spec.description.output if f.name == spec.description.predictedFeatureName][0]
            target.name = spec.description.predictedFeatureName
            target.type.CopyFrom(label.type)
        else:
            target.name = f"{out_name}_true"
            target.type.multiArrayType.shape.append(1)
            target.type.multiArrayType.dataType = type(target.type.multiArrayType).ArrayDataType.Value("INT32")
        return
    loss.name = "loss"
    loss.meanSquaredErrorLossLayer.input = out_name
    loss.meanSquaredErrorLossLayer.target = f"{out_name}_true"
    target.name = f"{out_name}_true"
    feature = [f for f in spec.description.output if f.name == out_name][0]
    target.type.multiArrayType.shape.extend(feature.type.multiArrayType.shape)
    target.type.multiArrayType.dataType = type(target.type.multiArrayType).ArrayDataType.Value("DOUBLE")
