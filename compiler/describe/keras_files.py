"""``kcc inspect`` for Keras files: ``.keras`` archives, ``.h5`` models, architecture ``.json`` (+ weights).

The config is read as JSON and the weights file is only walked for dataset
shapes and dtypes (no weight data is read for the counts). Output shapes are
not stored in Keras files: they come from kcc's Keras frontend when every layer
is a Keras built-in (read without TensorFlow); a model with Lambda or custom
layers would need Keras and TensorFlow to rebuild them, so inspect leaves its
output shapes unknown and says why.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py

from kcc.errors import KccError, ModelFileError

from . import ModelInfo, TensorInfo

_SUFFIXES = (".keras", ".h5", ".hdf5", ".json")
_MODEL_CLASSES = ("Functional", "Sequential", "Model")
_NESTED_KEYS = ("layer", "forward_layer", "backward_layer", "cell")


def matches(path: Path) -> bool:
    if not path.is_file():
        return False
    if path.suffix.lower() in _SUFFIXES:
        return True
    with open(path, "rb") as f:
        head = f.read(8)
    return head.startswith(b"PK\x03\x04") or head == b"\x89HDF\r\n\x1a\n"


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _json_attr(group: h5py.Group, name: str) -> Any:
    raw = group.attrs.get(name)
    return json.loads(_text(raw)) if raw is not None else None


def read(path: Path, weights: Path | None = None) -> ModelInfo:
    try:
        return _read(path, weights)
    except KccError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: cannot read it as a Keras model file ({type(e).__name__}: {e})") from None


def _read(path: Path, weights: Path | None) -> ModelInfo:
    with open(path, "rb") as f:
        head = f.read(8)
    meta: dict[str, str] = {}
    if head.startswith(b"PK\x03\x04"):
        fmt = "Keras .keras archive"
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(f"{path}: the zip archive has no config.json; not a .keras model")
            entry = json.loads(archive.read("config.json"))
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
            version = metadata.get("keras_version")
            if metadata.get("date_saved"):
                meta["date_saved"] = metadata["date_saved"]
            info = _from_config(path, fmt, entry, version)
            if "model.weights.h5" in names:
                with archive.open("model.weights.h5") as member, h5py.File(member, "r") as h5:
                    _count_weights(h5, info)
            else:
                info.notes.append("the archive holds no model.weights.h5")
        training = entry.get("compile_config")
    elif head == b"\x89HDF\r\n\x1a\n":
        with h5py.File(path, "r") as h5:
            entry = _json_attr(h5, "model_config")
            if entry is None:
                raise ModelFileError(f"{path} holds only weights (no model_config); inspect its architecture "
                                     f"file with it: kcc inspect model.json {path.name}")
            fmt = "Keras .h5 model"
            info = _from_config(path, fmt, entry, _text(h5.attrs.get("keras_version")))
            if h5.attrs.get("backend") is not None:
                meta["backend"] = str(_text(h5.attrs["backend"]))
            training = _json_attr(h5, "training_config")
            _count_weights(h5, info)
    else:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or "class_name" not in entry:
            raise ModelFileError(f"{path}: not a Keras architecture JSON (no model class_name)")
        info = _from_config(path, "Keras architecture .json", entry, entry.get("keras_version"))
        training = entry.get("compile_config")
        if weights is None:
            info.notes.append("no weights file given: parameters not counted (kcc inspect model.json weights.h5)")
        else:
            with h5py.File(weights, "r") as h5:
                _count_weights(h5, info)
            info.format += f" + {weights.name}"
    info.metadata.update(meta)
    _training(training, info)
    _output_shapes(path, weights, info)
    return info


def _model_config(entry: dict) -> tuple[str, Any]:
    return entry.get("class_name", "?"), entry.get("config")


def _children(config: Any) -> list[dict]:
    if isinstance(config, list):
        return [c for c in config if isinstance(c, dict)]
    if not isinstance(config, dict):
        return []
    out = [c for c in (config.get("layers") or []) if isinstance(c, dict)]
    out += [config[k] for k in _NESTED_KEYS if isinstance(config.get(k), dict) and "class_name" in config[k]]
    out += [c for c in (config.get("cells") or []) if isinstance(c, dict)]
    return out


def _walk(config: Any) -> list[dict]:
    """Every layer entry under a model config, nested models and wrapped layers included."""
    out = []
    for child in _children(config):
        out.append(child)
        out += _walk(child.get("config"))
    return out


def _dtype(value: Any) -> str:
    if isinstance(value, dict):  # Keras 3 DTypePolicy
        value = (value.get("config") or {}).get("name")
    return str(value) if value else "float32"


def _shape(value: Any) -> list[int | str] | None:
    if not isinstance(value, (list, tuple)):
        return None
    return ["N" if i == 0 and d is None else ("?" if d is None else int(d)) for i, d in enumerate(value)]


def _layout(shape: list[int | str] | None, channels_first: bool) -> str:
    if shape is None:
        return ""
    names = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}.get(len(shape))
    return "" if names is None else names[0 if channels_first else 1]


def _inputs(class_name: str, config: Any, channels_first: bool) -> list[TensorInfo]:
    top = _children(config)
    found = []
    for layer in top:
        if layer.get("class_name") == "InputLayer":
            c = layer.get("config") or {}
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            found.append((c.get("name") or layer.get("name"), shape, c.get("dtype")))
    if not found and class_name == "Sequential" and top:
        c = top[0].get("config") or {}
        shape = c.get("batch_input_shape") or (config.get("build_input_shape") if isinstance(config, dict) else None)
        found.append((f"{c.get('name', 'input')}_input", shape, c.get("dtype")))
    out = []
    for name, shape, dtype in found:
        s = _shape(shape)
        out.append(TensorInfo(str(name), s, _dtype(dtype), _layout(s, channels_first)))
    return out


def _outputs(class_name: str, config: Any) -> list[TensorInfo]:
    if class_name == "Sequential":
        top = _children(config)
        return [TensorInfo(str((top[-1].get("config") or {}).get("name") or top[-1].get("name")), None, "?")] if top else []
    spec = config.get("output_layers") if isinstance(config, dict) else None
    refs: list = []

    def flatten(x: Any) -> None:
        if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str) and isinstance(x[1], int):
            refs.append(x[0])
        elif isinstance(x, list):
            for y in x:
                flatten(y)
        elif isinstance(x, dict):
            for y in x.values():
                flatten(y)

    flatten(spec)
    return [TensorInfo(name, None, "?") for name in refs]


def _from_config(path: Path, fmt: str, entry: dict, version: str | None) -> ModelInfo:
    class_name, config = _model_config(entry)
    name = (config.get("name") if isinstance(config, dict) else None) or entry.get("name") or ""
    info = ModelInfo(str(path), fmt, name=str(name), op_kind="layers")
    info.versions["keras"] = str(version) if version else "unknown"
    info.versions["model class"] = class_name
    layers = _walk(config)
    info.count_ops([str(layer.get("class_name", "?")) for layer in layers])
    channels_first = any((layer.get("config") or {}).get("data_format") == "channels_first" for layer in layers)
    info.inputs = _inputs(class_name, config, channels_first)
    info.outputs = _outputs(class_name, config)
    return info


def _count_weights(h5: h5py.Group, info: ModelInfo) -> None:
    """Sum the model's weight datasets (optimizer state excluded) from their shapes and dtypes."""
    if "model_weights" in h5:
        roots = [h5["model_weights"]]                 # legacy full-model .h5
    elif "layers" in h5 or "vars" in h5:
        roots = [h5[k] for k in ("layers", "vars") if k in h5]   # Keras 3 object-tree layout
    else:
        roots = [h5]                                   # legacy weights-only file

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            info.add_parameters(obj.size, obj.dtype.name, obj.size * obj.dtype.itemsize)

    for root in roots:
        root.visititems(visit)


def _training(raw: Any, info: ModelInfo) -> None:
    if not isinstance(raw, dict):
        return
    opt = raw.get("optimizer") or raw.get("optimizer_config")
    if isinstance(opt, dict):
        info.metadata["optimizer"] = str(opt.get("class_name") or (opt.get("config") or {}).get("name") or "?")
    elif isinstance(opt, str):
        info.metadata["optimizer"] = opt
    loss = raw.get("loss")
    if loss is not None:
        info.metadata["loss"] = json.dumps(loss) if not isinstance(loss, str) else loss


def _output_shapes(path: Path, weights: Path | None, info: ModelInfo) -> None:
    """Fill output shapes and dtypes from kcc's frontend, when no layer needs Keras itself."""
    from kcc.frontends.keras.load_builtins import BUILTIN_LAYER_CLASSES

    custom = sorted({k for k in info.ops if k not in BUILTIN_LAYER_CLASSES and k not in _MODEL_CLASSES}
                    | ({"Lambda"} if "Lambda" in info.ops else set()))
    if custom:
        info.notes.append(f"output shapes unknown: {', '.join(custom)} layers need Keras and TensorFlow to be "
                          f"rebuilt, which inspect does not do")
        return
    if path.suffix.lower() == ".json" and weights is None:
        return
    from kcc.api import COMMON_OPTIONS, load_graph
    from kcc.ir import DTYPES

    source: Any = (str(path), str(weights)) if weights is not None else str(path)
    try:
        graph = load_graph(source, boundary="channels_last", options=dict(COMMON_OPTIONS))
    except KccError as e:
        info.notes.append(f"output shapes unknown: kcc cannot convert this model ({e})")
        return
    by_name = dict(zip(graph.output_names, graph.outputs))
    outs = info.outputs if len(info.outputs) == len(graph.outputs) else []
    info.outputs = []
    for k, (name, v) in enumerate(by_name.items()):
        shape = [int(d) if isinstance(d, int) else ("N" if i == 0 else "?") for i, d in enumerate(v.shape)]
        keras_name = outs[k].name if outs else name
        dtype = DTYPES[v.dtype].name if v.dtype in DTYPES else str(v.dtype)
        info.outputs.append(TensorInfo(keras_name, shape, dtype))
