"""KerasHub models at a realistic size: kcc's ONNX vs Keras's own ``model.export(format="onnx")``.

    nice python bench/transformers.py [--models bert,gpt2] [--markdown docs/transformers.md]

Each model (issue 9 item 6: BERT, DistilBERT, RoBERTa, GPT-2, Gemma, Llama,
Mistral, Qwen, ViT, ResNet and EfficientNet backbones, a BERT text classifier) is
built from its constructor with random weights (never a preset) at hidden 256,
4 layers, 4 heads, sequence 128 (images 64x64; BatchNorm statistics calibrated on
a varied batch), then converted in one run by both:

* kcc: ``kcc.compile(model, target="onnx")`` with batch and sequence symbolic;
  if that fails, again with both fixed (batch 1, sequence 128), and the table says
  which shapes the converted model has;
* Keras: ``model.export(path, format="onnx")`` (tf2onnx under the TensorFlow backend).

For each ONNX model: whether it converts and onnxruntime loads it (else the
error), the relative error against Keras (max |keras - onnx| / max |keras| over
all outputs, on seeded token ids whose padding masks end in zeros in some rows),
the node count and the Transpose count, and the median onnxruntime latency at
batch 1 with default session options and one thread (``intra_op_num_threads=1``),
the two models taking turns run by run, reported as the ratio kcc / export. Each
model runs in its own subprocess.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_tables import write_table  # noqa: E402

BEGIN, END = "<!-- bench:transformers begin -->", "<!-- bench:transformers end -->"
HIDDEN, LAYERS, HEADS, SEQ, VOCAB, IMAGE = 256, 4, 4, 128, 1000, 64
TEXT = dict(vocabulary_size=VOCAB, num_layers=LAYERS, hidden_dim=HIDDEN, intermediate_dim=4 * HIDDEN)


def _models() -> dict[str, Callable[[], Any]]:
    import keras_hub

    m = keras_hub.models
    resnet = dict(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
                  stackwise_num_blocks=[2, 2, 2, 2], stackwise_num_strides=[1, 2, 2, 2],
                  block_type="basic_block", image_shape=(IMAGE, IMAGE, 3))
    efficientnet = dict(
        stackwise_width_coefficients=[1.0] * 4, stackwise_depth_coefficients=[1.0] * 4,
        stackwise_kernel_sizes=[3, 3, 5, 3], stackwise_num_repeats=[1, 2, 2, 3],
        stackwise_input_filters=[32, 16, 24, 40], stackwise_output_filters=[16, 24, 40, 80],
        stackwise_expansion_ratios=[1, 6, 6, 6], stackwise_squeeze_and_excite_ratios=[0.25] * 4,
        stackwise_strides=[1, 2, 2, 2], stackwise_block_types=["v1"] * 4,
        stackwise_force_input_filters=[0] * 4, stackwise_nores_option=[False] * 4,
        input_shape=(IMAGE, IMAGE, 3), num_features=256)
    return {
        "BERT": lambda: m.BertBackbone(num_heads=HEADS, max_sequence_length=SEQ, **TEXT),
        "DistilBERT": lambda: m.DistilBertBackbone(num_heads=HEADS, max_sequence_length=SEQ, **TEXT),
        "RoBERTa": lambda: m.RobertaBackbone(num_heads=HEADS, max_sequence_length=SEQ, **TEXT),
        "GPT-2": lambda: m.GPT2Backbone(num_heads=HEADS, max_sequence_length=SEQ, **TEXT),
        "Gemma": lambda: m.GemmaBackbone(num_query_heads=HEADS, num_key_value_heads=1,
                                         head_dim=HIDDEN // HEADS, **TEXT),
        "Llama": lambda: m.LlamaBackbone(num_query_heads=HEADS, num_key_value_heads=2, **TEXT),
        "Mistral": lambda: m.MistralBackbone(num_query_heads=HEADS, num_key_value_heads=2, **TEXT),
        "Qwen": lambda: m.QwenBackbone(num_query_heads=HEADS, num_key_value_heads=2, **TEXT),
        "ViT": lambda: m.ViTBackbone(image_shape=(IMAGE, IMAGE, 3), patch_size=8, num_layers=LAYERS,
                                     num_heads=HEADS, hidden_dim=HIDDEN, mlp_dim=4 * HIDDEN),
        "ResNet-18": lambda: m.ResNetBackbone(**resnet),
        "EfficientNet": lambda: m.EfficientNetBackbone(**efficientnet),
        "BertTextClassifier": lambda: m.BertTextClassifier(
            backbone=m.BertBackbone(num_heads=HEADS, max_sequence_length=SEQ, **TEXT),
            num_classes=4, preprocessor=None),
    }


MODEL_NAMES = ["BERT", "DistilBERT", "RoBERTa", "GPT-2", "Gemma", "Llama", "Mistral", "Qwen", "ViT",
               "ResNet-18", "EfficientNet", "BertTextClassifier"]


def _input_name(tensor: Any) -> str:
    return tensor._keras_history[0].name


def _inputs(model: Any, batch: int, seed: int) -> dict[str, Any]:
    """Token ids with padding at the end of every row but the first; images N(0, 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mask = np.ones((batch, SEQ), np.int32)
    for i in range(1, batch):
        mask[i, SEQ - i * SEQ // (batch + 1):] = 0
    out = {}
    for t in model.inputs:
        name = _input_name(t)
        if name == "padding_mask":
            out[name] = mask
        elif name == "token_ids":
            out[name] = (rng.integers(1, VOCAB, (batch, SEQ)) * mask).astype(np.int32)
        elif name == "segment_ids":
            out[name] = np.zeros((batch, SEQ), np.int32)
        else:
            out[name] = rng.standard_normal((batch,) + tuple(t.shape[1:])).astype(np.float32)
    return out


def _keras(model: Any, inputs: dict[str, Any]) -> list[Any]:
    import keras
    import numpy as np

    feed = keras.tree.map_structure(lambda t: inputs[_input_name(t)], model.input)
    return [np.asarray(y) for y in keras.tree.flatten(model(feed, training=False))]


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def _feeds(sess: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """By name; else (Keras's export renames inputs) in Keras's sorted-name order."""
    names = [i.name for i in sess.get_inputs()]
    if set(names) == set(inputs):
        return inputs
    stripped = {n: n.split(":")[0] for n in names}
    if set(stripped.values()) == set(inputs):
        return {n: inputs[stripped[n]] for n in names}
    if len(names) != len(inputs):
        raise RuntimeError(f"the ONNX model takes inputs {names}, the Keras model {sorted(inputs)}")
    return dict(zip(names, (inputs[k] for k in sorted(inputs))))


def _rel_error(want: list[Any], got: list[Any]) -> float:
    import numpy as np

    if len(want) != len(got):
        raise RuntimeError(f"{len(got)} outputs, Keras has {len(want)}")
    # Outputs by shape (an exporter may order dict outputs differently).
    got = sorted(got, key=lambda a: (a.shape, float(np.abs(a).sum())))
    want = sorted(want, key=lambda a: (a.shape, float(np.abs(a).sum())))
    return max(float(np.max(np.abs(w - g)) / max(float(np.max(np.abs(w))), 1e-30)) for w, g in zip(want, got))


def _latencies(sessions: dict[str, tuple[Any, dict[str, Any]]], budget_s: float = 6.0) -> dict[str, float]:
    """Median run time of each session, the sessions taking turns run by run.

    Interleaving puts both models under the same machine load (a shared machine's
    load drifts over seconds, which sequential timing would charge to one model).
    """
    for sess, feeds in sessions.values():
        for _ in range(3):
            sess.run(None, feeds)
    times: dict[str, list[float]] = {who: [] for who in sessions}
    start = time.perf_counter()
    while min(map(len, times.values())) < 5 or (time.perf_counter() - start < budget_s
                                                and min(map(len, times.values())) < 400):
        for who, (sess, feeds) in sessions.items():
            t = time.perf_counter()
            sess.run(None, feeds)
            times[who].append(time.perf_counter() - t)
    return {who: statistics.median(ts) for who, ts in times.items()}


def _stats(onnx_bytes: bytes) -> tuple[int, int]:
    import onnx

    nodes = onnx.load_from_string(onnx_bytes).graph.node
    return len(nodes), sum(1 for n in nodes if n.op_type == "Transpose")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:240] if text else ''}"


def _kcc(model: Any, inputs: dict[str, Any]) -> tuple[bytes, str]:
    import kcc

    try:
        return kcc.compile_model(model, target="onnx", serialized=True).model, "dynamic"
    except Exception as dynamic_error:  # noqa: BLE001 (reported in the table)
        shapes = {k: (1,) + v.shape[1:] for k, v in inputs.items()}
        try:
            return (kcc.compile_model(model, target="onnx", serialized=True,
                                      input_name_shape_dict=shapes).model,
                    f"static (dynamic: {_first_line(dynamic_error)[:160]})")
        except Exception:
            raise dynamic_error from None


def _export(model: Any, tmp: Path) -> bytes:
    path = tmp / "export.onnx"
    model.export(str(path), format="onnx", verbose=False)
    return path.read_bytes()


def measure(name: str) -> dict[str, Any]:
    """Build one model, convert it both ways, compare and time. One table row."""
    import keras

    from kcc.testing import calibrate_batchnorm

    keras.utils.set_random_seed(0)
    model = _models()[name]()
    if any(type(l).__name__ == "BatchNormalization" for l in model._flatten_layers(include_self=False)):
        calib = _inputs(model, 16, 1)
        calibrate_batchnorm(model, keras.tree.map_structure(lambda t: calib[_input_name(t)], model.input))
    row: dict[str, Any] = {"model": name, "params_m": model.count_params() / 1e6}
    check = _inputs(model, 3, 0)
    want = _keras(model, check)
    one = {k: v[:1] for k, v in _inputs(model, 1, 2).items()}
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for who, convert in (("kcc", lambda: _kcc(model, check)),
                             ("export", lambda: (_export(model, Path(tmp)), "dynamic"))):
            t = time.perf_counter()
            try:
                data, shapes = convert()
                row[f"{who}_convert_s"] = time.perf_counter() - t
                row[f"{who}_shapes"] = shapes
                row[f"{who}_nodes"], row[f"{who}_transposes"] = _stats(data)
                sess = _session(data)
                feeds = check if shapes == "dynamic" else None
                if feeds is not None:
                    row[f"{who}_rel_error"] = _rel_error(want, sess.run(None, _feeds(sess, check)))
                else:  # fixed at batch 1: compare row by row
                    errs = []
                    for i in range(len(next(iter(check.values())))):
                        row_in = {k: v[i:i + 1] for k, v in check.items()}
                        errs.append(_rel_error(_keras(model, row_in), sess.run(None, _feeds(sess, row_in))))
                    row[f"{who}_rel_error"] = max(errs)
                sessions[who] = (sess, _feeds(sess, one))
            except Exception as e:  # noqa: BLE001 (reported in the table)
                row[f"{who}_error"] = _first_line(e)
    for who, seconds in _latencies(sessions).items():
        row[f"{who}_latency_ms"] = 1e3 * seconds
    if "kcc_latency_ms" in row and "export_latency_ms" in row:
        row["latency_ratio"] = row["kcc_latency_ms"] / row["export_latency_ms"]
    return row


def _run_child(name: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": name, "kcc_error": f"the benchmark process failed: {err[:240]}"}


def _cell(row: dict[str, Any], who: str) -> list[str]:
    if f"{who}_error" in row:
        return [f"**no**: {row[who + '_error']}".replace("|", "\\|"), "", "", ""]
    if f"{who}_nodes" not in row:
        return ["", "", "", ""]
    err = row.get(f"{who}_rel_error")
    shapes = "" if who == "export" or row.get("kcc_shapes") == "dynamic" else " (static shapes)"
    return [f"yes{shapes}", "" if err is None else f"{err:.1e}", str(row[f"{who}_nodes"]),
            str(row[f"{who}_transposes"])]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [BEGIN, "", "## KerasHub models: kcc vs Keras's `export(format=\"onnx\")`", "",
             f"Generated by `nice python bench/transformers.py --markdown docs/transformers.md`: text models "
             f"at hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, intermediate {4 * HIDDEN}, sequence {SEQ}, "
             f"vocabulary {VOCAB}; ViT, ResNet-18 and EfficientNet on {IMAGE}x{IMAGE} images; random weights. "
             "*rel error*: max |keras - onnxruntime| / max |keras| over all outputs, on 3 rows of token ids "
             "whose padding masks end in zeros in 2 rows. *latency*: median onnxruntime run at batch 1, "
             "default session options, one thread, the two models taking turns run by run; *ratio* = kcc / export "
             "(below 1: kcc's model is faster). "
             "kcc converts with batch and sequence symbolic; *(static shapes)* marks a model kcc converted "
             "only with them fixed (batch 1, sequence 128), the dynamic error is in the notes.", "",
             "| model | params (M) | kcc converts | kcc rel error | kcc nodes | kcc Transposes | export converts | "
             "export rel error | export nodes | export Transposes | kcc ms | export ms | ratio |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes = []
    for r in rows:
        ms = [f"{r[k]:.2f}" if k in r else "" for k in ("kcc_latency_ms", "export_latency_ms", "latency_ratio")]
        params = f"{r['params_m']:.1f}" if "params_m" in r else ""
        lines.append("| " + " | ".join([r["model"], params] + _cell(r, "kcc") + _cell(r, "export") + ms) + " |")
        if str(r.get("kcc_shapes", "dynamic")) != "dynamic":
            notes.append(f"* {r['model']}: {r['kcc_shapes']}".replace("|", "\\|"))
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines + ["", END])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODEL_NAMES))
    p.add_argument("--markdown", default=None, help="docs page to write the table into")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("ROW " + json.dumps(measure(args.one)), flush=True)
        return 0
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODEL_NAMES)}")
    rows = []
    for name in names:  # one at a time: the latencies are single-threaded measurements
        row = _run_child(name)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = markdown(rows)
    if args.markdown:
        write_table(Path(args.markdown), table, BEGIN, END)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
