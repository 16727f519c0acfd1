"""Fuzz kcc with mutated model files and write docs/reliability.md.

    .venv/bin/python bench/fuzz.py --cases 100000            # the full run (hours on 2 cores)
    .venv/bin/python bench/fuzz.py --cases 2000 --no-doc     # a quick look
    .venv/bin/python bench/fuzz.py --case 1234 --keep out/   # rerun one case, keep its files

Cases are numbered; case N with master seed S always builds the same file (see
tests/fuzz/fuzz_engine.py), so every failure in the table is reproducible with
``--case N --master S``. The seed files are built in code (tests/fuzz/fuzz_seeds.py)
into ``--seed-dir`` on first use.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fuzz_engine  # noqa: E402
from fuzz_seeds import build_seeds  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"

# Crashes the fuzzer found while this suite was written: (cases, crash, fix, regression test).
FIXED = [
    ["0:2, 0:4, 0:23, 0:62", "a layer called on a constant (`args` edited): AttributeError in ir.py, "
     "layers/core.py", "validate.py: call inputs must be tensors", "test_layer_called_on_a_constant"],
    ["0:53", "`initial_state` a constant: AttributeError in layers/recurrent.py",
     "validate.py: tensor keyword arguments", "test_recurrent_initial_state_not_a_tensor"],
    ["0:140, 0:188", "a kernel whose input size does not fit the incoming tensor: IRError from the IR",
     "frontends/keras: IRError while lowering a file -> ShapeError", "test_kernel_that_does_not_fit_its_input"],
    ["0:784", "`Infinity` as a node index: OverflowError in load_config.py",
     "loader.py: parser errors -> ModelFileError (malformed config)", "test_infinite_node_index"],
    ["0:1186, 0:2915", "model name not a string: TypeError in the ONNX emitter",
     "validate.py: model and layer names are strings", "test_model_name_not_a_string"],
    ["0:1721", "Bidirectional `merge_mode` a list: TypeError in layers/recurrent.py",
     "validate.py: Bidirectional rule", "test_bidirectional_merge_mode"],
    ["0:1148, 0:2637, 0:2770, 0:2823", "ONNX names that are not UTF-8 (protobuf returns bytes): TypeError",
     "onnx/validate.py: every name is text", "test_onnx_name_not_utf8"],
    ["0:2352", "`compile_config` a number: AttributeError in load_config.py",
     "loader.py: malformed training config -> ModelFileError", "test_malformed_compile_config"],
    ["1:764, 1:962", "LayerNormalization `epsilon: null`, `axis: [0]`: TypeError in layers/normalization.py",
     "validate.py: normalization rule (finite epsilon, no batch axis)", "test_layer_normalization_fields"],
    ["0:7198", "ONNX input elem_type 2**31-1: ValueError from onnx.checker's helpers",
     "onnx/validate.py: every checker failure -> ModelFileError", "test_onnx_value_type_out_of_range"],
    ["0:8970", "ONNX input dim_value -1: IRError (bad dim) in the IR",
     "onnx/validate.py: declared dims >= 0", "test_onnx_negative_input_dim"],
    ["0:4157", "MaxPooling2D with `config: null`: int(None) in layers/common.py",
     "validate.py: pool_size, cropping and padding required (the lowering has no default)",
     "test_pooling_layer_without_config"],
    ["0:4264, 0:8558", "a zeroed size in the HDF5 global heap: HDF5 spins forever in C reading `model_config` "
     "(the alarm cannot stop it; the worker was killed after 120 s)",
     "limits.check_hdf5_heaps before h5py opens the file", "test_hdf5_heap_object_of_size_zero"],
    ["0:24420", "the HDF5 heap's free space zeroed: the same endless loop in C", "limits.check_hdf5_heaps "
     "(a free space of size 0)", "test_hdf5_free_space_of_size_zero"],
    ["0:15051, 0:19963 and 4 more", "an HDF5 link name that is not UTF-8: SystemError out of h5py's link walk",
     "safety.check_hdf5: a failed walk -> ModelFileError", "test_corrupt_link_name_in_hdf5_tree"],
    ["0:20011", "InputLayer `dtype` a list: TypeError (unhashable) in lower.py",
     "validate.py: InputLayer dtype is a name", "test_input_dtype_not_a_name"],
    ["0:33965, 0:38713, 0:40268, 0:44491", "an ONNX graph output listed twice: IRError in the IR",
     "onnx/validate.py: outputs are unique", "test_onnx_duplicate_output_names"],
    ["0:9539, 0:15862", "LayerNormalization `axis: [-1, -1]`: ValueError (reshape) in layers/normalization.py",
     "validate.py: an axis named twice is refused", "test_layer_normalization_fields"],
    ["0:298", ".mlmodel output data type -1: ValueError from the protobuf enum in coreml/runtime.py",
     "runtime.py: RuntimeModelError for an undefined data type",
     "test_mlmodel_output_data_type_out_of_range"],
    ["0:5, 0:11, 0:16 and 32 more of the first 300", "Core ML runtime errors that did not name the file",
     "errors.naming_files around kcc.coreml.predict and kcc.compile", "test_mlmodel_runtime_errors_name_the_file"],
    ["0:1700, 0:45736 and 14 more", "Manifest.json nested 100,000 deep / `itemInfoEntries` a list: "
     "RecursionError, IndexError in coreml/package.py", "package.py: kcc.limits.load_json, a checked root item",
     "test_fuzz_regressions_manifest_and_output_dtype"],
    ["0:3997, 0:10564, 0:5814 and 20 more", "an edited input shape giving Conv2D/pooling/normalization a "
     "tensor of the wrong rank or a batch axis: IndexError, TypeError in the handlers",
     "input_rules.py: rank and axes checked from one table before the handlers",
     "test_layer_called_on_a_tensor_it_cannot_take"],
    ["0:13052, 0:16236 and 13 more", "LayerNormalization weights that do not fit an edited input shape: "
     "ValueError (reshape) in layers/normalization.py", "normalization.py: stored gamma/beta checked against "
     "the normalized dims", "test_layer_normalization_weights_that_do_not_fit_the_input"],
    ["0:29575", "ONNX GlobalAveragePool of a rank-2 value: a reduce over no axes, ValueError in the emitter",
     "onnx_math.py: global pools need rank >= 3", "test_onnx_global_pool_of_rank_2"],
    ["0:65794, 0:66515, 0:76460, 0:94603", "a null byte in an .mlpackage's root model path: ValueError from "
     "pathlib", "package.py: the path is checked before it is resolved",
     "test_fuzz_regressions_manifest_and_output_dtype"],
    ["0:79010", "a wrapped layer entry of an unknown class whose `config` is a string: AttributeError in "
     "loader.py", "loader.py: the name of a custom entry read only from a dict",
     "test_wrapped_layer_entry_whose_config_is_a_string"],
]
# Status of each kind of failure a run can show, by a piece of its detail (first match wins).
# "fixed" ones were fixed after the run's snapshot was taken and have a regression test.
KNOWN = [
    ("worker stuck", "fixed: HDF5 heap objects of size 0 (test_hdf5_heap_object_of_size_zero, "
                     "test_hdf5_free_space_of_size_zero)"),
    ("safety.py", "fixed: test_corrupt_link_name_in_hdf5_tree"),
    ("lower.py:36", "fixed: test_input_dtype_not_a_name"),
    ("common.py:20", "fixed: test_pooling_layer_without_config"),
    ("must be unique, one per output", "fixed: test_onnx_duplicate_output_names"),
    ("into shape (8,8)", "fixed: an axis named twice (test_layer_normalization_fields)"),
    ("package.py", "fixed: bounded Manifest.json, checked root item and path "
                   "(test_fuzz_regressions_manifest_and_output_dtype)"),
    ("normalization.py", "fixed: input rules and stored weights checked against the normalized dims "
                         "(test_layer_called_on_a_tensor_it_cannot_take, "
                         "test_layer_normalization_weights_that_do_not_fit_the_input)"),
    ("common.py:38", "fixed: input rules (test_layer_called_on_a_tensor_it_cannot_take)"),
    ("context.py:8", "fixed: a global pool needs rank >= 3 (test_layer_called_on_a_tensor_it_cannot_take, "
                     "test_onnx_global_pool_of_rank_2)"),
    ("loader.py", "fixed: test_wrapped_layer_entry_whose_config_is_a_string"),
]


def status(o) -> str:
    for row in FIXED:
        if any(k.strip() == f"{MASTER_OF_RUN}:{o.case}" for k in row[0].split(",")):
            return f"fixed: {row[3]}"
    return next((text for piece, text in KNOWN if piece in o.detail), "open")


MASTER_OF_RUN = 0

LIMITS = """\
Enforced before allocation (`compiler/limits.py`, `compiler/frontends/keras/validate.py`,
`compiler/frontends/onnx/validate.py`): declared weight bytes x 2 against physical memory
(`os.sysconf`), with the sizes in the message; each HDF5 dataset's declared size against the
bytes it stores (compressed datasets up to 200:1); zip entries: no encryption, only
stored/deflate/bzip2/lzma, stored entries exactly their size, entries over 1 MiB at most 200:1;
configs nested at most 100 levels; at most 100,000 Keras layers, 1,000,000 ONNX nodes and 32
levels of ONNX subgraphs; ONNX tensors: dims >= 0, element count equal to product(dims)
(raw_data bytes = product x itemsize), names and string attributes UTF-8, attributes typed,
then `onnx.checker.check_model(full_check=True)`."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100_000, help="how many cases (default 100000)")
    p.add_argument("--start", type=int, default=0, help="first case number")
    p.add_argument("--master", type=int, default=0, help="master seed of the case plans")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    p.add_argument("--seed-dir", default=str(Path.home() / ".cache" / "kcc-fuzz-seeds"))
    p.add_argument("--case", type=int, help="run this one case in-process and print its outcome")
    p.add_argument("--keep", help="with --case: keep the case's files in this folder")
    p.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "kcc-fuzz-results.jsonl"),
                   help="one JSON line per case (appended as cases finish)")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite docs/reliability.md")
    p.add_argument("--minutes", type=float,
                   help="time budget: start no new case after this many minutes (the doc says how "
                        "many of the requested cases ran)")
    p.add_argument("--snapshot", metavar="DIR",
                   help="copy kcc's sources into DIR and fuzz that copy, so edits made to the tree "
                        "while a long run goes on cannot change what it measures")
    p.add_argument("--from-log", metavar="JSONL",
                   help="write docs/reliability.md from an earlier run's --log instead of running "
                        "(give that run's --cases/--master/--minutes, and --elapsed)")
    p.add_argument("--elapsed", type=float, default=0.0, help="with --from-log: the run's minutes")
    p.add_argument("--sources", default=None,
                   help="the commit whose sources were fuzzed (default: this checkout's HEAD)")
    args = p.parse_args(argv)
    if args.from_log:
        with open(args.from_log) as f:
            results = sorted((fuzz_engine.Outcome(**json.loads(line)) for line in f), key=lambda o: o.case)
        write_doc(results, args.elapsed * 60, args)
        return 0
    if args.snapshot:
        snapshot(Path(args.snapshot))
    seed_dir = Path(args.seed_dir)
    build_seeds(seed_dir)
    if args.case is not None:
        out = fuzz_engine.run_case(args.case, str(seed_dir), args.timeout, args.master, args.keep)
        print(json.dumps(out.__dict__, indent=1))
        return 0
    cases = range(args.start, args.start + args.cases)
    started = time.time()
    log = open(args.log, "w")
    done = Counter()

    def on_result(o: fuzz_engine.Outcome) -> None:
        log.write(json.dumps(o.__dict__) + "\n")
        log.flush()
        done[o.kind] += 1
        n = sum(done.values())
        if n % 500 == 0:
            rate = n / (time.time() - started)
            print(f"{n}/{len(cases)} cases, {rate:.1f}/s, {dict(done)}", flush=True)

    deadline = started + args.minutes * 60 if args.minutes else None
    results = fuzz_engine.run_cases(cases, seed_dir, workers=args.workers, timeout=args.timeout,
                                    master=args.master, on_result=on_result, deadline=deadline)
    log.close()
    elapsed = time.time() - started
    failures = [o for o in results if o.kind in fuzz_engine.FAILURES]
    for o in failures[:50]:
        print(f"FAIL case {o.case} [{o.seed} {o.level} -> {o.target}] {o.kind}: {o.detail} ({o.mutation})")
    print(f"{len(results)} cases in {elapsed:.0f} s: {dict(Counter(o.kind for o in results))}")
    if not args.no_doc:
        write_doc(results, elapsed, args)
    return 1 if failures else 0


def snapshot(dest: Path) -> None:
    """Copy compiler/, passes/ and backends/ into ``dest/kcc`` and import kcc from there.

    The copy comes first on sys.path (before the editable install's finder); the pool's
    fork server inherits that path, so every worker runs the snapshot.
    """
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "compiler", dest / "kcc", ignore=skip)
    shutil.copytree(ROOT / "passes", dest / "kcc" / "passes", ignore=skip)
    shutil.copytree(ROOT / "backends", dest / "kcc" / "backends", ignore=skip)
    sys.path.insert(0, str(dest))
    import kcc

    assert Path(kcc.__file__).resolve().is_relative_to(dest.resolve()), kcc.__file__


def _head() -> str:
    """This checkout's commit (short), or "unknown" outside git."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _budget_note(ran: int, args: argparse.Namespace) -> str:
    if ran >= args.cases:
        return ""
    return (f", **stopped by its {args.minutes:g}-minute time budget after {ran} of the "
            f"{args.cases} requested cases** (a machine shared by several engineers)")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_doc(results: list, elapsed: float, args: argparse.Namespace) -> None:
    global MASTER_OF_RUN
    MASTER_OF_RUN = args.master
    kinds = Counter(o.kind for o in results)
    by_format = Counter((o.seed.split(".", 1)[1], o.level, o.kind) for o in results)
    formats = sorted({(f, lvl) for f, lvl, _ in by_format})
    columns = ["converted", "refused", *fuzz_engine.FAILURES]
    errors = Counter(o.detail.split(":")[0] for o in results if o.kind == "refused")
    failures = [o for o in results if o.kind in fuzz_engine.FAILURES]
    slowest = sorted(results, key=lambda o: -o.seconds)[:5]
    cmd = (f".venv/bin/python bench/fuzz.py --cases {len(results)} --start {args.start} "
           f"--master {args.master} --workers {args.workers} --timeout {args.timeout:g}")
    text = [
        "# Reliability: kcc under hostile and broken model files",
        "",
        "Generated by `bench/fuzz.py` (do not edit by hand). Every case is a valid seed file",
        "(built in code, tests/fuzz/fuzz_seeds.py: a CNN, a recurrent model and an embedding",
        "model as `.keras`, legacy `.h5`, architecture `.json` + weights and `.mlmodel`; a",
        "converted and a hand-built `.onnx`; an ML Program `.mlpackage`) mutated at one level:",
        "bytes, zip entries, JSON fields, HDF5 attributes/datasets or protobuf fields",
        "(tests/fuzz/fuzz_mutators.py), then run through the public API under a per-case time",
        "bound in a pool of worker processes (tests/fuzz/fuzz_engine.py): `kcc.compile` to ONNX",
        "or Core ML for Keras and ONNX files, `kcc.compile` to ONNX for `.mlpackage` (the Core",
        "ML frontend), `kcc.coreml.predict` for `.mlmodel`. Allowed outcomes: `converted` (the",
        "output passes the target's checker: `onnx.checker` with `full_check`, or a Core ML spec",
        "whose layers the runtime implements; for predict, outputs returned) or `refused` (a",
        "`KccError` whose message names the file). CI runs 2,000 other cases (master seed 1) in",
        "`tests/fuzz/test_fuzz_sample.py`.",
        "",
        f"Run {datetime.date.today().isoformat()} on the sources of commit `{args.sources or _head()}`: "
        f"**{len(results)} cases** in {elapsed / 60:.1f} min "
        f"on {args.workers} workers{_budget_note(len(results), args)}; reproduce with:",
        "",
        f"    {cmd}",
        "",
        "The full 100,000-case run (about 45 minutes on two cores, at 40 cases/s):",
        "",
        "    .venv/bin/python bench/fuzz.py --cases 100000",
        "",
        "A long run fuzzes a snapshot of the sources taken when it starts (`--snapshot DIR`), so",
        "the tree can change meanwhile; the status column of the failures says which were fixed",
        "after the snapshot (each with its regression test) and which are open.",
        "",
        "## Outcomes",
        "",
        _table(["outcome", "cases"], [[k, kinds.get(k, 0)] for k in columns]),
        "",
        "## By seed format and mutation level",
        "",
        _table(["format", "level", *columns],
               [[f, lvl, *[by_format.get((f, lvl, k), 0) for k in columns]] for f, lvl in formats]),
        "",
        "## Errors reported (refused cases, by class)",
        "",
        _table(["error", "cases"], [[k, n] for k, n in errors.most_common()]),
        "",
        "## Failures",
        "",
        (_table(["case", "seed", "level", "target", "kind", "detail", "status"],
                [[o.case, o.seed, o.level, o.target, o.kind, o.detail.replace("|", "/"),
                  status(o).replace("|", "/")] for o in failures[:100]]) if failures
         else "None in this run."),
        "",
        "## Slowest cases",
        "",
        _table(["case", "seed", "level", "seconds", "outcome"],
               [[o.case, o.seed, o.level, f"{o.seconds:.1f}", o.kind] for o in slowest]),
        "",
    ]
    text += ["## Crashes found by this suite and fixed", "",
             "Each is a regression test in `tests/fuzz/` with its minimized file built in code.", "",
             _table(["found by (master:case)", "crash", "fixed by", "regression test"], FIXED), "",
             "## Limits", "", LIMITS, ""]
    DOC.write_text("\n".join(text))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    sys.exit(main())
