"""Small model files built in code and edited the way a hostile or broken file would be.

Shared by the validation, limits and regression tests: every helper writes a real
file (``.keras``, legacy ``.h5``, ``.json`` + weights, ``.onnx``) of a tiny model,
then applies an edit to its config (a dict) or its HDF5 weights (an open
``h5py.File``).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ConfigEdit = Callable[[dict], None]
WeightsEdit = Callable[[h5py.File], None]


def conv_model():
    """Input (8, 6, 3) -> Conv2D(32, 3) 'conv' -> MaxPooling2D 'pool' -> Flatten -> Dense(5) 'dense'."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((8, 6, 3), name="image")
    y = L.Conv2D(32, 3, padding="same", name="conv")(inp)
    y = L.MaxPooling2D(2, name="pool")(y)
    y = L.Flatten(name="flat")(y)
    return keras.Model(inp, L.Dense(5, name="dense")(y), name="m")


def lstm_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 3), name="seq")
    y = keras.layers.LSTM(6, name="lstm")(inp)
    return keras.Model(inp, keras.layers.Dense(2, name="dense")(y), name="r")


def layer_config(config: dict, name: str) -> dict:
    """The ``config`` dict of the layer called ``name`` in a serialized functional model."""
    for layer in config["config"]["layers"]:
        if layer.get("name") == name or layer.get("config", {}).get("name") == name:
            return layer["config"]
    raise KeyError(name)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def edit_h5_bytes(data: bytes, edit: WeightsEdit, tmp: Path) -> bytes:
    scratch = tmp / "scratch.h5"
    scratch.write_bytes(data)
    with h5py.File(scratch, "r+") as f:
        edit(f)
    out = scratch.read_bytes()
    scratch.unlink()
    return out


def keras_file(tmp: Path, model, config_edit: ConfigEdit | None = None,
               weights_edit: WeightsEdit | None = None, name: str = "m.keras") -> Path:
    """``model`` saved as a ``.keras`` archive, its config.json and weights then edited."""
    path = tmp / name
    model.save(path)
    entries = members(path)
    if config_edit:
        config = json.loads(entries["config.json"])
        config_edit(config)
        entries["config.json"] = json.dumps(config).encode()
    if weights_edit:
        entries["model.weights.h5"] = edit_h5_bytes(entries["model.weights.h5"], weights_edit, tmp)
    return write_zip(path, entries)


def h5_file(tmp: Path, model, config_edit: ConfigEdit | None = None,
            weights_edit: WeightsEdit | None = None, name: str = "m.h5") -> Path:
    """``model`` saved as a legacy ``.h5``, its model_config attribute and weights then edited."""
    path = tmp / name
    model.save(path)
    with h5py.File(path, "r+") as f:
        if config_edit:
            config = json.loads(f.attrs["model_config"])
            config_edit(config)
            f.attrs["model_config"] = json.dumps(config)
        if weights_edit:
            weights_edit(f)
    return path


def json_pair(tmp: Path, model, config_edit: ConfigEdit | None = None,
              weights_edit: WeightsEdit | None = None) -> tuple[Path, Path]:
    config = json.loads(model.to_json())
    if config_edit:
        config_edit(config)
    arch, weights = tmp / "m.json", tmp / "m.weights.h5"
    arch.write_text(json.dumps(config))
    model.save_weights(weights)
    if weights_edit:
        with h5py.File(weights, "r+") as f:
            weights_edit(f)
    return arch, weights


def dataset_paths(f: h5py.File) -> list[str]:
    found: list[str] = []
    f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
    return found


def replace_dataset(f: h5py.File, path: str, **create) -> None:
    del f[path]
    f.create_dataset(path, **create)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    return buf.getvalue()


def onnx_matmul(dims=(3, 4), raw: bytes | None = None):
    """x[2,3] @ w -> y: the smallest model with one initializer to corrupt."""
    from onnx import TensorProto, helper

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=list(dims))
    w.raw_data = raw if raw is not None else np.ones((3, 4), np.float32).tobytes()
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
