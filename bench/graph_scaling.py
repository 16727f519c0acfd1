"""Compile time against graph size: N residual conv blocks, .keras -> ONNX with the kcc CLI, whole process.

    python bench/graph_scaling.py [--blocks 100 1000 10000] [--repeat 3] [--workdir DIR]
                                  [--profile DIR] [--markdown docs/bench.md]

Each model is built from its constructor (seeded random weights) in its own
process and saved as ``blocks<N>.keras``: an 8x8x8 input, then N blocks

    y = ReLU(BatchNormalization(Conv2D(8, 3, padding="same")(x)));  x = Add()([x, y])

(Keras needs a raised recursion limit to build and save 10,000 of them). kcc
converts each file as a whole process (``python -m kcc`` through its ``main``,
with ``--time-passes``), measured from outside with ``os.wait4``: wall time, CPU
time (user + system) and peak resident memory. On a shared machine CPU time is
the steadier measure (wall time grows with the other jobs' load), so the per-node
figures are given in both. Inside that process the CLI's progress steps
(``kcc.progress.step``: "reading the model", "pass i/n", "emitting", "writing")
mark the phases, in CPU time: start-up (imports; the interpreter's own start is
the difference to the whole process), load (the Keras frontend), passes, emit
(IR -> ModelProto, with the ONNX checker) and write (serialize to the file; a
target that streams its weights while it emits reports both as emit). The
``--time-passes`` table gives the split by pass (wall time). Time per node
divides by the number of nodes in the written ONNX graph. With ``--profile DIR``
each conversion also runs once under cProfile (``DIR/blocks<N>.prof``).

The table goes between the markers in the --markdown file (the rest is kept).
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
sys.path.insert(0, str(HERE))
from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:graph_scaling begin -->", "<!-- bench:graph_scaling end -->"
CHANNELS, SIZE = 8, 8
TIMEOUT = 7200
RECURSION = 200_000
PHASES = ("startup", "load", "passes", "emit", "write")


# ------------------------------------------------------------------ stages (child processes)
def stage_build(blocks: int, path: Path) -> dict[str, Any]:
    """Build the N-block model and save it as ``path`` (a .keras file)."""
    import threading

    # Keras walks the functional graph recursively when it builds and serializes it.
    sys.setrecursionlimit(RECURSION)
    threading.stack_size(512 * 2**20)
    out: dict[str, Any] = {}

    def build() -> None:
        import keras

        keras.utils.set_random_seed(0)
        L = keras.layers
        inp = keras.Input((SIZE, SIZE, CHANNELS), name="image")
        x = inp
        for i in range(blocks):
            y = L.Conv2D(CHANNELS, 3, padding="same", name=f"conv{i}")(x)
            y = L.BatchNormalization(name=f"bn{i}")(y)
            y = L.ReLU(name=f"relu{i}")(y)
            x = L.Add(name=f"add{i}")([x, y])
        model = keras.Model(inp, x, name=f"blocks{blocks}")
        model.save(path)
        out["layers"] = len(model.layers)

    t = threading.Thread(target=build)
    t.start()
    t.join()
    return out


def stage_kcc(argv: list[str], profile: str | None) -> None:
    """Run kcc's CLI in this process, printing phase marks (from its progress steps) and the pass table."""
    start = time.process_time()
    marks: list[tuple[str, float]] = []
    import io
    from contextlib import redirect_stdout

    from kcc import progress
    from kcc.cli import main

    step = progress.step

    def mark(label: str) -> None:
        marks.append((label, time.process_time()))
        step(label)

    progress.step = mark
    buf = io.StringIO()
    with redirect_stdout(buf):
        if profile:
            import cProfile

            prof = cProfile.Profile()
            rc = prof.runcall(main, argv)
            prof.dump_stats(profile)
        else:
            rc = main(argv)
    end = time.process_time()
    phases = _phases(marks, start, end)
    print("RESULT " + json.dumps({"rc": rc, "phases": phases, "passes": _pass_table(buf.getvalue()),
                                  "stdout": buf.getvalue()[-2000:]}), flush=True)


def _phases(marks: list[tuple[str, float]], start: float, end: float) -> dict[str, float]:
    """CPU seconds per phase from the step marks (startup here excludes the interpreter's own start)."""
    def first(prefix: str) -> float:
        return next((t for label, t in marks if label.startswith(prefix)), end)

    load, passes, emit, write = first("reading"), first("pass "), first("emitting"), first("writing")
    return {"startup": load - start, "load": passes - load, "passes": emit - passes, "emit": write - emit,
            "write": end - write}


def _pass_table(text: str) -> dict[str, float]:
    """pass name -> seconds, from the ``--time-passes`` table in the CLI's output."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] not in ("pass", "total") and not parts[0].startswith("-"):
            try:
                out[parts[0]] = out.get(parts[0], 0.0) + float(parts[1]) / 1e3
            except ValueError:
                continue
    return out


# ------------------------------------------------------------------ the driver
def _popen_peak(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``: wall seconds, the child's peak RSS (from wait4) and its RESULT line."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        deadline = t0 + TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                return {"error": f"timeout after {TIMEOUT} s"}
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        cpu = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errtext = out.read(), err.read()
    result = next((json.loads(line[7:]) for line in text.splitlines() if line.startswith("RESULT ")), None)
    if proc.returncode != 0 or result is None or result.get("rc", 0) != 0:
        return {"error": (errtext.strip().splitlines() or ["no output"])[-1], "seconds": seconds}
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": usage.ru_maxrss * 1024, **result}


def onnx_nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def run_blocks(blocks: int, work: Path, repeat: int, profile: Path | None) -> dict[str, Any]:
    me = [sys.executable, str(Path(__file__).resolve())]
    model = work / f"blocks{blocks}.keras"
    row: dict[str, Any] = {"blocks": blocks}
    if not model.exists():
        t0 = time.perf_counter()
        built = _popen_peak(me + ["--stage", "build", str(blocks), str(model)])
        row["build_seconds"] = time.perf_counter() - t0
        if "error" in built:
            row["error"] = f"build: {built['error']}"
            return row
    out = work / f"blocks{blocks}.onnx"
    cli = [str(model), "--emit", "onnx", "-o", str(out), "--time-passes", "-q"]
    runs = []
    for _ in range(repeat):
        r = _popen_peak(me + ["--stage", "kcc", json.dumps(cli), ""])
        if "error" in r:
            row["error"] = f"kcc: {r['error']}"
            return row
        runs.append(r)
        print(f"  blocks={blocks}: {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU", file=sys.stderr,
              flush=True)
    best = sorted(runs, key=lambda r: r["cpu_seconds"])[len(runs) // 2]  # the median run, whole
    row.update(seconds=best["seconds"], cpu_seconds=best["cpu_seconds"], peak_bytes=best["peak_bytes"],
               phases=best["phases"], passes=best["passes"], all_seconds=[r["seconds"] for r in runs],
               all_cpu_seconds=[r["cpu_seconds"] for r in runs])
    row["onnx_nodes"] = onnx_nodes(out)
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        _popen_peak(me + ["--stage", "kcc", json.dumps(cli), str(profile / f"blocks{blocks}.prof")])
    return row


def markdown(rows: list[dict[str, Any]], machine: str, repeat: int) -> str:
    ok = [r for r in rows if "error" not in r]
    lines = [BEGIN, "", "## Compile time against graph size: N residual conv blocks to ONNX", "",
             f"Each block is Conv2D(8, 3) + BatchNormalization + ReLU + residual Add on an 8x8x8 input; "
             f"`python bench/graph_scaling.py` converts `blocks<N>.keras` with the kcc CLI as a whole process "
             f"(the median of {repeat} runs by CPU time; {machine}). Per node: divided by the nodes of the written "
             "ONNX graph. CPU time (user + system) is the steadier measure on a shared machine. Phases, in CPU "
             "seconds, come from the CLI's progress steps: start-up is the imports (the interpreter's own start is "
             "the rest of the whole), emit includes the ONNX checker, write is serializing the file. The "
             "compile column leaves the start-up out (load + passes + emit + write): what grows with the graph.",
             "",
             "| blocks | ONNX nodes | wall (s) | CPU (s) | wall ms per node | CPU ms per node | compile, CPU ms per node "
             "| peak RSS (MiB) | " + " | ".join(f"{p} (s)" for p in PHASES) + " | passes, CPU ms per node |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in PHASES)
             + " | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['blocks']} | - | - | - | - | - | - | - | " + " | ".join("-" for _ in PHASES)
                         + f" | {r['error'][:80]} |")
            continue
        n = r["onnx_nodes"]
        lines.append(f"| {r['blocks']} | {n} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                     f"{r['seconds'] / n * 1e3:.3f} | {r['cpu_seconds'] / n * 1e3:.3f} | "
                     f"{sum(r['phases'][p] for p in PHASES[1:]) / n * 1e3:.3f} | {r['peak_bytes'] / 2**20:.0f} | " + " | ".join(f"{r['phases'][p]:.2f}" for p in PHASES)
                     + f" | {r['phases']['passes'] / n * 1e3:.3f} |")
    if ok:
        names = sorted({p for r in ok for p in r["passes"]}, key=lambda p: -max(r["passes"].get(p, 0) for r in ok))
        top = [p for p in names if max(r["passes"][p] / r["onnx_nodes"] for r in ok) * 1e3 >= 0.005]
        rest = [p for p in names if p not in top]
        lines += ["", "Split by pass (`--time-passes`, wall time), microseconds per ONNX node:", "",
                  "| pass | " + " | ".join(f"N={r['blocks']}" for r in ok) + " |",
                  "| --- | " + " | ".join("---:" for _ in ok) + " |"]
        for p in top:
            lines.append(f"| {p} | " + " | ".join(f"{r['passes'].get(p, 0) / r['onnx_nodes'] * 1e6:.1f}" for r in ok)
                         + " |")
        if rest:
            lines.append(f"| {len(rest)} other passes | " + " | ".join(
                f"{sum(r['passes'].get(p, 0) for p in rest) / r['onnx_nodes'] * 1e6:.1f}" for r in ok) + " |")
        lines.append("| all passes | " + " | ".join(
            f"{sum(r['passes'].values()) / r['onnx_nodes'] * 1e6:.1f}" for r in ok) + " |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default=None,
                   help="where the models go; an existing blocks<N>.keras there is reused (default: a temporary folder)")
    p.add_argument("--profile", default=None, help="also run each conversion once under cProfile into this folder")
    p.add_argument("--markdown", default=None)
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        if args.stage[0] == "build":
            print("RESULT " + json.dumps(stage_build(int(args.stage[1]), Path(args.stage[2]))), flush=True)
        else:
            stage_kcc(json.loads(args.stage[1]), args.stage[2] or None)
        return 0
    import platform

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in args.blocks:
            row = run_blocks(n, work, args.repeat, Path(args.profile) if args.profile else None)
            print(json.dumps(row), flush=True)
            rows.append(row)
    table = markdown(rows, machine, args.repeat)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
