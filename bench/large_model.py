"""Past 2 GB: a Keras model of about 1.5 billion parameters (5.9 GB of float32) to ONNX, as whole processes.

    python bench/large_model.py [--vocab 64000] [--width 4096] [--blocks 7] [--workdir DIR]
                                [--markdown docs/bench.md]

The model is built from its constructor (random weights, seeded): token ids ->
Embedding(vocab, width) -> ``blocks`` residual-free MLP blocks Dense(4 width,
gelu) -> Dense(width) -> Dense(vocab) logits; every weight is a dense or an
embedding matrix, each under 2 GB (the largest is the vocab x width table). Three
stages, each its own process, measured with ``os.wait4`` (wall time, peak resident
memory of that process alone):

1. ``build``: Keras builds the model, records its logits on seeded ids and saves
   ``large.keras``;
2. ``kcc``: ``python -m kcc large.keras -o large.onnx`` (the CLI, imports
   included), which writes ``large.onnx`` plus ``large.onnx.data`` beside it;
3. ``onnxruntime``: an InferenceSession on ``large.onnx`` with default session
   options runs the same ids; error relative to Keras's largest logit.

The table goes between the markers in the --markdown file (the rest is kept).
It needs about 20 GB of free disk in --workdir. Memory: Keras's build stage needs
about twice the weights; kcc's stage about the weights once plus its start-up
(the arrays are read from the archive into the IR and streamed from there into
``large.onnx.data``; issue 13 item 1). On a shared machine the run is refused when
``MemAvailable`` is under ``--min-free-gib`` (default: 2.2x the weights, about 13 GiB
at the default size), rather than push other jobs out of memory.
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

HERE = Path(__file__).resolve().parent
from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:large_model begin -->", "<!-- bench:large_model end -->"
TIMEOUT = 3600
SEQ = 8


def build_model(vocab: int, width: int, blocks: int) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    ids = keras.Input((SEQ,), dtype="int32", name="ids")
    y = L.Embedding(vocab, width, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.5),
                    name="embed")(ids)
    for i in range(blocks):
        y = L.Dense(4 * width, activation="gelu", name=f"up{i}")(y)
        y = L.Dense(width, name=f"down{i}")(y)
    return keras.Model(ids, L.Dense(vocab, name="logits")(y), name="large")


def _ids(vocab: int) -> Any:
    import numpy as np

    ids = np.random.default_rng(1).integers(0, vocab, (2, SEQ)).astype(np.int32)
    ids[0, 0], ids[1, -1] = 0, vocab - 1
    return ids


def stage_build(work: Path, vocab: int, width: int, blocks: int) -> dict[str, Any]:
    import numpy as np

    model = build_model(vocab, width, blocks)
    np.save(work / "ref.npy", np.asarray(model(_ids(vocab))))
    model.save(work / "large.keras")
    return {"params": int(model.count_params())}


def stage_onnxruntime(work: Path, vocab: int) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(work / "large.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: _ids(vocab)})[0]
    ref = np.load(work / "ref.npy").astype(np.float64)
    return {"rel_error": float(np.max(np.abs(ref - got)) / np.max(np.abs(ref)))}


def _measure(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time, its own peak RSS (wait4), and a ROW json line it printed, if any."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    row: dict[str, Any] = {"seconds": seconds, "peak_bytes": usage.ru_maxrss * 1024}
    for line in text.splitlines():
        if line.startswith("ROW "):
            row.update(json.loads(line[4:]))
    if proc.returncode != 0:
        row["error"] = " ".join(text.strip().splitlines()[-1:])[:200] or f"exit {proc.returncode}"
    return row


def markdown(r: dict[str, Any]) -> str:
    gib = 2**30
    weights = r["keras_file_bytes"]
    head = ["stage", "time (s)", "peak RSS (GiB)", "peak / weights", "result"]
    lines = [BEGIN, "", f"## Past 2 GB: a {r['params'] / 1e9:.2f}-billion-parameter model to ONNX", "",
             f"{r['params'] / 1e9:.2f} billion parameters (vocab {r['vocab']}, width {r['width']}, "
             f"{r['blocks']} MLP blocks); `large.keras` {weights / gib:.2f} GiB. Machine: {r['machine']}.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for stage, result in (("Keras: build, run, save", r["build"]),
                          ("kcc: .keras -> ONNX (CLI process)", r["kcc"]),
                          ("onnxruntime: load, run", r["onnxruntime"])):
        if "error" in result:
            text = f"**failed**: {result['error']}".replace("|", "/")
        elif stage.startswith("kcc"):
            text = (f"`large.onnx` {r['onnx_bytes'] / 2**20:.1f} MiB + `large.onnx.data` "
                    f"{r['data_bytes'] / gib:.2f} GiB")
        elif stage.startswith("onnx"):
            text = f"rel. error {result['rel_error']:.1e} vs Keras"
        else:
            text = "saved"
        lines.append(f"| {stage} | {result['seconds']:.1f} | {result['peak_bytes'] / gib:.2f} | "
                     f"{result['peak_bytes'] / weights:.1f}x | {text} |")
    return "\n".join(lines + ["", END])


def _available_gib() -> float | None:
    """``MemAvailable`` from /proc/meminfo, in GiB (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=64000)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--workdir", default=None, help="where the model files go (default: a temporary folder)")
    p.add_argument("--markdown", default=None)
    p.add_argument("--min-free-gib", type=float, default=None,
                   help="refuse to start with less available memory (default: 2.2x the weights)")
    p.add_argument("--stage", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        kind, work = args.stage[0], Path(args.stage[1])
        row = (stage_build(work, args.vocab, args.width, args.blocks) if kind == "build"
               else stage_onnxruntime(work, args.vocab))
        print("ROW " + json.dumps(row), flush=True)
        return 0
    import platform

    weights_gib = 4 * (2 * args.vocab * args.width + args.blocks * 8 * args.width ** 2) / 2**30
    need = args.min_free_gib if args.min_free_gib is not None else 2.2 * weights_gib
    free = _available_gib()
    if free is not None and free < need:
        print(f"large_model: {free:.1f} GiB of memory available, {need:.1f} GiB needed (about "
              f"{weights_gib:.1f} GiB of weights); not started", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        me = [sys.executable, str(Path(__file__).resolve()), "--vocab", str(args.vocab), "--width",
              str(args.width), "--blocks", str(args.blocks)]
        r: dict[str, Any] = {"vocab": args.vocab, "width": args.width, "blocks": args.blocks,
                             "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"}
        r["build"] = _measure(me + ["--stage", "build", str(work)])
        print(json.dumps(r["build"]), flush=True)
        if "error" in r["build"]:
            print(r["build"]["error"], file=sys.stderr)
            return 1
        r["params"] = r["build"]["params"]
        r["keras_file_bytes"] = (work / "large.keras").stat().st_size
        r["kcc"] = _measure([sys.executable, "-m", "kcc", str(work / "large.keras"), "-o", str(work / "large.onnx")])
        print(json.dumps(r["kcc"]), flush=True)
        if "error" not in r["kcc"]:
            r["onnx_bytes"] = (work / "large.onnx").stat().st_size
            data = work / "large.onnx.data"
            r["data_bytes"] = data.stat().st_size if data.exists() else 0
            r["onnxruntime"] = _measure(me + ["--stage", "onnxruntime", str(work)])
        else:
            r["onnxruntime"] = {"error": "no model", "seconds": 0.0, "peak_bytes": 0}
        print(json.dumps(r["onnxruntime"]), flush=True)
    table = markdown(r)
    print(table)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
