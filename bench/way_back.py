"""The way back: keras.applications -> ONNX and Core ML -> Keras/TensorFlow, kcc beside onnx2tf.

    python bench/way_back.py [--models all|MobileNetV2,ResNet50,...] [--jobs 1]
                             [--onnx2tf-python bench/.venv-onnx2tf/bin/python] [--onnx2tf-timeout 600]
                             [--no-coreml] [--markdown docs/way_back.md] [--json rows.json]

Every model bench/applications.py enumerates (the whole keras.applications
family; weights=None, classifier_activation=None, its input size), in one run:

1. ``prep`` (subprocess): build it, calibrate BatchNorm statistics on a varied
   batch (STYLE.md), record Keras's logits on two inputs and the model's own
   float32 sensitivity (input moved by 1e-7 relative), write the ONNX file with
   kcc (``input_layout="nchw"``: the channels-first file onnx2tf expects) and,
   unless --no-coreml, kcc's Core ML NeuralNetwork ``.mlmodel``.
2. ``kcc`` (subprocess per source): ``kcc.compile(file, target="keras")``, timed;
   run the Keras model, error against the source's logits.
3. ``onnx2tf`` (subprocess, in its own venv: onnx2tf pins numpy 1.26 and
   TensorFlow 2.19, which conflict with kcc's set): ``onnx2tf.convert`` of the
   same ONNX file, timed; run the model it returns. onnx2tf is slow (minutes per
   model on a loaded 2-core machine), so its stage has its own timeout, and a
   model it does not finish in time is tabled as "timeout after N s", never skipped.

Each stage reports the peak resident memory of its whole process (ru_maxrss,
TensorFlow's import included) and the Transpose ops in the result, counted the
same way for both: the ops of type Transpose in the TensorFlow graph of the
model traced on its input (what TensorFlow runs). Errors are relative to the
largest logit; a conversion passes at max(1e-4, 10 x sensitivity).

The table goes between the markers in the --markdown file (the rest is kept);
it (and --json) is rewritten after every model, so a long run shows its rows
as they come.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from applications import MODELS  # noqa: E402
from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:way_back begin -->", "<!-- bench:way_back end -->"
KCC_TIMEOUT = 1800  # a prep or kcc stage; onnx2tf's is --onnx2tf-timeout


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rel_error(ref, got) -> float:
    import numpy as np

    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return float("inf")
    return float(np.max(np.abs(ref - got)) / max(float(np.max(np.abs(ref))), 1e-30))


def _transposes(fn, x) -> int:
    """Transpose ops in the TensorFlow graph of ``fn`` traced on an input like ``x``."""
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(x.shape[1:]), tf.float32)
    graph = tf.function(lambda t: fn(t)).get_concrete_function(spec).graph
    count = sum(op.type == "Transpose" for op in graph.get_operations())
    for f in graph.as_graph_def().library.function:
        count += sum(n.op == "Transpose" for n in f.node_def)
    return count


# ------------------------------------------------------------------- stages
def stage_prep(name: str, work: Path, coreml: bool) -> dict[str, Any]:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from applications import build, sample_inputs

    import kcc
    from kcc.testing import calibrate_batchnorm, run_keras

    model = build(name)
    calibrate_batchnorm(model, sample_inputs(model, 32, 1))
    x = sample_inputs(model, 2, 0)
    ref = run_keras(model, [x])[0]
    rng = np.random.default_rng(2)
    x2 = (x * (1 + 1e-7 * rng.choice([-1.0, 1.0], x.shape))).astype(np.float32)
    np.save(work / "x.npy", x)
    np.save(work / "ref.npy", ref)
    row = {"input": "x".join(str(d) for d in x.shape[1:]), "sensitivity": _rel_error(ref, run_keras(model, [x2])[0]),
           "max_abs_logit": float(np.max(np.abs(ref)))}
    kcc.save(kcc.compile(model, target="onnx", input_layout="nchw"), work / "model.onnx")
    if coreml:
        kcc.save(kcc.compile(model, target="coreml"), work / "model.mlmodel")
    return row


def _feed(model, x):
    """``x`` (NHWC) in the layout ``model`` takes: as it is, or channels-first."""
    import numpy as np

    shape = tuple(model.inputs[0].shape)
    return x if shape[-1] == x.shape[-1] else np.transpose(x, (0, 3, 1, 2))


def stage_kcc(source: str, work: Path) -> dict[str, Any]:
    import numpy as np

    import kcc

    x, ref = np.load(work / "x.npy"), np.load(work / "ref.npy")
    path = work / ("model.onnx" if source == "onnx" else "model.mlmodel")
    t = time.perf_counter()
    model = kcc.compile(str(path), target="keras")
    seconds = time.perf_counter() - t
    feed = _feed(model, x)
    got = model.predict(feed, verbose=0)
    return {"seconds": seconds, "rel_error": _rel_error(ref, got), "transposes": _transposes(model, feed),
            "peak_mb": _peak_mb(), "layers": len(model.layers)}


def stage_onnx2tf(work: Path) -> dict[str, Any]:
    import numpy as np
    import onnx2tf

    x, ref = np.load(work / "x.npy"), np.load(work / "ref.npy")
    out = work / "onnx2tf"
    t = time.perf_counter()
    model = onnx2tf.convert(input_onnx_file_path=str(work / "model.onnx"), output_folder_path=str(out),
                            non_verbose=True)
    seconds = time.perf_counter() - t
    shape = tuple(model.inputs[0].shape)
    feed = _feed(model, x)
    got = np.asarray(model(feed))
    return {"seconds": seconds, "rel_error": _rel_error(ref, got), "transposes": _transposes(model, feed),
            "peak_mb": _peak_mb(), "input_shape": "x".join(str(d) for d in shape[1:])}


# ------------------------------------------------------------------ driver
def _child(python: str, args: list[str], timeout: float = KCC_TIMEOUT) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--stage"] + args
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s", "timeout": True}
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    lines = [ln for ln in proc.stderr.strip().splitlines()
             if ln.strip() and not ln.startswith(("I0000", "W0000", "WARNING"))]
    return {"error": (lines or [f"exit {proc.returncode}, no output"])[-1][:240]}


def measure(name: str, onnx2tf_python: str | None, coreml: bool, onnx2tf_timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"way-back-{name}-") as tmp:
        work = Path(tmp)
        row: dict[str, Any] = {"model": name, **_child(sys.executable, ["prep", name, str(work)] +
                                                       (["--coreml"] if coreml else []))}
        if "error" in row:
            return row
        row["kcc_onnx"] = _child(sys.executable, ["kcc", "onnx", str(work)])
        if coreml:
            row["kcc_coreml"] = _child(sys.executable, ["kcc", "coreml", str(work)])
        if onnx2tf_python:
            row["onnx2tf"] = _child(onnx2tf_python, ["onnx2tf", name, str(work)], onnx2tf_timeout)
    return row


def _cell(r: dict[str, Any] | None, tol: float) -> list[str]:
    if r is None:
        return ["not run", "", "", "", ""]
    if r.get("timeout"):
        return [r["error"], "", "", "", ""]
    if "error" in r:
        return [f"**no**: {r['error']}".replace("|", "/"), "", "", "", ""]
    ok = "yes" if r["rel_error"] <= tol else "**wrong**"
    return [ok, f"{r['rel_error']:.1e}", f"{r['seconds']:.1f}", f"{r['peak_mb']:.0f}", str(r["transposes"])]


LABELS = (("kcc ONNX -> Keras", "kcc_onnx"), ("kcc Core ML NN -> Keras", "kcc_coreml"),
          ("onnx2tf ONNX -> TF", "onnx2tf"))


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per converter: how many models it converted within tolerance, and how many it did not finish."""
    out = []
    for label, key in LABELS:
        ran = [r for r in rows if key in r]
        if not ran:
            continue
        ok = sum("error" not in r[key] and r[key]["rel_error"] <= max(1e-4, 10 * r["sensitivity"]) for r in ran)
        timeouts = sum(bool(r[key].get("timeout")) for r in ran)
        failed = sum("error" in r[key] and not r[key].get("timeout") for r in ran)
        out.append(f"- {label}: {ok} of {len(ran)} models within tolerance, {failed} failed, {timeouts} timed out")
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["model", "input", "tolerance", "converter", "converts", "rel error", "time (s)", "peak MB", "Transposes"]
    lines = [BEGIN, ""] + _summary(rows) + ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | | (source) | **prep failed**: {r['error']} | | | | |")
            continue
        tol = max(1e-4, 10 * r["sensitivity"])
        for label, key in LABELS:
            if key not in r:
                continue
            lines.append(f"| {r['model']} | {r['input']} | {tol:.0e} | {label} | " + " | ".join(_cell(r[key], tol))
                         + " |")
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="all",
                   help="'all' (every model of bench/applications.py, the default) or comma-separated names; "
                        "empty: only --rows")
    p.add_argument("--jobs", type=int, default=1, help="models measured at once (each in its own processes)")
    p.add_argument("--onnx2tf-python", default=str(HERE / ".venv-onnx2tf" / "bin" / "python"))
    p.add_argument("--onnx2tf-timeout", type=float, default=600.0,
                   help="seconds onnx2tf gets per model; past it the row says 'timeout after N s'")
    p.add_argument("--no-coreml", action="store_true")
    p.add_argument("--markdown", default=None)
    p.add_argument("--json", default=None, help="also write the raw rows here")
    p.add_argument("--rows", nargs="*", default=[], help="rows from earlier runs' --json files, tabled first")
    p.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--coreml", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        kind, rest = args.stage[0], args.stage[1:]
        if kind == "prep":
            row = stage_prep(rest[0], Path(rest[1]), args.coreml)
        elif kind == "kcc":
            row = stage_kcc(rest[0], Path(rest[1]))
        else:
            row = stage_onnx2tf(Path(rest[1]))
        print("ROW " + json.dumps(row), flush=True)
        return 0
    names = list(MODELS) if args.models == "all" else [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    o2t = args.onnx2tf_python if Path(args.onnx2tf_python).exists() else None
    if o2t is None:
        print(f"onnx2tf venv not found at {args.onnx2tf_python}: onnx2tf column skipped", file=sys.stderr)
    earlier = [row for path in args.rows for row in json.loads(Path(path).read_text())]
    done: dict[str, dict[str, Any]] = {}

    def publish() -> str:
        rows = earlier + [done[n] for n in names if n in done]
        table = markdown(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        if args.markdown:
            write_table(Path(args.markdown), table, BEGIN, END)
        return table

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(measure, n, o2t, not args.no_coreml, args.onnx2tf_timeout): n for n in names}
        for future in as_completed(futures):
            row = future.result()
            print(json.dumps(row), flush=True)
            done[futures[future]] = row
            publish()
    print(publish())
    return 0


if __name__ == "__main__":
    sys.exit(main())
