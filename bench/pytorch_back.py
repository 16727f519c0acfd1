"""PyTorch models -> coremltools 9 ML Program (.mlpackage) -> kcc -> ONNX and `kcc run`, checked against torch.

    python bench/pytorch_back.py [--torch-python /work/venvs/torch/bin/python] [--models cnn,gru,...]
                                 [--precision fp32|fp16|both] [--markdown docs/mlprogram.md]

kcc's venv has no torch (a CPU torch is GBs and CI does not need it), so the
models are made by bench/pytorch_models.py in a separate venv: Python 3.11 with
``torch==2.13.0`` (CPU) and ``coremltools==9.0``, e.g.

    python3.11 -m venv /work/venvs/torch && /work/venvs/torch/bin/pip install torch==2.13.0 coremltools==9.0

That script builds each model in code (seeded random weights, eval mode,
calibrated BatchNorm), captures it with ``torch.jit.trace`` (``torch.export``
for the attention models, which coremltools 9 cannot convert from a torch 2.13
trace), converts it with ``coremltools.convert(convert_to="mlprogram")`` and
saves the package with torch's inputs and outputs. This script (kcc's venv)
compiles each package with kcc to ONNX, runs it in onnxruntime with default
session options and with the ``kcc run`` command line (the IR interpreter), and
compares both with torch relative to the output's largest magnitude: float32
passes at 1e-4, float16 at 1e-2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:pytorch_back begin -->", "<!-- bench:pytorch_back end -->"
HERE = Path(__file__).parent
MODELS = ["cnn", "resnet", "mobile", "unet", "lstm", "gru", "encoder", "transformer"]
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def make_packages(torch_python: str, out: Path, models: list[str], precision: str) -> list[dict[str, Any]]:
    cmd = [torch_python, str(HERE / "pytorch_models.py"), str(out), "--models", ",".join(models),
           "--precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    if not rows:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"{torch_python} bench/pytorch_models.py failed: {tail}")
    return rows


def check(row: dict[str, Any], out: Path) -> dict[str, Any]:
    """Compile one package to ONNX, run it in onnxruntime and with `kcc run`; errors against torch."""
    import numpy as np
    import onnxruntime as ort

    import kcc
    from kcc.frontends.coreml import load_mlprogram
    from kcc.testing import max_rel_error

    stem = f"{row['model']}_{row['precision']}"
    pkg = out / f"{stem}.mlpackage"
    data = np.load(out / f"{stem}.npz")
    feeds = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
    refs = {k[4:]: data[k] for k in data.files if k.startswith("out:")}
    t = time.perf_counter()
    onnx_model = kcc.compile(str(pkg), target="onnx")
    row["kcc_s"] = time.perf_counter() - t
    row["ir_nodes"] = len(load_mlprogram(pkg))
    row["onnx_nodes"] = len(onnx_model.graph.node)
    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    args = []
    for name, x in feeds.items():
        np.save(out / f"{stem}.{name}.npy", x)
        args.append(f"{name}={out / f'{stem}.{name}.npy'}")
    result = out / f"{stem}.run.npz"
    kcc_cli = Path(sys.executable).parent / "kcc"
    proc = subprocess.run([str(kcc_cli), "run", str(pkg), *args, "-o", str(result)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kcc run: {proc.stderr.strip()[-300:]}")
    ran = dict(np.load(result))
    name = next(iter(refs))
    row["max_abs_output"] = float(np.max(np.abs(refs[name])))
    row["rel_error"] = max(max_rel_error(refs[n], got[n]) for n in refs)
    row["run_rel_error"] = max(max_rel_error(refs[n], ran[n]) for n in refs)
    row["ok"] = bool(max(row["rel_error"], row["run_rel_error"]) <= TOLERANCE[row["precision"]])
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [BEGIN, "",
             "| model | input | precision | capture | MIL ops | coremltools (s) | kcc (s) | IR nodes | ONNX nodes | "
             "max abs output | rel error (onnxruntime) | rel error (kcc run) | ok |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ops = ", ".join(o for o in r.get("mil_ops", []) if o != "const")
        if "error" in r:
            lines.append(f"| {r['model']} | {r.get('input', '')} | {r['precision']} | {r.get('capture', '')} | "
                         f"{ops} | | | | | | | | **failed**: {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['input']} | {r['precision']} | {r['capture']} | {ops} | "
                     f"{r['coremltools_s']:.1f} | {r['kcc_s']:.2f} | {r['ir_nodes']} | {r['onnx_nodes']} | "
                     f"{r['max_abs_output']:.3g} | {r['rel_error']:.2e} | {r['run_rel_error']:.2e} | "
                     f"{'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", default="/work/venvs/torch/bin/python")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--precision", choices=["fp32", "fp16", "both"], default="both")
    p.add_argument("--markdown", default=None)
    p.add_argument("--keep", default=None, help="write the packages here (default: a temporary folder)")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    precisions = ["fp32", "fp16"] if args.precision == "both" else [args.precision]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        for precision in precisions:
            for row in make_packages(args.torch_python, out, models, precision):
                if "error" not in row:
                    try:
                        row = check(row, out)
                    except Exception as exc:  # a failed model is a table row, not the end of the run
                        row["error"] = f"kcc: {type(exc).__name__}: {exc}"[:300]
                rows.append(row)
                status = row.get("error") or (f"onnx {row['rel_error']:.2e} run {row['run_rel_error']:.2e} "
                                              f"kcc {row['kcc_s']:.2f}s {'ok' if row['ok'] else 'MISMATCH'}")
                print(f"{row['model']:12s} {precision} {status}", flush=True)
    table = markdown(rows)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    else:
        print(table)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
