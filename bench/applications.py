"""Every keras.applications model through kcc: .keras file -> ONNX, checked against Keras.

    python bench/applications.py [--models MobileNetV2,ResNet50] [--jobs 2] [--markdown docs/applications.md]

For each model (weights=None, classifier_activation=None, a small input size it
accepts): calibrate BatchNorm statistics on a varied batch of 32 (fresh statistics make
deep nets' logits vanish, and then anything "matches"), save to .keras, convert
the FILE to ONNX (timed), run onnxruntime with its default session options (every
graph optimization on, as users run it) and compare logits with Keras relative
to the output's largest magnitude; the same run with every optimization disabled
is reported beside it as a second opinion. The model's own float32 sensitivity is
measured by moving the input by 1e-7 relative; a conversion passes when its
error is below max(1e-4, 10 x sensitivity) (docs: /work/shared/STYLE.md). Also
counted: Transpose nodes inside the graph (not touching an input or output).

Each model runs in its own subprocess (isolation, memory); --jobs run at once.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# name -> (keras.applications constructor, input size, extra kwargs)
MODELS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "MobileNet": ("MobileNet", 64, {}),
    "MobileNetV2": ("MobileNetV2", 64, {}),
    "MobileNetV3Small": ("MobileNetV3Small", 64, {}),
    "MobileNetV3Large": ("MobileNetV3Large", 64, {}),
    "ResNet50": ("ResNet50", 64, {}),
    "ResNet101": ("ResNet101", 64, {}),
    "ResNet152": ("ResNet152", 64, {}),
    "ResNet50V2": ("ResNet50V2", 64, {}),
    "ResNet101V2": ("ResNet101V2", 64, {}),
    "ResNet152V2": ("ResNet152V2", 64, {}),
    "DenseNet121": ("DenseNet121", 64, {}),
    "DenseNet169": ("DenseNet169", 64, {}),
    "DenseNet201": ("DenseNet201", 64, {}),
    **{f"EfficientNetB{i}": (f"EfficientNetB{i}", 64, {}) for i in range(8)},
    **{f"EfficientNetV2B{i}": (f"EfficientNetV2B{i}", 64, {}) for i in range(4)},
    "EfficientNetV2S": ("EfficientNetV2S", 64, {}),
    "EfficientNetV2M": ("EfficientNetV2M", 64, {}),
    "EfficientNetV2L": ("EfficientNetV2L", 64, {}),
    "InceptionV3": ("InceptionV3", 75, {}),
    "InceptionResNetV2": ("InceptionResNetV2", 75, {}),
    "Xception": ("Xception", 71, {}),
    "VGG16": ("VGG16", 32, {}),
    "VGG19": ("VGG19", 32, {}),
    "NASNetMobile": ("NASNetMobile", 64, {}),
    "NASNetLarge": ("NASNetLarge", 64, {}),
    "ConvNeXtTiny": ("ConvNeXtTiny", 64, {}),
    "ConvNeXtSmall": ("ConvNeXtSmall", 64, {}),
    "ConvNeXtBase": ("ConvNeXtBase", 64, {}),
    "ConvNeXtLarge": ("ConvNeXtLarge", 64, {}),
    "ConvNeXtXLarge": ("ConvNeXtXLarge", 64, {}),
}


def build(name: str, size: int | None = None) -> Any:
    """The model with seeded random weights and logits out."""
    import keras

    ctor, default, kwargs = MODELS[name]
    size = size or default
    keras.utils.set_random_seed(0)
    return getattr(keras.applications, ctor)(weights=None, input_shape=(size, size, 3),
                                             classifier_activation=None, **kwargs)


def sample_inputs(model: Any, batch: int, seed: int):
    """Image-like inputs: 0..255 (models rescale internally when they have a Rescaling layer), else N(0, 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    has_rescaling = any(type(l).__name__ == "Rescaling" for l in model.layers)
    if has_rescaling:
        return (rng.random(shape) * 255).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def interior_transposes(onnx_model: Any) -> int:
    g = onnx_model.graph
    ins, outs = {i.name for i in g.input}, {o.name for o in g.output}
    return sum(1 for n in g.node if n.op_type == "Transpose" and not (set(n.input) & ins or set(n.output) & outs))


def measure(name: str, size: int | None = None) -> dict[str, Any]:
    """Build, calibrate, save, convert the file, compare. Returns one table row."""
    import numpy as np

    import kcc
    from kcc.testing import calibrate_batchnorm, max_rel_error, run_keras, run_onnx_both

    row: dict[str, Any] = {"model": name}
    t = time.perf_counter()
    model = build(name, size)
    row["input"] = "x".join(str(d) for d in model.inputs[0].shape[1:])
    row["params_m"] = model.count_params() / 1e6
    # 32 samples: with 8, the smallest late-stage feature maps give noisy variances and the deepest
    # nets (EfficientNetV2M/L) amplify float32 rounding ~1e4-fold, which hides any real error.
    calibrate_batchnorm(model, sample_inputs(model, 32, 1))
    row["build_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        t = time.perf_counter()
        onnx_model = kcc.compile(str(path), target="onnx")
        row["convert_s"] = time.perf_counter() - t
    x = sample_inputs(model, 2, 0)
    ref = run_keras(model, [x])[0]
    outputs, unoptimized = run_onnx_both(onnx_model, [x])
    rng = np.random.default_rng(2)
    x2 = (x * (1 + 1e-7 * rng.choice([-1.0, 1.0], x.shape))).astype(np.float32)
    ref2 = run_keras(model, [x2])[0]
    row["max_abs_logit"] = float(np.max(np.abs(ref)))
    row["rel_error"] = max_rel_error(ref, outputs[0])
    row["rel_error_unoptimized"] = max_rel_error(ref, unoptimized[0])
    row["sensitivity"] = max_rel_error(ref, ref2)
    row["tolerance"] = max(1e-4, 10 * row["sensitivity"])
    row["ok"] = bool(row["rel_error"] <= row["tolerance"])
    row["onnx_nodes"] = len(onnx_model.graph.node)
    row["transposes_inside"] = interior_transposes(onnx_model)
    row["transposes_total"] = sum(1 for n in onnx_model.graph.node if n.op_type == "Transpose")
    return row


def _run_child(name: str, size: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name] + (["--size", str(size)] if size else [])
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": name, "error": err[:300], "convert_s": time.perf_counter() - t}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# keras.applications through kcc (ONNX)", "",
             "Generated by `python bench/applications.py --markdown docs/applications.md`. Each model is built with "
             "`weights=None, classifier_activation=None`, BatchNorm statistics calibrated on a varied batch, saved to "
             "`.keras`, and the file converted to ONNX. *rel error* is max |keras - onnxruntime| / max |keras| on "
             "the logits, with onnxruntime's default session options (every graph optimization on, as users "
             "run it); *optimizations off* is the same with `ORT_DISABLE_ALL`, a second opinion only; "
             "*sensitivity* is how far the Keras logits move (same measure) when the input moves by "
             "1e-7 relative: the model's own float32 noise floor. *ok* means error <= max(1e-4, 10 x sensitivity). "
             "*Transposes inside* counts Transpose nodes not touching the graph's input or output (the NHWC "
             "boundary transposes are the only others). *convert* is wall time of `kcc.compile(path)` including "
             "reading the `.keras` file, with two models converting at once on a 2-core machine.", "",
             "ResNet*V2's stem is ZeroPadding2D -> MaxPooling2D on a conv output that is often negative; "
             "onnxruntime's default Pad fusion would fill those borders with MaxPool's -inf padding "
             "(passes/lower_onnx_pad_max_pool.py prevents it). With random weights the ReLU after the next "
             "BatchNorm hides the borders from the logits, so tests/layers/test_layers_applications.py also "
             "compares ResNet50V2's stem output.", "",
             "| model | input | params (M) | convert (s) | ONNX nodes | Transposes inside | max abs logit | "
             "rel error | optimizations off | sensitivity | ok |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | | | | | | | | | **failed**: {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['input']} | {r['params_m']:.1f} | {r['convert_s']:.2f} | "
                     f"{r['onnx_nodes']} | {r['transposes_inside']} | {r['max_abs_logit']:.3g} | "
                     f"{r['rel_error']:.2e} | {r['rel_error_unoptimized']:.2e} | {r['sensitivity']:.2e} | "
                     f"{'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--size", type=int, default=None, help="input size for every model (default: per model)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--markdown", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("ROW " + json.dumps(measure(args.one, args.size)), flush=True)
        return 0
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    rows: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, row in zip(names, pool.map(lambda n: _run_child(n, args.size), names)):
            rows[name] = row
            status = row.get("error") or (f"err {row['rel_error']:.2e} sens {row['sensitivity']:.2e} "
                                          f"T {row['transposes_inside']} {row['convert_s']:.2f}s "
                                          f"{'ok' if row['ok'] else 'MISMATCH'}")
            print(f"{name:20s} {status}", flush=True)
    table = markdown([rows[n] for n in names])
    if args.markdown:
        Path(args.markdown).write_text(table)
    else:
        print(table)
    return 0 if all(r.get("ok") for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
