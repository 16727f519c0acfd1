"""keras.applications -> coremltools 9 ML Program (.mlpackage) -> kcc -> ONNX, checked against Keras.

    python bench/mlprogram_back.py [--models MobileNetV2,ResNet50] [--precision fp32|fp16|both]
                                   [--jobs 1] [--markdown docs/mlprogram.md]

For each model (weights=None, classifier_activation=None, the input size of
bench/applications.py): calibrate BatchNorm statistics on a varied batch (fresh
statistics make deep nets' logits vanish, and then anything "matches"), convert
with ``coremltools.convert(model, convert_to="mlprogram", compute_precision=...)``
(timed), compile the .mlpackage to ONNX with kcc (timed), run onnxruntime with
its default session options and ``kcc.coreml.predict`` (the IR interpreter, what
``kcc run`` does), and compare logits with Keras relative to the largest
magnitude. float32 passes at max(1e-4, 10 x the model's own sensitivity to a
1e-7 input change). float16 packages compute every intermediate in float16, so
their floor is measured on Keras itself (the same model and weights under the
"float16" dtype policy against float32): they pass at max(1e-2, 3 x that
floor). Each model runs in its own subprocess.

The table goes between the markers in the --markdown file (the rest of the
document is kept).
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
sys.path.insert(0, str(Path(__file__).parent))

from applications import MODELS, build, sample_inputs  # noqa: E402

from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:mlprogram_back begin -->", "<!-- bench:mlprogram_back end -->"


def measure(name: str, precision: str) -> dict[str, Any]:
    import logging
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore")
    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import kcc
    from kcc.coreml import predict
    from kcc.frontends.coreml import load_mlprogram
    from kcc.testing import calibrate_batchnorm, max_rel_error, run_keras
    import onnxruntime as ort

    row: dict[str, Any] = {"model": name, "precision": precision}
    model = build(name)
    row["input"] = "x".join(str(d) for d in model.inputs[0].shape[1:])
    calibrate_batchnorm(model, sample_inputs(model, 32, 1))
    x = sample_inputs(model, 2, 0)
    ref = run_keras(model, [x])[0]
    rng = np.random.default_rng(2)
    x2 = (x * (1 + 1e-7 * rng.choice([-1.0, 1.0], x.shape))).astype(np.float32)
    row["sensitivity"] = max_rel_error(ref, run_keras(model, [x2])[0])
    row["fp16_floor"] = fp16_floor(name, model, x, ref) if precision == "fp16" else None
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / f"{name}.mlpackage"
        t = time.perf_counter()
        prec = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
        ml = ct.convert(model, convert_to="mlprogram", source="tensorflow", compute_precision=prec)
        ml.save(str(pkg))
        row["coremltools_s"] = time.perf_counter() - t
        t = time.perf_counter()
        onnx_model = kcc.compile(str(pkg), target="onnx")
        row["kcc_s"] = time.perf_counter() - t
        graph = load_mlprogram(pkg)
        in_name, out_name = graph.inputs[0].name, graph.output_names[0]
        row["ir_nodes"] = len(graph)
        sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {in_name: x})[0]
        t = time.perf_counter()
        ran = predict(str(pkg), {in_name: x})[out_name]
        row["run_s"] = time.perf_counter() - t
    row["onnx_nodes"] = len(onnx_model.graph.node)
    row["max_abs_logit"] = float(np.max(np.abs(ref)))
    row["rel_error"] = max_rel_error(ref, got)
    row["run_rel_error"] = max_rel_error(ref, ran)
    row["tolerance"] = (max(1e-4, 10 * row["sensitivity"]) if precision == "fp32"
                        else max(1e-2, 3 * row["fp16_floor"]))
    row["ok"] = bool(row["rel_error"] <= row["tolerance"] and row["run_rel_error"] <= row["tolerance"])
    return row


def fp16_floor(name: str, model: Any, x: Any, ref: Any) -> float:
    """How far Keras itself moves when the same model computes in float16 (same weights)."""
    import keras
    import numpy as np

    from kcc.testing import max_rel_error

    keras.config.set_dtype_policy("float16")
    try:
        half = build(name)
    finally:
        keras.config.set_dtype_policy("float32")
    half.set_weights(model.get_weights())
    return max_rel_error(ref, np.asarray(half(x.astype(np.float16), training=False), dtype=np.float32))


def _run_child(name: str, precision: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name, "--precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and not ln.startswith(("I0000", "W0000"))]
    return {"model": name, "precision": precision, "error": (lines or ["no output"])[-1][:300]}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [BEGIN, "",
             "| model | input | precision | coremltools (s) | kcc (s) | IR nodes | ONNX nodes | max abs logit | "
             "rel error (onnxruntime) | rel error (kcc run) | sensitivity | Keras fp16 vs fp32 | ok |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['precision']} | | | | | | | | | | **failed**: {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['input']} | {r['precision']} | {r['coremltools_s']:.1f} | "
                     f"{r['kcc_s']:.2f} | {r['ir_nodes']} | {r['onnx_nodes']} | {r['max_abs_logit']:.3g} | "
                     f"{r['rel_error']:.2e} | {r['run_rel_error']:.2e} | {r['sensitivity']:.2e} | "
                     f"{'' if r.get('fp16_floor') is None else format(r['fp16_floor'], '.2e')} | "
                     f"{'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--precision", choices=["fp32", "fp16", "both"], default="fp32")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--markdown", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("ROW " + json.dumps(measure(args.one, args.precision)), flush=True)
        return 0
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    precisions = ["fp32", "fp16"] if args.precision == "both" else [args.precision]
    jobs = [(n, pr) for n in names for pr in precisions]
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for (name, pr), row in zip(jobs, pool.map(lambda j: _run_child(*j), jobs)):
            rows.append(row)
            status = row.get("error") or (f"onnx {row['rel_error']:.2e} run {row['run_rel_error']:.2e} "
                                          f"sens {row['sensitivity']:.2e} kcc {row['kcc_s']:.2f}s "
                                          f"{'ok' if row['ok'] else 'MISMATCH'}")
            print(f"{name:20s} {pr} {status}", flush=True)
    table = markdown(rows)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    else:
        print(table)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
