"""The Core ML target's options: defaults, checks and the CLI flags.

The meanings are those of coremltools 5's ``converters.keras.convert``; the
names are the same. Every check raises ``OptionError`` naming the option.
Per-input options (``is_bgr``, the biases, ``image_scale``) take one value for
every image input or a dict from input name to value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcc.errors import OptionError

DEFAULTS: dict[str, Any] = {
    "image_input_names": None,
    "is_bgr": False,
    "red_bias": 0.0,
    "green_bias": 0.0,
    "blue_bias": 0.0,
    "gray_bias": 0.0,
    "image_scale": 1.0,
    "class_labels": None,
    "predicted_feature_name": None,
    "predicted_probabilities_output": None,
    "model_precision": "float32",
    "add_custom_layers": False,
    "respect_trainable": False,
    "use_float_arraytype": True,
    "minimum_deployment_target": None,
    "author": None,
    "license": None,
    "short_description": None,
    "version": None,
    "input_descriptions": None,
    "output_descriptions": None,
}

_PER_INPUT = ("is_bgr", "red_bias", "green_bias", "blue_bias", "gray_bias", "image_scale")
_TEXT = ("author", "license", "short_description", "version", "predicted_feature_name",
         "predicted_probabilities_output")


@dataclass
class CoremlOptions:
    image_input_names: list[str] = field(default_factory=list)
    per_input: dict[str, Any] = field(default_factory=dict)   # option -> value or {input: value}
    class_labels: list[str] | list[int] | None = None
    predicted_feature_name: str = "classLabel"
    predicted_probabilities_output: str | None = None
    float16: bool = False
    add_custom_layers: bool = False
    respect_trainable: bool = False
    target_version: int | None = None
    target_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    input_descriptions: dict[str, str] = field(default_factory=dict)
    output_descriptions: dict[str, str] = field(default_factory=dict)

    def image_option(self, key: str, name: str) -> Any:
        value = self.per_input[key]
        if isinstance(value, dict):
            return value.get(name, DEFAULTS[key])
        return value


def _names(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise OptionError(f"{key} must be a string or a list of strings, got {value!r}")


def _check_per_input(key: str, value: Any, images: list[str]) -> None:
    kind = bool if key == "is_bgr" else (int, float)
    values = value.values() if isinstance(value, dict) else [value]
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(images))
        if unknown:
            raise OptionError(f"{key} names {unknown}, which are not image inputs "
                              f"(image_input_names={images})")
    for v in values:
        if isinstance(v, bool) != (kind is bool) or not isinstance(v, kind):
            raise OptionError(f"{key} must be {'True/False' if kind is bool else 'a number'} "
                              f"or a dict from image input name to one, got {value!r}")


def _labels(value: Any) -> list[str] | list[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise OptionError(f"class_labels={str(value)!r} is neither a list nor a file of labels (one a line)")
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif isinstance(value, (list, tuple)):
        labels = list(value)
    else:
        raise OptionError(f"class_labels must be a list of labels or a path to a file of labels, got {value!r}")
    if not labels:
        raise OptionError("class_labels is empty")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return [int(v) for v in labels]
    if all(isinstance(v, str) for v in labels):
        return [str(v) for v in labels]
    raise OptionError(f"class_labels must be all strings or all integers, got {labels!r}")


def _descriptions(key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise OptionError(f"{key} must be a dict from feature name to description, got {value!r}")
    return dict(value)


def parse_options(options: dict[str, Any]) -> CoremlOptions:
    """Check the Core ML options in ``options`` (the merged compile options) and normalize them."""
    from kcc.backends.coreml.spec_version import target_version

    o = {k: options.get(k, d) for k, d in DEFAULTS.items()}
    images = _names("image_input_names", o["image_input_names"])
    for key in _PER_INPUT:
        _check_per_input(key, o[key], images)
    for key in _TEXT:
        if o[key] is not None and not isinstance(o[key], str):
            raise OptionError(f"{key} must be a string, got {o[key]!r}")
    precision = o["model_precision"]
    if precision not in ("float32", "float16"):
        raise OptionError(f"model_precision={precision!r}: use 'float32' or 'float16'")
    for key in ("add_custom_layers", "respect_trainable", "use_float_arraytype"):
        if not isinstance(o[key], bool):
            raise OptionError(f"{key} must be True or False, got {o[key]!r}")
    if not o["use_float_arraytype"]:
        raise OptionError("use_float_arraytype=False (double multiarrays) is not supported; kcc always "
                          "declares float32 multiarrays (the flag is kept for compatibility)")
    if o["respect_trainable"] and precision == "float16":
        raise OptionError("respect_trainable=True with model_precision='float16': Core ML cannot update "
                          "float16 weights; use float32")
    funcs = options.get("custom_conversion_functions")
    if funcs is not None and (not isinstance(funcs, dict) or not all(callable(f) for f in funcs.values())):
        raise OptionError("custom_conversion_functions must be a dict from Keras class name to a function")
    version, tname = target_version(o["minimum_deployment_target"])
    return CoremlOptions(
        image_input_names=images,
        per_input={k: o[k] for k in _PER_INPUT},
        class_labels=_labels(o["class_labels"]),
        predicted_feature_name=o["predicted_feature_name"] or "classLabel",
        predicted_probabilities_output=o["predicted_probabilities_output"],
        float16=precision == "float16",
        add_custom_layers=o["add_custom_layers"],
        respect_trainable=o["respect_trainable"],
        target_version=version,
        target_name=tname,
        metadata={k: o[k] for k in ("author", "license", "short_description", "version") if o[k] is not None},
        input_descriptions=_descriptions("input_descriptions", o["input_descriptions"]),
        output_descriptions=_descriptions("output_descriptions", o["output_descriptions"]),
    )


# ------------------------------------------------------------------ CLI
def _float_or_dict(text: str) -> Any:
    """``0.5`` or ``image=0.5,mask=1`` (per input)."""
    try:
        if "=" not in text:
            return float(text)
        return {k: float(v) for k, v in (item.split("=", 1) for item in text.split(","))}
    except ValueError:
        import argparse
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or NAME=NUMBER,...") from None


def add_cli_arguments(group: Any) -> None:
    g = group
    g.add_argument("--image-input-names", nargs="+", metavar="NAME", help="inputs to declare as images")
    g.add_argument("--is-bgr", action="store_true", help="color images are BGR (default RGB)")
    for color in ("red", "green", "blue", "gray"):
        g.add_argument(f"--{color}-bias", type=_float_or_dict, metavar="B",
                       help=f"{color} bias added after scaling (a number or NAME=B,...)")
    g.add_argument("--image-scale", type=_float_or_dict, metavar="S",
                   help="scale applied to image pixels before the biases (e.g. 0.00392157 = 1/255)")
    g.add_argument("--class-labels", nargs="+", metavar="LABEL",
                   help="class labels (or one path to a file with one label a line): makes a classifier")
    g.add_argument("--predicted-feature-name", metavar="NAME", help="classifier label output (default classLabel)")
    g.add_argument("--predicted-probabilities-output", metavar="NAME",
                   help="classifier output holding the probabilities (default: the model's output)")
    g.add_argument("--model-precision", choices=("float32", "float16"), help="weight precision (default float32)")
    g.add_argument("--add-custom-layers", action="store_true", help="emit unknown layers as Core ML custom layers")
    g.add_argument("--respect-trainable", action="store_true",
                   help="make trainable Dense/Conv layers updatable (loss and optimizer from the compiled model)")
    g.add_argument("--minimum-deployment-target", metavar="iOSNN",
                   help="oldest OS the model must run on (iOS11 ... iOS16); the spec version follows it")
    for key in ("author", "license", "short-description", "version"):
        g.add_argument(f"--{key}", metavar="TEXT", help=f"model metadata: {key.replace('-', ' ')}")
    g.add_argument("--input-description", action="append", metavar="NAME=TEXT", help="describe an input")
    g.add_argument("--output-description", action="append", metavar="NAME=TEXT", help="describe an output")


def _pairs(items: list[str] | None, flag: str) -> dict[str, str] | None:
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise OptionError(f"{flag} {item!r}: write NAME=TEXT")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def options_from_cli(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.emit != "coreml":
        return out
    labels = args.class_labels
    if labels is not None and len(labels) == 1 and Path(labels[0]).is_file():
        labels = labels[0]
    values = {
        "image_input_names": args.image_input_names, "is_bgr": args.is_bgr or None,
        "red_bias": args.red_bias, "green_bias": args.green_bias, "blue_bias": args.blue_bias,
        "gray_bias": args.gray_bias, "image_scale": args.image_scale, "class_labels": labels,
        "predicted_feature_name": args.predicted_feature_name,
        "predicted_probabilities_output": args.predicted_probabilities_output,
        "model_precision": args.model_precision, "add_custom_layers": args.add_custom_layers or None,
        "respect_trainable": args.respect_trainable or None,
        "minimum_deployment_target": args.minimum_deployment_target,
        "author": args.author, "license": args.license, "short_description": args.short_description,
        "version": args.version,
        "input_descriptions": _pairs(args.input_description, "--input-description"),
        "output_descriptions": _pairs(args.output_description, "--output-description"),
    }
    out.update({k: v for k, v in values.items() if v is not None})
    return out
