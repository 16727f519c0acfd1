"""``kcc inspect``: what is inside a model file, for every format kcc reads.

``describe(path)`` returns a ``ModelInfo``: inputs and outputs (shapes,
dtypes, layouts), op or layer counts by type, parameter count and bytes, the
format's version facts (Keras version, ONNX opset, Core ML specification),
classifier labels and metadata. ``format_text`` prints it for a person,
``ModelInfo.to_json()`` for scripts. Files are read with zipfile, h5py, onnx
and the Core ML protobuf classes: TensorFlow is never imported.

Each format is one row of ``READERS``: a name, a test on the path, and a
function ``read(path, weights) -> ModelInfo``. Adding a format is adding a row.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from kcc.errors import ModelFileError


@dataclass
class TensorInfo:
    """One model input or output. ``shape`` holds ints, or strings for named/unknown dims."""

    name: str
    shape: list[int | str] | None
    dtype: str
    layout: str = ""
    note: str = ""

    def shape_text(self) -> str:
        if self.shape is None:
            return "?"
        return "[" + ", ".join(str(d) for d in self.shape) + "]"


@dataclass
class ModelInfo:
    path: str
    format: str                                   # e.g. "Keras .keras archive", "ONNX", "Core ML NeuralNetwork"
    name: str = ""
    versions: dict[str, str] = field(default_factory=dict)   # {"keras": "3.15.1"}, {"opset": "17"}, ...
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    op_kind: str = "ops"                          # what ``ops`` counts: "layers", "nodes", "operations"
    ops: dict[str, int] = field(default_factory=dict)
    parameters: int = 0
    parameter_bytes: int = 0
    parameter_dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> number of values
    labels: list[str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def count_ops(self, types: list[str]) -> None:
        """Set ``ops`` from a list of type names, most frequent first (ties by name)."""
        counts: dict[str, int] = {}
        for t in types:
            counts[t] = counts.get(t, 0) + 1
        self.ops = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def add_parameters(self, count: int, dtype: str, nbytes: int) -> None:
        self.parameters += int(count)
        self.parameter_bytes += int(nbytes)
        self.parameter_dtypes[dtype] = self.parameter_dtypes.get(dtype, 0) + int(count)


Reader = Callable[[Path, "Path | None"], ModelInfo]


@dataclass(frozen=True)
class Format:
    name: str
    matches: Callable[[Path], bool]
    read: Reader


def _readers() -> list[Format]:
    from . import coreml_files, keras_files, onnx_files

    return [
        Format("onnx", onnx_files.matches, onnx_files.read),
        Format("coreml", coreml_files.matches_mlmodel, coreml_files.read_mlmodel),
        Format("mlpackage", coreml_files.matches_mlpackage, coreml_files.read_mlpackage),
        Format("keras", keras_files.matches, keras_files.read),
    ]


def describe(path: str | Path, weights: str | Path | None = None) -> ModelInfo:
    """Describe the model in ``path`` (and ``weights``, for an architecture ``.json``)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    for fmt in _readers():
        if fmt.matches(path):
            return fmt.read(path, Path(weights) if weights else None)
    raise ModelFileError(f"{path}: not a model file kcc reads (.keras, .h5/.hdf5, an architecture .json "
                         f"with its weights .h5, .onnx, .mlmodel, .mlpackage)")


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _tensor_rows(tensors: list[TensorInfo]) -> list[str]:
    if not tensors:
        return ["  (none)"]
    rows = [(t.name, t.dtype, t.shape_text(), t.layout, t.note) for t in tensors]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = []
    for r in rows:
        line = "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths))
        extra = "  ".join(x for x in r[3:] if x)
        out.append((line + "  " + extra).rstrip())
    return out


def format_text(info: ModelInfo, max_labels: int = 10) -> str:
    """The description as a person reads it: one fact a line, tables aligned."""
    head = f"{info.path}: {info.format}"
    if info.name:
        head += f" {info.name!r}"
    lines = [head]
    if info.versions:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    lines.append("inputs:")
    lines += _tensor_rows(info.inputs)
    lines.append("outputs:")
    lines += _tensor_rows(info.outputs)
    total = sum(info.ops.values())
    lines.append(f"{info.op_kind}: {total}" + (f" ({len(info.ops)} types)" if info.ops else ""))
    items = list(info.ops.items())
    for i in range(0, len(items), 4):
        lines.append("  " + "  ".join(f"{k} {v}" for k, v in items[i:i + 4]))
    dtypes = ", ".join(f"{k} {v:,}" for k, v in info.parameter_dtypes.items())
    lines.append(f"parameters: {info.parameters:,} ({human_bytes(info.parameter_bytes)})"
                 + (f": {dtypes}" if dtypes else ""))
    if info.labels is not None:
        shown = ", ".join(info.labels[:max_labels]) + (", ..." if len(info.labels) > max_labels else "")
        lines.append(f"labels: {len(info.labels)}: {shown}")
    if info.metadata:
        lines.append("metadata:")
        width = max(len(k) for k in info.metadata)
        for k, v in info.metadata.items():
            text = " ".join(str(v).split())
            lines.append(f"  {k.ljust(width)}  {text if len(text) <= 100 else text[:97] + '...'}")
    for note in info.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


__all__ = ["describe", "format_text", "ModelInfo", "TensorInfo", "Format", "human_bytes"]
