"""Generate docs/layers.md: which Keras classes kcc converts, and which test rows prove it.

    .venv/bin/python tools/gen_layer_table.py > docs/layers.md

Rows: every class name with a handler (the Keras frontend's handler table), by
handler module, with the handler's first docstring line. Columns: the test rows
of ``tests/layers/test_layers_table.py`` whose model holds the class (each row is
one layer/option, checked Keras == onnxruntime == IR interpreter), then one
column per backend, filled by the function in ``BACKEND_COLUMNS``. The ONNX
column is "yes" when test rows cover the class (the table's rows run on ONNX);
the Core ML column is the Core ML backend's own ``coreml_coverage``.

A development tool, not part of the library: it builds every row's model (needs
Keras) and imports the test table. tests/core/test_core_docs.py checks that the
committed docs/layers.md is what this prints.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

from kcc.backends.coreml.coverage import coreml_coverage
from kcc.frontends.keras.activations import KERAS_ACTIVATIONS
from kcc.frontends.keras.registry import handler_for, supported_classes

ROOT = Path(__file__).resolve().parents[1]
_TABLE = ROOT / "tests" / "layers" / "test_layers_table.py"

# (Keras class, or "activation=<name>"; the test rows covering it) -> the backend's cell.
BackendColumn = Callable[[str, list[str]], str]


def _onnx_column(class_name: str, rows: list[str]) -> str:
    return "yes" if rows else ""


BACKEND_COLUMNS: dict[str, BackendColumn] = {"onnx": _onnx_column, "coreml": coreml_coverage}

# Options the handlers refuse, kept next to the generator so docs/layers.md states them.
LIMITS = (
    "`data_format='channels_first'` layers (kcc reads Keras's default channels_last models).",
    "A Keras mask (Masking, `Embedding(mask_zero=True)`) reaching a layer that reads it where kcc cannot "
    "apply it: recurrent layers, Bidirectional, ConvLSTM, TimeDistributed, a Lambda whose function takes `mask` "
    "(attention layers, GlobalAveragePooling1D and Softmax apply it; see tests/layers/test_masks.py).",
    "Resizing: `pad_to_aspect_ratio=True`, `antialias=True`, interpolations other than nearest/bilinear; "
    "`crop_to_aspect_ratio=True` and CenterCrop need a known input size.",
    "UpSampling2D interpolations other than nearest/bilinear.",
    "BatchNormalization over several axes; GroupNormalization on an axis other than the channels.",
    "Merge layers over inputs of different ranks; Dot over the batch axis; Keras operator nodes "
    "(`a + b` in a functional model) with non-scalar constants.",
    "Conv*Transpose `output_padding` not smaller than the strides (Keras refuses it too).",
)

# Handler modules tested by their own test folders rather than this table.
_ELSEWHERE = {"recurrent": "(tests/recurrent)", "conv_lstm": "(tests/recurrent)",
              "time_distributed": "(tests/recurrent)", "lambda_layer": "(tests/lambda)",
              "einsum_dense": "(tests/layers/test_einsum_dense.py)",
              "numpy_ops": "(tests/layers/test_keras_ops_calls.py)",
              "keras_ops": "(tests/layers/test_keras_getitem.py)",
              "attention": "(tests/layers/test_attention_layers.py, tests/layers/test_masks.py)",
              "mask_ops": "(tests/layers/test_masks.py)"}
# Classes only tf.keras 2.x files name (Keras 3 has no such layer to build a row from).
_TF_KERAS_ONLY = {"ThresholdedReLU": "(tf.keras only; lowers to thresholded_relu)"}


def _canonical(cls: str) -> str:
    """Keras 3's class for an alias name (AvgPool2D -> AveragePooling2D); the name itself otherwise."""
    try:
        import keras
        return getattr(keras.layers, cls).__name__
    except (ImportError, AttributeError):
        return cls


def _layer_classes(model) -> set[str]:
    out = set()
    for layer in getattr(model, "layers", []):
        out.add(type(layer).__name__)
        out |= _layer_classes(layer)
    return out


def rows_by_class(table: Path = _TABLE) -> dict[str, list[str]]:
    """Build every row's model and record which Keras classes it holds (needs Keras)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(table.parent))
    spec = importlib.util.spec_from_file_location("layers_table_for_coverage", table)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out: dict[str, list[str]] = defaultdict(list)
    for row, (build, _cnn) in sorted(module.ROWS.items()):
        model = build()
        for cls in _layer_classes(model):
            out[cls].append(row)
        if row.startswith("activation-"):
            out[f"activation={row.split('-', 1)[1]}"].append(row)
    return out


def markdown(rows: dict[str, list[str]] | None = None) -> str:
    rows = rows if rows is not None else rows_by_class()
    backends = list(BACKEND_COLUMNS)
    head = "| Keras class | handler | what it lowers to | test rows | " + " | ".join(backends) + " |"
    lines = [
        "# Keras layers kcc converts", "",
        "Generated by `python tools/gen_layer_table.py > docs/layers.md` from the handler registry "
        "(compiler/frontends/keras/layers/) and the test table (tests/layers/test_layers_table.py: each row "
        "converts a small model and checks Keras == onnxruntime == IR interpreter within 1e-4 of the output's "
        "largest magnitude). A backend column is filled by that backend's function in the generator's "
        "`BACKEND_COLUMNS`.", "",
        head, "| " + " | ".join(["---"] * (4 + len(backends))) + " |",
    ]
    for cls in supported_classes():
        fn = handler_for(cls)
        doc = (inspect.getdoc(fn) or "").splitlines()
        module = fn.__module__.rsplit(".", 1)[-1]
        canonical = _canonical(cls)
        covering = rows.get(canonical, [])
        if canonical != cls:
            doc = [f"alias of {canonical}"]
        if not covering:
            covering = [_ELSEWHERE.get(module) or _TF_KERAS_ONLY.get(cls) or "(none)"]
        cells = [BACKEND_COLUMNS[b](cls, covering) for b in backends]
        lines.append(f"| {cls} | {module}.{fn.__name__} | {doc[0] if doc else ''} | "
                     f"{', '.join(covering)} | " + " | ".join(cells) + " |")
    lines += ["", "## String activations (`activation=` and the Activation layer)", "",
              "| activation | test row | " + " | ".join(backends) + " |",
              "| " + " | ".join(["---"] * (2 + len(backends))) + " |"]
    for name in sorted(KERAS_ACTIVATIONS):
        covering = rows.get(f"activation={name}", [])
        cells = [BACKEND_COLUMNS[b](f"activation={name}", covering) for b in backends]
        lines.append(f"| {name} | {', '.join(covering) or '(none)'} | " + " | ".join(cells) + " |")
    lines += ["", "`threshold` is not listed: it has required arguments, so no model can name it as a string.", "",
              "## Limits (each raises a ConversionError naming the layer and the option)", ""]
    lines += [f"- {item}" for item in LIMITS] + [""]
    return "\n".join(lines)


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
