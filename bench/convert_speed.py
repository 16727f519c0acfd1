"""Conversion time and memory as whole processes: kcc, tf2onnx, Keras's ONNX export, coremltools.

    python bench/convert_speed.py [--models resnet50,convnexttiny,vgg16] [--repeat 1]
                                  [--markdown docs/bench.md]

Every model is built from its ``keras.applications`` constructor (``weights=None``,
seeded, BatchNorm statistics calibrated, logits out) and saved to ``.keras``; its
Keras logits on seeded images are the reference. Then each conversion runs as its
own process, from the ``.keras`` file to the output file, and is measured with
``os.wait4``: wall time (interpreter start, imports, loading and writing
included) and the process's peak resident memory (``ru_maxrss``). Routes:

    kcc          python -m kcc m.keras --emit onnx|coreml -o OUT        (the CLI)
    tf2onnx      keras.saving.load_model + tf2onnx.convert.from_keras(opset 17)
    keras        keras.saving.load_model + model.export(OUT, format="onnx")
    coremltools  keras.saving.load_model + ct.convert(convert_to="neuralnetwork") + save
    read+write   read every weight array from the archive with h5py, write them all
                 to one file and fsync it: the least any converter does

``x read+write`` is the route's time over that last one. Each ONNX output is run in
onnxruntime (default session options) and each Core ML output in kcc's Core ML
runtime, against the Keras logits (error relative to their largest magnitude). A
tool that fails is a result, reported with its first error line. The table goes
between the markers in the --markdown file; the rest of the file is kept.
Child processes get ``PYTHONDONTWRITEBYTECODE`` unset and one untimed import run
first, so every route starts with compiled bytecode, as an installed package does.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:convert_speed begin -->", "<!-- bench:convert_speed end -->"
TIMEOUT = 1800
BATCH = 2
# name -> keras.applications constructor
MODELS = {"resnet50": "ResNet50", "convnexttiny": "ConvNeXtTiny", "vgg16": "VGG16", "mobilenetv2": "MobileNetV2",
          "inceptionresnetv2": "InceptionResNetV2", "efficientnetb0": "EfficientNetB0"}
ROUTES = [("kcc", "onnx"), ("kcc", "coreml"), ("tf2onnx 1.17", "onnx"), ("keras export", "onnx"),
          ("coremltools 9", "coreml"), ("read+write", "-")]


# ---------------------------------------------------------------- child stages
def stage_build(work: Path, name: str) -> dict[str, Any]:
    import keras
    import numpy as np

    from kcc.testing import calibrate_batchnorm

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, MODELS[name])(weights=None, input_shape=(224, 224, 3),
                                                      classifier_activation=None)
    rng = np.random.default_rng(0)
    calibrate_batchnorm(model, rng.uniform(0, 255, (8, 224, 224, 3)).astype(np.float32))
    x = rng.uniform(0, 255, (BATCH, 224, 224, 3)).astype(np.float32)
    np.savez(work / f"{name}.ref.npz", x=x, y=np.asarray(model(x)))
    model.save(work / f"{name}.keras")
    return {"params": int(model.count_params())}


def stage_convert(work: Path, name: str, tool: str, fmt: str) -> dict[str, Any]:
    """One conversion in this process (the kcc routes run the CLI instead, see ``_command``)."""
    src, out = work / f"{name}.keras", _output(work, name, tool, fmt)
    if tool == "read+write":
        return _read_write(src, out)
    import keras
    import numpy as np

    model = keras.saving.load_model(src, compile=False)
    model(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), np.float32))  # export needs a called model
    if tool.startswith("tf2onnx"):
        import tf2onnx

        tf2onnx.convert.from_keras(model, opset=17, output_path=str(out))
    elif tool.startswith("keras"):
        model.export(str(out), format="onnx", verbose=False)
    else:
        import coremltools as ct

        ct.convert(model, convert_to="neuralnetwork").save(str(out))
    return {}


def _read_write(src: Path, out: Path) -> dict[str, Any]:
    """Every weight array read from the archive's h5 into memory, then written to one file, fsynced."""
    import io
    import zipfile

    import h5py
    import numpy as np

    with zipfile.ZipFile(src) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        arrays: list[np.ndarray] = []
        f.visititems(lambda _, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    with open(out, "wb") as g:
        for a in arrays:
            g.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        g.flush()
        os.fsync(g.fileno())
    return {}


def stage_check(work: Path, name: str, tool: str, fmt: str) -> dict[str, Any]:
    """The output's error against the Keras logits."""
    import numpy as np

    from kcc.testing import max_rel_error

    ref = np.load(work / f"{name}.ref.npz")
    x, y = ref["x"], ref["y"].reshape(BATCH, -1)
    out = _output(work, name, tool, fmt)
    if fmt == "onnx":
        from kcc.testing import run_onnx

        got = run_onnx(str(out), [x])[0].reshape(BATCH, -1)
    else:
        from kcc.coreml import load_spec, predict

        spec = load_spec(str(out))
        name_in, name_out = spec.description.input[0].name, spec.description.output[0].name
        declared = list(spec.description.input[0].type.multiArrayType.shape)
        chw = list(np.transpose(x, (0, 3, 1, 2)))  # kcc: (3, 224, 224), or (1, 3, 224, 224) in the ND layout
        feed = ([f[None] for f in x] if declared[-1:] == [3]  # coremltools keeps Keras's (1, 224, 224, 3)
                else [f[None] for f in chw] if len(declared) == 4 else chw)
        got = np.stack([np.asarray(predict(str(out), {name_in: f})[name_out]).reshape(-1) for f in feed])
    return {"rel_error": float(max_rel_error(y, got))}


def _output(work: Path, name: str, tool: str, fmt: str) -> Path:
    suffix = {"onnx": ".onnx", "coreml": ".mlmodel"}.get(fmt, ".bin")
    return work / f"{name}.{tool.split()[0].replace('+', '_')}{suffix}"


# ---------------------------------------------------------------- the parent
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached
    return env


def _command(work: Path, name: str, tool: str, fmt: str) -> list[str]:
    if tool == "kcc":
        return [sys.executable, "-m", "kcc", str(work / f"{name}.keras"), "--emit", fmt,
                "-o", str(_output(work, name, tool, fmt))]
    return [sys.executable, str(Path(__file__).resolve()), "--stage", "convert", str(work), name, tool, fmt]


def measure(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``: its wall time, its own peak RSS (wait4), a ROW json it printed, or its error."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        try:
            _, status, usage = _wait(proc, TIMEOUT)
        except TimeoutError:
            return {"error": f"timed out after {TIMEOUT} s"}
        seconds = time.perf_counter() - start
        log.seek(0)
        text = log.read().decode(errors="replace")
    row: dict[str, Any] = {"seconds": seconds, "peak_bytes": usage.ru_maxrss * 1024}
    for line in text.splitlines():
        if line.startswith("ROW "):
            row.update(json.loads(line[4:]))
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # a signal: the kernel's OOM killer sends SIGKILL (dmesg says which)
        name = signal.Signals(-code).name
        oom = f" (out of memory: the machine has {_total_gib():.0f} GiB)" if name == "SIGKILL" else ""
        row["error"] = f"killed by {name} at {row['peak_bytes'] / 2**30:.1f} GiB peak{oom}"
    elif code != 0:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", ln)]
        row["error"] = ((errors or lines or [f"exit {code}"])[-1])[:120]
    return row


def _total_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise TimeoutError
        time.sleep(0.05)


def _stage(work: Path, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--stage", args[0], str(work), *args[1:]]


def bench_model(work: Path, name: str, repeat: int) -> list[dict[str, Any]]:
    built = measure(_stage(work, "build", name))
    if "error" in built:
        return [{"model": name, "tool": "keras", "format": "build", "error": built["error"]}]
    weights = (work / f"{name}.keras").stat().st_size
    rows = []
    for tool, fmt in ROUTES:
        runs = [measure(_command(work, name, tool, fmt)) for _ in range(repeat)]
        row: dict[str, Any] = {"model": name, "tool": tool, "format": fmt, "params": built["params"],
                               "weights": weights}
        failed = next((r for r in runs if "error" in r), None)
        if failed:
            row["error"] = failed["error"]
        else:
            row["seconds"] = statistics.median(r["seconds"] for r in runs)
            row["peak_bytes"] = max(r["peak_bytes"] for r in runs)
            if fmt != "-":
                check = measure(_stage(work, "check", name, tool, fmt))
                row["rel_error"] = check.get("rel_error")
                row["check_error"] = check.get("error")
        rows.append(row)
        print(json.dumps(row), flush=True)
        out = _output(work, name, tool, fmt)
        if out.exists():
            out.unlink()
    base = next((r.get("seconds") for r in rows if r["tool"] == "read+write"), None)
    for r in rows:
        r["base_seconds"] = base
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    head = ["model", "weights (MB)", "tool", "to", "time (s)", "x read+write", "peak RSS (MB)", "peak / weights",
            "within 2x + 300 MB", "rel. error"]
    lines = [BEGIN, "", "## Conversion time and memory, whole processes", "", header, "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    mb = 1e6
    for r in rows:
        weights = r.get("weights")
        cells = [r["model"], f"{weights / mb:.0f}" if weights else "-", r["tool"], r["format"]]
        if "error" in r:
            cells += ["-", "-", "-", "-", "-", f"**failed**: {r['error']}".replace("|", "/")]
        else:
            ratio = r["seconds"] / r["base_seconds"] if r.get("base_seconds") else None
            within = r["peak_bytes"] <= 2 * weights + 300e6
            error = (f"{r['rel_error']:.1e}" if r.get("rel_error") is not None
                     else (f"check failed: {r['check_error']}".replace("|", "/") if r.get("check_error") else "-"))
            cells += [f"{r['seconds']:.1f}", f"{ratio:.1f}" if ratio else "-", f"{r['peak_bytes'] / mb:.0f}",
                      f"{r['peak_bytes'] / weights:.1f}x", "yes" if within else "no", error]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", END])


def _warm_up() -> None:
    """Compile every module the routes import once (untimed), as an installed package ships them."""
    code = ("import kcc.cli, kcc.api, kcc.backends.onnx, kcc.backends.coreml, kcc.frontends.keras.loader, "
            "kcc.frontends.keras.lower, kcc.coreml, onnx, h5py, keras, tf2onnx, coremltools, onnxruntime")
    subprocess.run([sys.executable, "-c", code], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet50,convnexttiny,vgg16")
    p.add_argument("--repeat", type=int, default=1, help="runs per route (median time, largest peak)")
    p.add_argument("--workdir", default=None, help="where the model files go (default: a temporary folder)")
    p.add_argument("--markdown", default=None, help="write the table between its markers in this file")
    p.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        kind, work, rest = args.stage[0], Path(args.stage[1]), args.stage[2:]
        fn = {"build": stage_build, "convert": stage_convert, "check": stage_check}[kind]
        print("ROW " + json.dumps(fn(work, *rest)), flush=True)
        return 0
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    _warm_up()
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()[0]
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name in names:
            rows += bench_model(Path(tmp), name, args.repeat)
    header = (f"{platform.machine()}, {os.cpu_count()} cores, "
              f"{_total_gib():.0f} GiB, Python "
              f"{platform.python_version()}; load average {load:.1f} at the start (a shared machine); "
              f"{args.repeat} run(s) per route. Weights: the `.keras` file's size. Time and peak memory are "
              f"the whole process's (`os.wait4`): interpreter start, imports, reading, converting, writing. "
              f"`x read+write`: the route's time over the time to read the weight arrays from the archive "
              f"and write them to one file. Target (issue 13): peak at most 2x the weights + 300 MB.")
    table = markdown(rows, header)
    print(table)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
