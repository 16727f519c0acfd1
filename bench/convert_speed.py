"""Conversion speed and success: kcc vs coremltools 9 vs tf2onnx 1.17, in one run.

    python bench/convert_speed.py [--models mnist_small,mnist_large,resnet50] [--repeat 3] [--markdown FILE]

For every model it times (median of --repeat runs, imports excluded):
  kcc     .keras file -> ONNX, .keras file -> Core ML, in-memory model -> ONNX
  tf2onnx tf2onnx.convert.from_keras(model)            (its Keras entry point)
  ct      coremltools.convert(model, convert_to="neuralnetwork")
and checks each produced ONNX model against Keras in onnxruntime (relative
error to the output's max magnitude). A tool that raises is reported with the
first line of its error: that is a result, not a benchmark failure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402


def _models() -> dict[str, Callable[[], Any]]:
    import keras

    from kcc.examples import mnist_large, mnist_small

    def resnet50():
        keras.utils.set_random_seed(0)
        return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)

    def mobilenetv2():
        keras.utils.set_random_seed(0)
        return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)

    return {"mnist_small": mnist_small, "mnist_large": mnist_large, "resnet50": resnet50,
            "mobilenetv2": mobilenetv2}


def _time(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:90]


def _onnx_error(model_bytes: bytes, keras_model: Any, x: np.ndarray) -> str:
    from kcc.testing import max_rel_error, run_keras, run_onnx

    ref = run_keras(keras_model, [x])[0]
    got = run_onnx(model_bytes, [x])[0]
    return f"{max_rel_error(ref, got):.1e}"


def bench_model(name: str, build: Callable[[], Any], repeat: int, workdir: Path) -> list[dict[str, str]]:
    import kcc

    model = build()
    path = workdir / f"{name}.keras"
    model.save(path)
    x = np.random.default_rng(0).random((2,) + tuple(model.inputs[0].shape[1:]), dtype=np.float32)
    rows: list[dict[str, str]] = []

    def record(tool: str, route: str, fn: Callable[[], Any], check: Callable[[Any], str] | None) -> None:
        try:
            out, secs = _time(fn, repeat)
            err = check(out) if check else "-"
            rows.append({"model": name, "tool": tool, "route": route, "result": "ok", "seconds": f"{secs:.3f}",
                         "rel. error": err})
        except Exception as e:  # noqa: BLE001 - a tool failing is a measurement
            rows.append({"model": name, "tool": tool, "route": route, "result": _first_line(e), "seconds": "-",
                         "rel. error": "-"})
            if os.environ.get("KCC_BENCH_DEBUG"):
                traceback.print_exc()

    record("kcc", ".keras -> onnx", lambda: kcc.compile(str(path), target="onnx"),
           lambda m: _onnx_error(m.SerializeToString(), model, x))
    record("kcc", "memory -> onnx", lambda: kcc.compile(model, target="onnx"),
           lambda m: _onnx_error(m.SerializeToString(), model, x))
    from kcc.backends import all_targets
    if "coreml" in all_targets():
        record("kcc", ".keras -> coreml", lambda: kcc.compile(str(path), target="coreml"), _coreml_check(model, x))

    def tf2onnx_convert():
        import tf2onnx
        proto, _ = tf2onnx.convert.from_keras(model, opset=17)
        return proto

    record("tf2onnx 1.17", "from_keras -> onnx", tf2onnx_convert,
           lambda m: _onnx_error(m.SerializeToString(), model, x))

    def coremltools_convert():
        import coremltools as ct
        return ct.convert(model, convert_to="neuralnetwork")

    record("coremltools 9.0", "convert -> neuralnetwork", coremltools_convert, None)
    return rows


def _coreml_check(model: Any, x: np.ndarray) -> Callable[[Any], str]:
    def check(mlmodel: Any) -> str:
        from kcc.coreml import predict
        from kcc.testing import max_rel_error, run_keras

        spec = mlmodel.get_spec()
        name = spec.description.input[0].name
        feed = np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x
        outs = [predict(mlmodel, {name: feed[i]}) for i in range(len(x))]
        out_name = spec.description.output[0].name
        got = np.stack([np.asarray(o[out_name]).reshape(-1) for o in outs])
        ref = run_keras(model, [x])[0].reshape(len(x), -1)
        return f"{max_rel_error(ref, got):.1e}"
    return check


def table(rows: list[dict[str, str]]) -> str:
    cols = ["model", "tool", "route", "result", "seconds", "rel. error"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["| " + " | ".join(c.ljust(widths[c]) for c in cols) + " |",
             "| " + " | ".join("-" * widths[c] for c in cols) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(r[c].ljust(widths[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="mnist_small,mnist_large,resnet50")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    builders = _models()
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in builders:
                p.error(f"unknown model {name!r}; choose from {', '.join(builders)}")
            rows += bench_model(name, builders[name], args.repeat, Path(tmp))
            print(table([r for r in rows if r["model"] == name]), flush=True)
    import platform
    header = (f"Conversion benchmark ({platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; median of {args.repeat}; imports excluded)")
    text = header + "\n\n" + table(rows)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text("# " + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
