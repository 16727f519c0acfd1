"""Import a Core ML NeuralNetwork model (``neuralNetwork``, ``neuralNetworkClassifier``,
``neuralNetworkRegressor``, or a ``pipeline*`` of them) into the IR.

    graph = load_neuralnetwork("model.mlmodel")

The layers are lowered in order through the table from layer type to handler
(nn_context.NN_LAYERS; the handlers live in nn_activation, nn_layers,
nn_layers_nd and nn_recurrent). The IR is channels-first like Core ML, so no
layout change is made; see nn_context for how rank-5 blobs map to IR values.

Boundary:

* array inputs: with the rank-5 mapping a declared ``(C,)`` is the IR input
  ``(N, C)`` and ``(C, H, W)`` is ``(N, C, H, W)``; with the exact (ND) mapping
  the declared shape is the IR shape. Flexible dims (a ``shapeRange`` without an
  upper bound) become symbols: ``N`` for axis 0 of an ND input (the batch, named as
  the other frontends name it), ``<input>_d<axis>`` otherwise; a range or enumeration with
  the declared default keeps the default. A ``(C,)`` input of a network with
  recurrent layers is a sequence: the IR input is time-major ``(T, N, C)``
  (the IR's recurrent layout), and so is a sequence output.
* image inputs: nn_images (RGB pixels, preprocessing lowered to IR ops);
* outputs: in the declared shape, batch first (``(C,)`` -> ``(N, C)``);
* classifiers: the probabilities output ``(N, K)`` under the model's
  probabilities name; the label table and the label output's name go to
  ``graph.classifier`` (as the ML Program frontend does), from
  which the ONNX backend adds the label output (ArgMax, then a Gather from
  the label table) and the interpreter runner picks the label;
* metadata (author, license, short description, version, user-defined) goes
  to ``graph.metadata`` (the ONNX backend writes ``metadata_props``).

Pipelines: the stages share one name scope (a stage's input is the earlier
stage's output of that name), so the whole pipeline is one graph.
"""
from __future__ import annotations

from typing import Any

from kcc.errors import ConversionError, KccError, ModelFileError, UnsupportedOpError
from kcc.frontends.coreml.nn_context import NN_LAYERS, NNLayerContext
from kcc.frontends.coreml.nn_control import CONTROL_LAYERS, ControlFlow
from kcc.frontends.coreml.nn_images import image_input
from kcc.frontends.coreml.package import load_source
from kcc.ir import Graph, TensorType, Value
from kcc.training import Classifier

NETWORK_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
PIPELINE_KINDS = ("pipeline", "pipelineClassifier", "pipelineRegressor")
SPEC_VERSIONS = range(1, 9)
RECURRENT_LAYERS = ("simpleRecurrent", "gru", "uniDirectionalLSTM", "biDirectionalLSTM")

_ARRAY_DTYPES = {"FLOAT32": "f32", "DOUBLE": "f32", "FLOAT16": "f32", "INT32": "i32"}


def is_neuralnetwork_spec(spec: Any) -> bool:
    kind = spec.WhichOneof("Type")
    if kind in NETWORK_KINDS:
        return True
    if kind in PIPELINE_KINDS:
        return all(is_neuralnetwork_spec(m) for m in _stages(spec))
    return False


def _stages(spec: Any) -> list[Any]:
    kind = spec.WhichOneof("Type")
    p = getattr(spec, kind)
    return list((p.pipeline if kind != "pipeline" else p).models)


def load_neuralnetwork(source: Any, options: dict[str, Any] | None = None) -> Graph:
    """The IR graph of a NeuralNetwork source (see the module docstring)."""
    options = options or {}
    spec, _, where = load_source(source, options.get("weights_dir"))
    return NeuralNetworkImporter(spec, where, options).run()


class NeuralNetworkImporter:
    def __init__(self, spec: Any, where: str, options: dict[str, Any]):
        self.spec = spec
        self.where = where
        self.options = options
        self.graph = Graph("model")
        self.env: dict[str, Value] = {}
        self.images: dict[str, Any] = {}
        self.control = ControlFlow(self.graph, self.env, where, lambda layer: self._layer(layer, self.nd))

    def run(self) -> Graph:
        spec = self.spec
        version = int(spec.specificationVersion)
        if version not in SPEC_VERSIONS:
            raise ModelFileError(f"{self.where}: Core ML specification version {version} is not supported; kcc "
                                 f"reads NeuralNetwork models of versions 1 to 8 (re-save it with coremltools "
                                 f"for an older deployment target)")
        kind = spec.WhichOneof("Type")
        if kind not in NETWORK_KINDS + PIPELINE_KINDS:
            raise UnsupportedOpError(f"{self.where} is a Core ML {kind} model; kcc reads neural networks "
                                     f"(neuralNetwork, neuralNetworkClassifier, neuralNetworkRegressor), ML "
                                     f"Programs and pipelines of neural networks")
        stages = _stages(spec) if kind in PIPELINE_KINDS else [spec]
        last = None
        for i, stage in enumerate(stages):
            skind = stage.WhichOneof("Type")
            if skind not in NETWORK_KINDS:
                raise UnsupportedOpError(f"{self.where}: pipeline stage {i} is a {skind} model; kcc reads "
                                         f"pipelines whose stages are neural networks")
            self._stage(stage)
            last = stage
        self._outputs(spec, last)
        g = self.graph
        g.meta["boundary"] = "channels_first"
        g.meta["input_layout"] = {v.name: "native" for v in g.inputs}
        g.meta["source"] = {"format": "neuralnetwork", "specification_version": version}
        g.metadata = _metadata(spec)
        if self.images:
            g.meta["image_inputs"] = self.images
        return g

    # ------------------------------------------------------------ one network
    def _stage(self, stage: Any) -> None:
        network = getattr(stage, stage.WhichOneof("Type"))
        nd = network.arrayInputShapeMapping == 1
        self.nd = nd
        for feature in stage.description.input:
            if feature.name not in self.env:
                self.env[feature.name] = self._input(feature, network, nd, stage)
        for layer in network.layers:
            self._layer(layer, nd)
        self.network = network

    def _input(self, feature: Any, network: Any, nd: bool, stage: Any) -> Value:
        kind = feature.type.WhichOneof("Type")
        name = feature.name
        if kind == "imageType":
            images = [f.name for f in stage.description.input if f.type.WhichOneof("Type") == "imageType"]
            steps = [p for p in network.preprocessing
                     if p.featureName == name or (not p.featureName and len(images) == 1)]
            value, info = image_input(self.graph, name, feature.type.imageType, steps, self.where)
            self.images[name] = info
            return value
        if kind in ("doubleType", "int64Type"):
            return self.graph.add_input(name, TensorType(("N", 1), "f32"))
        if kind != "multiArrayType":
            raise UnsupportedOpError(f"{self.where}: input {name!r} is of type {kind}; kcc reads multi-array and "
                                     f"image inputs")
        at = feature.type.multiArrayType
        dtype = _ARRAY_DTYPES.get(type(at).ArrayDataType.Name(at.dataType), "f32")
        shape = _declared_shape(at, name, nd)
        if nd:
            return self.graph.add_input(name, TensorType(tuple(shape), dtype))
        if len(shape) == 1 and any(l.WhichOneof("layer") in RECURRENT_LAYERS for l in network.layers):
            # A sequence of vectors: the time-major (T, N, C) of the IR's recurrent ops.
            seq = self.graph.add_input(name, TensorType(("T", "N", *shape), dtype))
            return self.graph.add_node("unsqueeze", [seq], {"axes": (3, 4)}, name=f"{name}_blob").output
        if len(shape) not in (1, 3):
            raise UnsupportedOpError(f"{self.where}: input {name!r} declares shape {list(shape)}; a rank-5 "
                                     f"(non-ND) model's inputs are (C,) or (C, H, W)")
        return self.graph.add_input(name, TensorType(("N", *shape), dtype))

    def _layer(self, layer: Any, nd: bool) -> None:
        kind = layer.WhichOneof("layer")
        where = f"{self.where}: layer {layer.name!r} ({kind})"
        if kind is None:
            raise ModelFileError(f"{where.replace(' (None)', '')} has no layer type set; the model file is corrupt "
                                 f"or newer than kcc")
        if kind not in NN_LAYERS and kind not in CONTROL_LAYERS:
            raise UnsupportedOpError(
                f"{where}: kcc has no lowering for the NeuralNetwork layer type {kind!r}. Supported layers: "
                f"{', '.join(sorted(NN_LAYERS.names()))}. Re-convert the model without it, or convert it from "
                f"its source framework with kcc")
        inputs = []
        for name in layer.input:
            if name not in self.env:
                raise ModelFileError(f"{where} reads the blob {name!r}, which no earlier layer or input defines")
            inputs.append(self.env[name])
        if kind in CONTROL_LAYERS:
            self.control.lower(layer, inputs)
            return
        ctx = NNLayerContext(self.graph, layer, inputs, where, nd)
        try:
            results = NN_LAYERS[kind](ctx)
        except KccError:
            raise
        except Exception as e:  # an IR shape/attribute check: say which layer caused it
            raise ConversionError(f"{where}: cannot lower it: {type(e).__name__}: {e}") from e
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        if len(results) < len(layer.output):
            raise ConversionError(f"{where}: lowered to {len(results)} outputs, the layer names {len(layer.output)}")
        for name, value in zip(layer.output, results):
            self.control.write(name, value, layer.name)

    # ------------------------------------------------------------ outputs
    def _outputs(self, spec: Any, last: Any) -> None:
        desc = spec.description
        classifier = last.WhichOneof("Type") == "neuralNetworkClassifier" or \
            spec.WhichOneof("Type") == "pipelineClassifier"
        values, names = [], []
        probs = None
        if classifier:
            probs = self._probabilities(last)
        for feature in desc.output:
            name = feature.name
            if classifier and name == desc.predictedFeatureName:
                continue
            if classifier and (name == desc.predictedProbabilitiesName or
                               feature.type.WhichOneof("Type") == "dictionaryType") and name not in self.env:
                v = probs
            elif name not in self.env:
                raise ModelFileError(f"{self.where}: no layer produces the model output {name!r}")
            else:
                v = self._boundary(self.env[name], feature, name)
            values.append(v)
            names.append(name)
        if classifier:
            self._classifier(last, probs, values, names)
        out = []
        for v, name in zip(values, names):
            if v.is_const or v in out or v in self.graph.inputs:
                v = self.graph.add_node("identity", [v], {}, name=name, origin=name).output
            out.append(v)
        if not out:
            raise ModelFileError(f"{self.where}: the model declares no outputs")
        self.graph.set_outputs(out, names)

    def _boundary(self, v: Value, feature: Any, name: str) -> Value:
        if self.nd or feature.type.WhichOneof("Type") != "multiArrayType":
            return v
        declared = [int(d) for d in feature.type.multiArrayType.shape]
        ctx = NNLayerContext(self.graph, _FakeLayer(name), [v], f"{self.where}: output {name!r}", False)
        if v.rank == 5 and v.shape[0] != 1:
            return ctx.node("squeeze", [v], {"axes": (3, 4)}) if tuple(v.shape[3:]) == (1, 1) else v
        if len(declared) == 1 or (not declared and v.rank == 2):
            return ctx.channels(v) if v.rank != 2 else v
        if len(declared) == 3 or v.rank == 4:
            return ctx.as4(v)
        return v

    def _probabilities(self, stage: Any) -> Value:
        network = getattr(stage, stage.WhichOneof("Type"))
        name = network.labelProbabilityLayerName or (network.layers[-1].output[0] if network.layers else "")
        if name not in self.env:
            raise ModelFileError(f"{self.where}: the classifier's probability blob {name!r} is never produced")
        v = self.env[name]
        ctx = NNLayerContext(self.graph, _FakeLayer(name), [v], f"{self.where}: probabilities {name!r}", self.nd)
        return v if self.nd and v.rank == 2 else ctx.channels(v)

    def _classifier(self, stage: Any, probs: Value, values: list[Value], names: list[str]) -> None:
        """Record the label table; the probabilities are a graph output (added if the model declares none)."""
        network = getattr(stage, stage.WhichOneof("Type"))
        kind = network.WhichOneof("ClassLabels")
        if kind is None:
            raise ModelFileError(f"{self.where}: the classifier has no class labels")
        labels = list(getattr(network, kind).vector)
        k = probs.shape[-1]
        if isinstance(k, int) and k != len(labels):
            raise ModelFileError(f"{self.where}: the classifier has {len(labels)} labels for {k} probabilities")
        desc = self.spec.description
        label = desc.predictedFeatureName or "classLabel"
        prob_name = desc.predictedProbabilitiesName or f"{label}Probability"
        if prob_name not in names:
            values.append(probs)
            names.append(prob_name)
        self.graph.classifier = Classifier([str(v) if kind == "stringClassLabels" else int(v) for v in labels],
                                           label_output=label, probabilities_output=prob_name)


class _FakeLayer:
    """The name/type of a boundary conversion (NNLayerContext reads these)."""

    def __init__(self, name: str):
        self.name = name

    def WhichOneof(self, _: str) -> str:  # noqa: N802 (protobuf's spelling)
        return "copy"

    @property
    def copy(self) -> None:
        return None


def _declared_shape(at: Any, name: str, nd: bool = False) -> list[Any]:
    """The declared shape, a flexible axis as a symbol: ``N`` for the batch (axis 0 of an ND input, as
    the other frontends name it), ``<input>_d<axis>`` for any other."""
    shape: list[Any] = [int(d) for d in at.shape]
    flex = at.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        ranges = list(at.shapeRange.sizeRanges)
        if not shape:
            shape = [int(r.lowerBound) for r in ranges]
        shape = [("N" if nd and i == 0 else f"{name}_d{i}")
                 if i < len(ranges) and ranges[i].upperBound != ranges[i].lowerBound else d
                 for i, d in enumerate(shape)]
    elif flex == "enumeratedShapes" and not shape:
        shape = [int(d) for d in at.enumeratedShapes.shapes[0].shape]
    if not shape:
        raise ModelFileError(f"input {name!r} declares no shape")
    return shape


def _metadata(spec: Any) -> dict[str, str]:
    md = spec.description.metadata
    out = {"author": md.author, "license": md.license, "description": md.shortDescription,
           "version": md.versionString}
    out.update({str(k): str(v) for k, v in md.userDefined.items()})
    return {k: v for k, v in out.items() if v}
