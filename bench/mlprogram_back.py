"""keras.applications -> coremltools 9 ML Program (.mlpackage) -> kcc -> ONNX, checked against Keras.

    python bench/mlprogram_back.py [--models MobileNetV2,ResNet50] [--precision fp32|fp16|both]
                                   [--jobs 1] [--results rows.jsonl [--table-only]] [--timeout 3600]
                                   [--markdown docs/mlprogram.md]

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
document is kept). With --results, each row is appended to that JSON-lines file
as soon as it is measured, (model, precision) pairs that passed there are not
run again (failed ones are), and the table holds every row of the file (the whole family takes hours
on two shared cores, so a run can be resumed).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

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
    register_erfc()
    from kcc.testing import calibrate_batchnorm, max_rel_error, run_keras

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
    prec = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / f"{name}.mlpackage"
        t = time.perf_counter()
        with traceable_grouped_conv():
            ml = ct.convert(model, convert_to="mlprogram", source="tensorflow", compute_precision=prec)
        ml.save(str(pkg))
        row["coremltools_s"] = time.perf_counter() - t
        got, ran = through_kcc(pkg, x, row, Path(tmp))
        fused = fused_batchnorms(ml._mil_program)
        row["fused_bn"] = len(fused)
        if fused and precision == "fp32":
            # coremltools' fuse_elementwise_to_batchnorm turns a folded BatchNormalization (x * a + b) into a
            # MIL batch_norm with mean 0, variance 1 and the default epsilon 1e-5: the program computes
            # x * a / sqrt(1 + 1e-5) + b. Reference 1: Keras with exactly that change in those layers (the
            # program's own semantics). Reference 2: the same conversion without that pass, against Keras.
            semantics = program_semantics_model(model, fused)
            if semantics is not None:
                sref = run_keras(semantics, [x])[0]
                row["semantics_rel_error"] = max(max_rel_error(sref, got), max_rel_error(sref, ran))
            pipeline = ct.PassPipeline.DEFAULT
            pipeline.remove_passes(["common::fuse_elementwise_to_batchnorm"])
            pkg2 = Path(tmp) / f"{name}_unfused.mlpackage"
            with traceable_grouped_conv():
                ct.convert(model, convert_to="mlprogram", source="tensorflow", compute_precision=prec,
                           pass_pipeline=pipeline).save(str(pkg2))
            got2, ran2 = through_kcc(pkg2, x, {}, Path(tmp))
            row["unfused_rel_error"] = max(max_rel_error(ref, got2), max_rel_error(ref, ran2))
    row["max_abs_logit"] = float(np.max(np.abs(ref)))
    row["rel_error"] = max_rel_error(ref, got)
    row["run_rel_error"] = max_rel_error(ref, ran)
    row["tolerance"] = (max(1e-4, 10 * row["sensitivity"]) if precision == "fp32"
                        else max(1e-2, 3 * row["fp16_floor"]))
    worst = max(row["rel_error"], row["run_rel_error"])
    # A package that differs from Keras only by coremltools' batch_norm epsilon passes when kcc matches the
    # program's own semantics and the conversion without that pass matches Keras.
    explained = all(row.get(k, np.inf) <= row["tolerance"] for k in ("semantics_rel_error", "unfused_rel_error"))
    row["ok"] = bool(worst <= row["tolerance"] or explained)
    return row


@contextlib.contextmanager
def traceable_grouped_conv() -> Iterator[None]:
    """While coremltools traces the model: grouped convolutions as plain ``tf.nn.convolution``.

    Keras 3's TensorFlow backend runs a grouped convolution (ConvNeXt's depthwise
    Conv2D with ``groups``) inside ``tf.function(jit_compile=True)``, because TF's
    CPU kernel lacks it; coremltools 9 cannot convert that XLA call
    (``Conversion for TF op 'StatefulPartitionedCall' not implemented``). The
    graph op itself (Conv2D with a kernel of fewer input channels) is what
    coremltools reads groups from, so the conversion traces it without XLA. Keras's
    own reference outputs are computed outside this context.
    """
    from keras.src import backend
    from keras.src.backend.tensorflow import nn as tf_nn

    original = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        import tensorflow as tf

        fmt = tf_nn._convert_data_format(backend.standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original


def register_erfc() -> None:
    """coremltools 9 has no converter for TF's ``Erfc``, which Keras 3's exact GELU uses (ConvNeXt).

    Registered through coremltools' own extension point for TF ops, as ``1 - erf(x)``
    (MIL has ``erf``); exact GELU is ``0.5 x erfc(-x / sqrt 2)``, so where erfc is
    tiny the product with x is too.
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.tensorflow.tf_op_registry import _TF_OPS_REGISTRY, register_tf_op

    if "Erfc" in _TF_OPS_REGISTRY:
        return

    def Erfc(context: Any, node: Any) -> None:  # noqa: N802 (the TF op's name)
        x = context[node.inputs[0]]
        context.add(node.name, mb.sub(x=1.0, y=mb.erf(x=x), name=node.name))

    register_tf_op(Erfc)


def through_kcc(pkg: Path, x: Any, row: dict[str, Any], tmp: Path) -> tuple[Any, Any]:
    """(onnxruntime output, `kcc run` output) of ``pkg`` on ``x``; timings and node counts go into ``row``."""
    import numpy as np
    import onnxruntime as ort

    import kcc
    from kcc.frontends.coreml import load_mlprogram

    t = time.perf_counter()
    onnx_model = kcc.compile(str(pkg), target="onnx")
    row["kcc_s"] = time.perf_counter() - t
    graph = load_mlprogram(pkg)
    in_name, out_name = graph.inputs[0].name, graph.output_names[0]
    row["ir_nodes"] = len(graph)
    row["onnx_nodes"] = len(onnx_model.graph.node)
    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {in_name: x})[0]
    np.save(tmp / "x.npy", x)
    t = time.perf_counter()
    cmd = [str(Path(sys.executable).parent / "kcc"), "run", str(pkg), f"{in_name}={tmp / 'x.npy'}",
           "-o", str(tmp / "ran.npz")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kcc run failed: {proc.stderr.strip()[-300:]}")
    row["run_s"] = time.perf_counter() - t
    ran = np.load(tmp / "ran.npz")[out_name]
    return got, ran


def fused_batchnorms(program: Any) -> list[tuple[str, float]]:
    """(name, epsilon) of each MIL batch_norm with mean 0 and variance 1 (made by fuse_elementwise_to_batchnorm)."""
    import numpy as np

    found = []
    for op in program.functions["main"].operations:
        if op.op_type == "batch_norm" and op.mean.val is not None and op.variance.val is not None \
                and not np.any(op.mean.val) and np.all(op.variance.val == 1):
            found.append((op.name, float(op.epsilon.val if op.epsilon is not None else 1e-5)))
    return found


def program_semantics_model(model: Any, fused: list[tuple[str, float]]) -> Any:
    """A copy of the Keras model whose BatchNormalizations compute what coremltools' fused batch_norms do.

    MIL: y = x * a / sqrt(1 + eps) + b, with a = gamma / sqrt(var + eps_keras) and b = beta - mean * a.
    So gamma' = gamma / s and beta' = beta - mean * a * (1 - 1 / s), s = sqrt(1 + eps). Each MIL op is
    matched to its layer by name (coremltools keeps the TensorFlow op name, which holds the layer's);
    None when one does not match.
    """
    import keras
    import numpy as np

    bns = {layer.name: layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"}
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for op_name, eps in fused:
        names = [n for n in bns if f"_{n}_" in f"_{op_name}_"]
        if not names:
            return None
        layer = copy.get_layer(max(names, key=len))
        gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        a = gamma / np.sqrt(var + layer.epsilon)
        s = np.sqrt(1.0 + eps)
        layer.set_weights([(gamma / s).astype(np.float32), (beta - mean * a * (1 - 1 / s)).astype(np.float32),
                           mean.astype(np.float32), var.astype(np.float32)])
    return copy


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


def _run_child(name: str, precision: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name, "--precision", precision]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "precision": precision, "error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    if proc.returncode < 0:  # a signal: SIGKILL is the kernel's OOM killer (dmesg says which)
        sig = signal.Signals(-proc.returncode).name
        why = " (out of memory)" if sig == "SIGKILL" else ""
        return {"model": name, "precision": precision, "error": f"the conversion process was killed by {sig}{why}"}
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and not ln.startswith(("I0000", "W0000"))]
    return {"model": name, "precision": precision, "error": (lines or ["no output"])[-1][:300]}


def _read_rows(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows measured before, by (model, precision); a later line replaces an earlier one."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[(row["model"], row["precision"])] = row
    return rows


def _e(x: float | None) -> str:
    return "" if x is None else format(x, ".2e")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [BEGIN, "",
             "| model | input | precision | coremltools (s) | kcc (s) | IR nodes | ONNX nodes | max abs logit | "
             "rel error (onnxruntime) | rel error (kcc run) | sensitivity | Keras fp16 vs fp32 | fused BNs | "
             "vs the program's semantics | pass off vs Keras | ok |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| --- |"]
    for r in rows:
        if r.get("pending"):
            lines.append(f"| {r['model']} | | {r['precision']} | | | | | | | | | | | | | not measured yet |")
            continue
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['precision']} | | | | | | | | | | | | | **failed**: {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['input']} | {r['precision']} | {r['coremltools_s']:.1f} | "
                     f"{r['kcc_s']:.2f} | {r['ir_nodes']} | {r['onnx_nodes']} | {r['max_abs_logit']:.3g} | "
                     f"{r['rel_error']:.2e} | {r['run_rel_error']:.2e} | {r['sensitivity']:.2e} | "
                     f"{_e(r.get('fp16_floor'))} | {r.get('fused_bn', '')} | {_e(r.get('semantics_rel_error'))} | "
                     f"{_e(r.get('unfused_rel_error'))} | {'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--precision", choices=["fp32", "fp16", "both"], default="fp32")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--markdown", default=None)
    p.add_argument("--results", default=None, help="JSON-lines file of rows: appended to, and read to resume")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per model and precision")
    p.add_argument("--table-only", action="store_true", help="write the table of the --results rows, run nothing")
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
    done = _read_rows(Path(args.results)) if args.results else {}
    jobs = [] if args.table_only else [(n, pr) for n in names for pr in precisions
                                       if not done.get((n, pr), {}).get("ok")]
    with ThreadPoolExecutor(args.jobs) as pool:
        for (name, pr), row in zip(jobs, pool.map(lambda j: _run_child(*j, args.timeout), jobs)):
            done[(name, pr)] = row
            if args.results:
                with open(args.results, "a") as f:
                    f.write(json.dumps(row) + "\n")
            status = row.get("error") or (f"onnx {row['rel_error']:.2e} run {row['run_rel_error']:.2e} "
                                          f"sens {row['sensitivity']:.2e} kcc {row['kcc_s']:.2f}s "
                                          f"{'ok' if row['ok'] else 'MISMATCH'}")
            print(f"{name:20s} {pr} {status}", flush=True)
    order = {n: i for i, n in enumerate(MODELS)}
    for key in ((n, pr) for n in names for pr in precisions):
        done.setdefault(key, {"model": key[0], "precision": key[1], "pending": True})
    rows = [done[k] for k in sorted(done, key=lambda k: (order.get(k[0], len(order)), k[1] != "fp32"))
            if k[0] in names or args.results]
    table = markdown(rows)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    else:
        print(table)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
