"""The model's interface: input and output features, image inputs, the classifier, metadata.

Shapes: in the rank-5 layout a multiarray feature is declared without its batch
axis, as the old converter did: IR ``(N, F)`` is ``(F,)``, ``(N, C, L)`` is
``(C, 1, L)`` and ``(N, C, H, W)`` is ``(C, H, W)``. In the ND layout the
declared shape is the IR shape with batch 1. An input named in
``image_input_names`` (IR ``(N, C, H, W)``, C = 1 or 3) is an image of W x H
pixels, grayscale or RGB/BGR, with a scaler (``image_scale`` first, then the
channel biases) as its preprocessing.

Dynamic input axes (flexible.py) are declared at their default size with a
``shapeRange`` / ``enumeratedShapes`` (images: ``imageSizeRange`` /
``enumeratedSizes``), specification 3. Outputs are declared at the default
sizes: Core ML reads an output's declared shape as a hint, the array it
returns has the computed shape.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from kcc.backends.coreml.context import CoremlContext
from kcc.backends.coreml.flexible import declare_array, declare_image, flexibility
from kcc.backends.coreml.options import CoremlOptions
from kcc.errors import OptionError
from kcc.ir import Graph, Value


def _declared_shape(ctx: CoremlContext, v: Value) -> list[int]:
    if ctx.nd:
        return list(ctx.dims(v))
    c, h, w = ctx.chw(v)
    return [c] if v.rank == 2 else [c, h, w]


def _array_feature(ctx: CoremlContext, feature: Any, v: Value, flexible: bool = False) -> None:
    arr = feature.type.multiArrayType
    default = _declared_shape(ctx, v)
    if not ctx.data_dependent(v):  # an output sized by its values (whereNonZero) declares no shape
        arr.shape.extend(default)
    arr.dataType = type(arr).ArrayDataType.Value("FLOAT32")
    if flexible:
        declare_array(arr, ctx.nd, v, default, ctx.flexible)
        _require_flexible(ctx, v)


def _require_flexible(ctx: CoremlContext, v: Value) -> None:
    what = flexibility(ctx.nd, v, ctx.flexible)
    if what is not None:
        ctx.require(3, None, f"flexible input shapes ({what}; input_name_shape_dict fixes them)")


def _image_feature(ctx: CoremlContext, spec: Any, network: Any, feature: Any, v: Value,
                   opts: CoremlOptions) -> None:
    name = feature.name
    if v.rank != 4 or v.shape[1] not in (1, 3):
        raise OptionError(f"image_input_names names {name!r}, but its shape {v.type} (channels-first) is not "
                          f"an image of 1 (grayscale) or 3 (color) channels")
    _, c, h, w = ctx.dims(v)
    img = feature.type.imageType
    img.width, img.height = int(w), int(h)
    declare_image(img, v, ctx.flexible)
    _require_flexible(ctx, v)
    bgr = bool(opts.image_option("is_bgr", name))
    space = "GRAYSCALE" if c == 1 else ("BGR" if bgr else "RGB")
    img.colorSpace = type(img).ColorSpace.Value(space)
    pre = network.preprocessing.add()
    pre.featureName = name
    sc = pre.scaler
    sc.channelScale = float(opts.image_option("image_scale", name))
    if c == 1:
        sc.grayBias = float(opts.image_option("gray_bias", name))
    else:
        sc.redBias = float(opts.image_option("red_bias", name))
        sc.greenBias = float(opts.image_option("green_bias", name))
        sc.blueBias = float(opts.image_option("blue_bias", name))


def add_inputs(ctx: CoremlContext, spec: Any, network: Any, graph: Graph, opts: CoremlOptions) -> None:
    names = [v.name for v in graph.inputs]
    unknown = [n for n in opts.image_input_names if n not in names]
    if unknown:
        raise OptionError(f"image_input_names names {unknown}, but the model's inputs are {names} "
                          f"(rename them with input_names)")
    # Without the option, a Core ML source's image inputs stay images: the IR input holds its RGB (or gray)
    # pixels and the source's preprocessing is IR ops after it, so the image is declared with no scaler.
    images = opts.image_input_names or [n for n in graph.meta.get("image_inputs", {}) if n in names]
    for v in graph.inputs:
        feature = spec.description.input.add()
        feature.name = v.name
        if v.name in images:
            _image_feature(ctx, spec, network, feature, v, opts)
        else:
            _array_feature(ctx, feature, v, flexible=True)


def with_source_classifier(graph: Graph, opts: CoremlOptions) -> CoremlOptions:
    """``opts`` with a Core ML source's classifier (``graph.classifier``: labels, label and probabilities
    output names) when no ``class_labels`` option overrides it, so a re-emitted classifier stays one."""
    c = graph.classifier
    if opts.class_labels is not None or c is None:
        return opts
    return replace(opts, class_labels=list(c.labels), predicted_feature_name=c.label_output,
                   predicted_probabilities_output=c.probabilities_output)


def add_outputs(ctx: CoremlContext, spec: Any, network: Any, graph: Graph, opts: CoremlOptions) -> None:
    labels = opts.class_labels
    probs_name = None
    if labels is not None:
        probs_name = opts.predicted_probabilities_output or graph.output_names[0]
        if probs_name not in graph.output_names:
            raise OptionError(f"predicted_probabilities_output={probs_name!r} is not a model output "
                              f"(outputs: {graph.output_names})")
        if opts.predicted_feature_name in graph.output_names:
            raise OptionError(f"predicted_feature_name={opts.predicted_feature_name!r} is already an output name")
    for v, name in zip(graph.outputs, graph.output_names):
        feature = spec.description.output.add()
        feature.name = name
        if name == probs_name:
            size = 1
            for d in ctx.dims(v)[1:]:
                size *= d
            if size != len(labels):
                raise OptionError(f"class_labels has {len(labels)} labels but output {name!r} has {size} values "
                                  f"(shape {v.type})")
            dictionary = feature.type.dictionaryType
            (dictionary.int64KeyType if isinstance(labels[0], int) else dictionary.stringKeyType).SetInParent()
        else:
            _array_feature(ctx, feature, v)
    if labels is None:
        return
    label = spec.description.output.add()
    label.name = opts.predicted_feature_name
    (label.type.int64Type if isinstance(labels[0], int) else label.type.stringType).SetInParent()
    spec.description.predictedFeatureName = opts.predicted_feature_name
    spec.description.predictedProbabilitiesName = probs_name
    network.labelProbabilityLayerName = probs_name
    (network.int64ClassLabels if isinstance(labels[0], int) else network.stringClassLabels).vector.extend(labels)


# graph.metadata (a Core ML source's, set by its frontend) -> the Core ML field; other keys are userDefined.
_SOURCE_METADATA = {"author": "author", "license": "license", "description": "shortDescription",
                    "version": "versionString"}


def add_metadata(spec: Any, opts: CoremlOptions, graph: Graph | None = None) -> None:
    meta = spec.description.metadata
    for key, value in (graph.metadata if graph is not None else {}).items():   # the options override these
        if key in _SOURCE_METADATA:
            setattr(meta, _SOURCE_METADATA[key], value)
        else:
            meta.userDefined[key] = value
    fields = {"author": "author", "license": "license", "short_description": "shortDescription",
              "version": "versionString"}
    for key, value in opts.metadata.items():
        setattr(meta, fields[key], value)
    meta.userDefined["com.github.kcc.version"] = _version()
    for table, features, what in ((opts.input_descriptions, spec.description.input, "input_descriptions"),
                                  (opts.output_descriptions, spec.description.output, "output_descriptions")):
        by_name = {f.name: f for f in features}
        for name, text in table.items():
            if name not in by_name:
                raise OptionError(f"{what} describes {name!r}, which is not a model "
                                  f"{what.split('_')[0]} ({', '.join(by_name)})")
            by_name[name].shortDescription = text


def _version() -> str:
    from kcc.version import __version__
    return __version__
