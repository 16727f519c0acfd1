"""Run mutated model files through kcc's public API and classify what happens.

A case is a number. ``case_plan(n, master)`` derives from it, with a seeded
``random.Random``, the seed file, the mutation level and the target, so
``run_case(n)`` anywhere rebuilds the same file. Each case runs in a worker
process (``run_cases``: a forkserver pool) under a per-case alarm; a worker that
dies or hangs in C code is replaced and the case recorded.

Outcomes (``Outcome.kind``):

* ``converted``: ``kcc.compile`` produced a model that passes the target's
  checker (``onnx.checker.check_model(full_check=True)``, or for Core ML a spec
  that parses and whose every layer the Core ML runtime implements); for
  ``.mlmodel`` seeds, ``kcc.coreml.predict`` returned outputs;
* ``refused``: a ``KccError`` subclass whose message names the file;
the failures the suite exists to find:
* ``unnamed``: a ``KccError`` that does not name the file;
* ``bad-output``: a converted model the target's checker rejects;
* ``crash``: any other exception (the detail has its type, message and place);
* ``timeout``: the case ran past its time bound; ``died``: the worker process died;
* ``harness``: the mutator itself failed (a bug in this suite).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fuzz_mutators as mut  # noqa: E402
from fuzz_seeds import Seed, seeds  # noqa: E402

FAILURES = ("unnamed", "bad-output", "crash", "timeout", "died", "harness")
# Mutation levels each format is fuzzed at, with weights.
LEVELS: dict[str, list[tuple[str, int]]] = {
    "keras": [("bytes", 2), ("entries", 3), ("json", 5), ("hdf5", 4)],
    "h5": [("bytes", 2), ("json", 5), ("hdf5", 5)],
    "json": [("bytes", 1), ("json", 5), ("hdf5", 4)],
    "onnx": [("bytes", 3), ("proto", 7)],
    "mlmodel": [("bytes", 3), ("proto", 7)],
    "mlpackage": [("bytes", 3), ("proto", 5), ("json", 2)],
}
MLPACKAGE_FILES = {"model": "Data/com.apple.CoreML/model.mlmodel",
                   "weights": "Data/com.apple.CoreML/weights/weight.bin", "manifest": "Manifest.json"}


@dataclass(frozen=True)
class Plan:
    case: int
    seed: Seed
    level: str
    target: str


@dataclass(frozen=True)
class Outcome:
    case: int
    seed: str
    level: str
    target: str
    kind: str
    detail: str
    mutation: str
    seconds: float


def case_plan(case: int, master: int = 0) -> Plan:
    rng = random.Random(f"{master}:{case}")
    seed = rng.choice(seeds())
    levels = LEVELS[seed.format]
    level = rng.choices([name for name, _ in levels], [w for _, w in levels])[0]
    if seed.format == "mlpackage":  # the Core ML frontend's way in: --emit onnx
        target = "onnx"
    else:
        target = "predict" if seed.format == "mlmodel" else \
            "coreml" if seed.format != "onnx" and rng.random() < 0.25 else "onnx"
    return Plan(case, seed, level, target)


def make_files(plan: Plan, seed_dir: Path, out_dir: Path, master: int = 0) -> tuple[dict[str, Path], str]:
    """Write the case's mutated files into ``out_dir``; return role -> path and the mutation."""
    import onnx

    rng = random.Random(f"{master}:{plan.case}:mutate")
    if plan.seed.format == "mlpackage":
        return _mutate_package(plan, seed_dir, out_dir, rng)
    files = {role: (seed_dir / name).read_bytes() for role, name in plan.seed.files}
    names = dict(plan.seed.files)
    fmt, level = plan.seed.format, plan.level
    role = "model"
    if level == "bytes":
        role = "weights" if fmt == "json" and rng.random() < 0.5 else "model"
        files[role], what = mut.mutate_bytes(files[role], rng)
    elif level == "entries":
        files["model"], what = mut.mutate_entries(files["model"], rng)
    elif level == "json":
        if fmt == "keras":
            files["model"], what = mut.with_entry(files["model"], "config.json", mut.mutate_json, rng)
        elif fmt == "h5":
            files["model"], what = _mutate_h5_config(files["model"], rng)
        else:
            files["model"], what = mut.mutate_json(files["model"], rng)
    elif level == "hdf5":
        if fmt == "keras":
            files["model"], what = mut.with_entry(files["model"], "model.weights.h5", mut.mutate_hdf5, rng)
        else:
            role = "weights" if fmt == "json" else "model"
            files[role], what = mut.mutate_hdf5(files[role], rng)
    else:
        if fmt == "onnx":
            message = onnx.ModelProto
        else:
            from kcc.coreml import proto
            message = proto.module("Model_pb2").Model
        files["model"], what = mut.mutate_proto(files["model"], rng, message)
    paths = {}
    for r, data in files.items():
        paths[r] = out_dir / names[r]
        paths[r].write_bytes(data)
    return paths, what


def _mutate_package(plan: Plan, seed_dir: Path, out_dir: Path,
                    rng: random.Random) -> tuple[dict[str, Path], str]:
    """Copy the .mlpackage folder and mutate one file inside it."""
    from kcc.coreml import proto

    names = dict(plan.seed.files)
    package = out_dir / names["model"]
    shutil.copytree(seed_dir / names["model"], package)
    shutil.copy(seed_dir / names["feeds"], out_dir / names["feeds"])
    if plan.level == "bytes":
        role = rng.choice(sorted(MLPACKAGE_FILES))
        target = package / MLPACKAGE_FILES[role]
        data, what = mut.mutate_bytes(target.read_bytes(), rng)
    elif plan.level == "json":
        target = package / MLPACKAGE_FILES["manifest"]
        data, what = mut.mutate_json(target.read_bytes(), rng)
    else:
        target = package / MLPACKAGE_FILES["model"]
        data, what = mut.mutate_proto(target.read_bytes(), rng, proto.module("Model_pb2").Model)
    target.write_bytes(data)
    return {"model": package, "feeds": out_dir / names["feeds"]}, f"{target.name}: {what}"


def _mutate_h5_config(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Mutate the ``model_config`` JSON attribute of a legacy .h5 file."""
    import h5py

    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(data)
        tmp.flush()
        with h5py.File(tmp.name, "r+") as f:
            text, what = mut.mutate_json(f.attrs["model_config"].encode()
                                         if isinstance(f.attrs["model_config"], str)
                                         else f.attrs["model_config"], rng)
            f.attrs["model_config"] = text.decode()
        with open(tmp.name, "rb") as fh:
            return fh.read(), "model_config " + what


class CaseTimeout(BaseException):
    """The per-case alarm fired (a BaseException so no ``except Exception`` in kcc swallows it)."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise CaseTimeout()


def check_output(target: str, model: bytes) -> None:
    """The target's own checker on a converted model (raises on a bad model)."""
    if target == "onnx":
        import onnx

        onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    else:
        from kcc.coreml import proto
        from kcc.coreml.runtime import check_layers, network_of

        spec = proto.module("Model_pb2").Model()
        spec.ParseFromString(model)
        check_layers(network_of(spec))


def run_case(case: int, seed_dir: str, timeout: float = 20.0, master: int = 0,
             keep: str | None = None) -> Outcome:
    """Build case ``case`` and run it through the public API; classify the result."""
    import numpy as np

    import kcc
    from kcc.coreml import predict
    from kcc.errors import KccError

    plan = case_plan(case, master)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"kcc-fuzz-{case}-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    what = "?"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            paths, what = make_files(plan, Path(seed_dir), work, master)
        except Exception as e:  # noqa: BLE001 - a mutator bug, not a kcc finding
            return _outcome(plan, "harness", f"{type(e).__name__}: {_first_line(e)} @ {_place(e)}", what, start)
        model = paths["model"]
        if plan.target == "predict":
            with np.load(paths["feeds"]) as f:
                feeds = {k: f[k] for k in f.files}
            predict(str(model), feeds)
        else:
            source: Any = (str(model), str(paths["weights"])) if "weights" in paths else str(model)
            result = kcc.compile_model(source, target=plan.target, serialized=True)
            try:
                check_output(plan.target, result.model)
            except Exception as e:  # noqa: BLE001 - any checker complaint is the finding
                return _outcome(plan, "bad-output", f"{type(e).__name__}: {_first_line(e)}", what, start)
        return _outcome(plan, "converted", "", what, start)
    except CaseTimeout:
        return _outcome(plan, "timeout", f"over {timeout:.0f} s", what, start)
    except KccError as e:
        text = str(e)
        named = str(work) in text
        return _outcome(plan, "refused" if named else "unnamed", f"{type(e).__name__}: {_first_line(e)}",
                        what, start)
    except Exception as e:  # noqa: BLE001 - anything else is a crash, recorded with its place
        return _outcome(plan, "crash", f"{type(e).__name__}: {_first_line(e)} @ {_place(e)}", what, start)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else ""


def _place(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "/compiler/" in f.filename or "/backends/" in f.filename
            or "/passes/" in f.filename]
    f = (ours or frames or [None])[-1]
    return f"{Path(f.filename).name}:{f.lineno}" if f else "?"


def _outcome(plan: Plan, kind: str, detail: str, what: str, start: float) -> Outcome:
    return Outcome(plan.case, plan.seed.name, plan.level, plan.target, kind, detail, what,
                   time.perf_counter() - start)


# ---- the pool --------------------------------------------------------------------------------

def _init_worker(memory_limit: int | None) -> None:
    import resource
    import warnings

    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    warnings.filterwarnings("ignore")


def run_cases(cases: Iterable[int], seed_dir: Path, *, workers: int = 2, timeout: float = 20.0,
              master: int = 0, memory_limit: int | None = 8 << 30,
              on_result: Callable[[Outcome], None] | None = None,
              deadline: float | None = None) -> list[Outcome]:
    """Run cases in a pool of ``workers`` processes.

    When a worker dies (a segfault, the memory limit) every case the broken pool
    held is rerun alone in a fresh one-worker pool, so only the culprit is
    recorded as ``died``; a case stuck past ``3 * timeout + 30`` s is ``timeout``.
    After ``deadline`` (a ``time.time()`` value) no new case starts.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    # Files with an unknown layer class make kcc ask Keras to rebuild them. Importing Keras
    # (and TensorFlow) takes 5-20 s: done once in the fork server, it is shared by every
    # worker, never counts against a case's time bound, and no alarm can cut it short.
    ctx.set_forkserver_preload(["numpy", "onnx", "h5py", "keras", "kcc", "fuzz_engine"])
    pending = list(cases)[::-1]
    results: list[Outcome] = []
    hard_limit = timeout * 3 + 30

    def new_pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(memory_limit,))

    def record(outcome: Outcome) -> None:
        results.append(outcome)
        if on_result:
            on_result(outcome)

    def lost(case: int, kind: str, detail: str) -> Outcome:
        plan = case_plan(case, master)
        return Outcome(case, plan.seed.name, plan.level, plan.target, kind, detail, "?", 0.0)

    def alone(case: int) -> Outcome:
        single = new_pool(1)
        try:
            return single.submit(run_case, case, str(seed_dir), timeout, master).result(hard_limit)
        except TimeoutError:
            return lost(case, "timeout", f"worker stuck over {hard_limit:.0f} s")
        except Exception as e:  # noqa: BLE001 - BrokenProcessPool: this case kills its worker
            return lost(case, "died", f"{type(e).__name__}: {_first_line(e)}")
        finally:
            _kill(single)

    pool = new_pool(workers)
    running: dict[Future, tuple[int, float]] = {}
    try:
        while pending or running:
            if deadline is not None and time.time() > deadline:
                pending.clear()
            while pending and len(running) < workers * 2:
                case = pending.pop()
                running[pool.submit(run_case, case, str(seed_dir), timeout, master)] = (case, time.time())
            done, _ = wait(running, timeout=5, return_when=FIRST_COMPLETED)
            suspects = []
            recycle = False
            for fut in done:
                case, _t = running.pop(fut)
                try:
                    outcome = fut.result()
                except Exception:  # noqa: BLE001 - the pool broke; find the culprit below
                    suspects.append(case)
                    continue
                record(outcome)
                # The alarm may have cut an import short, leaving a half-initialised module
                # in that worker: start fresh workers rather than let it poison later cases.
                recycle = recycle or outcome.kind == "timeout"
            stuck = any(time.time() - t > hard_limit for _c, t in running.values())
            if recycle and not (suspects or stuck):
                pending.extend(c for c, _t in running.values())
                running.clear()
                _kill(pool)
                pool = new_pool(workers)
            elif suspects or stuck:
                suspects += [c for c, _t in running.values()]
                running.clear()
                _kill(pool)
                for case in suspects:
                    record(alone(case))
                pool = new_pool(workers)
    finally:
        _kill(pool)
    return sorted(results, key=lambda o: o.case)


def _kill(pool: ProcessPoolExecutor) -> None:
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def summary(results: list[Outcome]) -> dict[str, Any]:
    return {"cases": len(results), "kinds": Counter(o.kind for o in results),
            "failures": [o for o in results if o.kind in FAILURES]}
