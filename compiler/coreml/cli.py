"""``python -m kcc.coreml MODEL.mlmodel [NAME=FILE ...] [-o OUT.npz]`` (also ``kcc run``).

Runs a NeuralNetwork .mlmodel in the kcc numpy runtime, or an ML Program
(.mlpackage) through the IR interpreter. Each input comes from a
``.npy`` file, a ``.npz`` file (keys = input names) or, for image inputs, an image
file opened with PIL; a lone FILE without ``NAME=`` feeds the model's single input
(or, for a .npz, every input it names). Outputs are printed (name, shape, dtype
and a summary; classifiers show the label and the top-5 probabilities) or saved
to a .npz with ``-o``, written atomically. Errors print one ``kcc: error:`` line
and exit with status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import numpy as np

from kcc.errors import KccError, RuntimeModelError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one-line error and exit 1 instead of argparse's exit 2
        raise _ArgumentError(message)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Run a Core ML model (NeuralNetwork or ML Program) with the kcc numpy runtime.")
    p.add_argument("model", help="the .mlmodel file or .mlpackage directory")
    p.add_argument("inputs", nargs="*", metavar="[NAME=]FILE",
                   help="an input from a .npy, .npz or image file; NAME may be omitted for a single-input model")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs to this .npz instead of printing them")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m kcc.coreml") -> int:
    """Entry point; returns the process exit status (0 ok, 1 error)."""
    try:
        args = _parser(prog).parse_args(argv)
        from kcc.coreml.runtime import load_spec, predict
        from kcc.frontends.coreml.package import load_source

        # An .mlpackage is a directory; an ML Program's weights are beside its spec, so predict gets the path.
        is_package = os.path.isdir(args.model) or args.model.rstrip("/").lower().endswith(".mlpackage")
        spec = load_source(args.model)[0] if is_package else load_spec(args.model)
        feeds = _load_inputs(spec, args.inputs)
        by_path = is_package or spec.WhichOneof("Type") == "mlProgram"
        outputs = predict(args.model if by_path else spec, feeds)
        if args.output:
            _save_npz(args.output, outputs)
        else:
            _print_outputs(outputs)
        return 0
    except (KccError, _ArgumentError) as e:
        print(f"kcc: error: {e}", file=sys.stderr)
        return 1


def _load_inputs(spec, items: list[str]) -> dict[str, Any]:
    features = {f.name: f.type.WhichOneof("Type") for f in spec.description.input}
    feeds: dict[str, Any] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or name not in features:
            name, path = None, item
        if name is None and not path.lower().endswith(".npz"):
            if len(features) != 1:
                raise RuntimeModelError(
                    f"{path}: the model has {len(features)} inputs ({', '.join(features)}); "
                    f"write NAME={path}")
            name = next(iter(features))
        if name is None:
            feeds.update(_load_npz(path, list(features)))
        else:
            feeds[name] = _load_file(path, name, features[name])
    return feeds


def _load_file(path: str, name: str, kind: str) -> Any:
    lower = path.lower()
    if lower.endswith(_IMAGE_SUFFIXES):
        if kind != "imageType":
            raise RuntimeModelError(f"input '{name}' is a multiarray; give a .npy or .npz file, not {path}")
        from PIL import Image
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except OSError as e:
            raise RuntimeModelError(f"cannot read image {path}: {e}") from None
    if lower.endswith(".npz"):
        arrays = _load_npz(path, None)
        if name in arrays:
            return arrays[name]
        if len(arrays) == 1:
            return next(iter(arrays.values()))
        raise RuntimeModelError(f"{path} has no array named '{name}' (it has: {', '.join(arrays)})")
    if lower.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise RuntimeModelError(f"cannot read {path}: {e}") from None
    raise RuntimeModelError(f"{path}: inputs must be .npy, .npz or image files (png, jpg, ...)")


def _load_npz(path: str, names: list[str] | None) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise RuntimeModelError(f"cannot read {path}: {e}") from None
    if names is not None:
        arrays = {k: v for k, v in arrays.items() if k in names}
        if not arrays:
            raise RuntimeModelError(f"{path} has no array named after a model input ({', '.join(names)})")
    return arrays


def _as_arrays(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Outputs as arrays: a probability dict becomes NAME (values) and NAME.labels."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if isinstance(value, dict):
            arrays[name] = np.asarray(list(value.values()), dtype=np.float64)
            arrays[name + ".labels"] = np.asarray(list(value.keys()))
        else:
            arrays[name] = np.asarray(value)
    return arrays


def _save_npz(path: str, outputs: dict[str, Any]) -> None:
    """Write to a temporary file beside ``path``, then rename: never a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kcc-", suffix=".npz.tmp", dir=directory)
    except OSError as e:
        raise RuntimeModelError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **_as_arrays(outputs))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _summary(value: np.ndarray) -> str:
    if value.size == 0:
        return "(empty)"
    if not np.issubdtype(value.dtype, np.number):
        return np.array2string(value.reshape(-1)[:6], separator=", ")
    flat = value.reshape(-1).astype(np.float64)
    head = np.array2string(flat[:6], precision=5, separator=", ", suppress_small=False)
    more = " ..." if flat.size > 6 else ""
    return f"min {flat.min():.6g}  max {flat.max():.6g}  mean {flat.mean():.6g}  values {head}{more}"


def _print_outputs(outputs: dict[str, Any]) -> None:
    for name, value in outputs.items():
        if isinstance(value, dict):
            top = sorted(value.items(), key=lambda kv: -kv[1])[:5]
            print(f"{name}: top-5 " + ", ".join(f"{k}: {v:.6f}" for k, v in top))
        elif isinstance(value, (str, int, np.integer)):
            print(f"{name}: {value}")
        elif hasattr(value, "convert") and hasattr(value, "size"):  # PIL image output
            print(f"{name}: image {value.size[0]}x{value.size[1]} {value.mode}")
        else:
            arr = np.asarray(value)
            print(f"{name}: shape {list(arr.shape)} {arr.dtype}  {_summary(arr)}")
