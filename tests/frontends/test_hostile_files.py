"""Hostile model files: no code from the file runs, no host file is read, under the defaults.

Every code-carrying file here holds a function that, when Keras rebuilds the model,
writes a marker file. Under the default ``safe_mode`` kcc must refuse the file with
an ``UnsafeModelError`` and the marker must not exist. One case per storage form
is also loaded with ``safe_mode=False`` to prove that the payload really runs when
it is allowed to (so these tests can fail). HDF5 files pointing outside themselves
(external links, external storage, virtual datasets, soft links) and ONNX external
data outside the model's folder are refused, and the CLI writes no output file.
"""
from __future__ import annotations

import codecs
import json
import marshal
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from kcc.cli import main  # noqa: E402
from kcc.errors import UnsafeModelError  # noqa: E402
from kcc.frontends.keras.loader import load_keras_model  # noqa: E402
from kcc.frontends.keras.safety import find_code  # noqa: E402
from kcc.frontends.onnx import load_onnx  # noqa: E402

L = keras.layers


def payload(marker: Path) -> list:
    """Keras 2's ``[bytecode, defaults, closure]`` of a lambda that writes ``marker``."""
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    return [codecs.encode(marshal.dumps(fn.__code__), "base64").decode("ascii"), None, None]


def lambda_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((3,), name="x")
    y = L.Dense(4, name="d")(inp)
    y = L.Lambda(lambda t: t * 2.0, name="lam")(y)
    return keras.Model(inp, y, name="m")


def dense_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((3,), name="x")
    return keras.Model(inp, L.Dense(4, name="d")(inp), name="m")


def _lambda_cfg(config: dict) -> dict:
    return next(layer["config"] for layer in config["config"]["layers"] if layer["class_name"] == "Lambda")


def keras2_form(marker: Path, function_type: str | None):
    """Edit a config: the Lambda's function becomes a bytecode list with ``function_type``."""
    def edit(config: dict) -> None:
        cfg = _lambda_cfg(config)
        cfg["function"] = payload(marker)
        cfg.pop("function_type", None)
        if function_type is not None:
            cfg["function_type"] = function_type
    return edit


def keras3_form(marker: Path):
    def edit(config: dict) -> None:
        code = payload(marker)[0]
        _lambda_cfg(config)["function"] = {"class_name": "__lambda__",
                                           "config": {"code": code, "defaults": None, "closure": None}}
    return edit


def write_keras(path: Path, edit) -> Path:
    """Save the Lambda model as ``.keras`` and rewrite its config.json with ``edit``."""
    lambda_model().save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return path


def write_h5(path: Path, edit) -> Path:
    lambda_model().save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return path


def write_json_pair(tmp: Path, edit) -> tuple[Path, Path]:
    model = lambda_model()
    config = json.loads(model.to_json())
    edit(config)
    arch, weights = tmp / "arch.json", tmp / "w.weights.h5"
    arch.write_text(json.dumps(config))
    model.save_weights(weights)
    return arch, weights


FORMS = {
    "keras3-lambda": keras3_form,
    "keras2-list-no-type": lambda m: keras2_form(m, None),
    "keras2-list-type-function": lambda m: keras2_form(m, "function"),
    "keras2-list-type-raw": lambda m: keras2_form(m, "raw"),
    "keras2-list-type-lambda": lambda m: keras2_form(m, "lambda"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("container", ["keras", "h5", "json"])
def test_bytecode_never_runs_under_safe_mode(tmp_path, form, container):
    marker = tmp_path / "ran.txt"
    edit = FORMS[form](marker)
    if container == "keras":
        source = write_keras(tmp_path / "m.keras", edit)
    elif container == "h5":
        source = write_h5(tmp_path / "m.h5", edit)
    else:
        source = write_json_pair(tmp_path, edit)
    with pytest.raises(UnsafeModelError, match=r"'lam'.*bytecode.*safe_mode=False.*--unsafe"):
        load_keras_model(source)
    assert not marker.exists()
    out = tmp_path / "out.onnx"
    args = [str(s) for s in (source if isinstance(source, tuple) else (source,))]
    assert main([*args, "--emit", "onnx", "-o", str(out)]) == 1
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("container", ["keras", "h5"])
def test_payload_is_real_when_unsafe_is_asked_for(tmp_path, container):
    """The same file does run its code when the user says --unsafe: the tests above can fail."""
    marker = tmp_path / "ran.txt"
    edit = keras3_form(marker) if container == "keras" else keras2_form(marker, None)
    source = (write_keras if container == "keras" else write_h5)(tmp_path / f"m.{container}", edit)
    load_keras_model(source, safe_mode=False)
    assert marker.read_text() == "ran"


def test_code_hidden_outside_lambda_layers_is_found():
    """``__lambda__`` as an activation, a list in a nested wrapper, a function named in ``os``."""
    code = payload(Path("/nonexistent"))
    nested = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Dense", "name": "dd", "config": {
            "name": "dd", "activation": {"class_name": "__lambda__", "config": {"value": code}}}}]}}
    assert "'dd'" in find_code(nested)
    wrapped = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "class_name": "Lambda", "config": {"name": "inner", "function": code}}}}]}}
    assert "'inner'" in find_code(wrapped) and "bytecode" in find_code(wrapped)
    named = {"class_name": "Lambda", "config": {"name": "sys", "function": "system", "module": "os",
                                                "function_type": "function"}}
    assert "'os'" in find_code(named)
    shape_only = {"class_name": "Lambda", "config": {"name": "ok", "function": "my_fn",
                                                     "module": "__main__", "output_shape": [None, 4]}}
    assert find_code(shape_only) is None
    deep: dict = {"a": 1}
    for _ in range(100_000):
        deep = {"x": deep}
    assert find_code(deep) is None  # no RecursionError


# ---- HDF5 pointing outside the file ------------------------------------------------------

SECRET = np.arange(12, dtype=np.float32).reshape(3, 4) + 1000.0


def _legacy_h5(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "model" / "m.h5"
    path.parent.mkdir()
    dense_model().save(path)
    with h5py.File(path, "r") as f:
        names = []
        f["model_weights"].visititems(lambda n, o: names.append(n) if n.endswith("kernel") else None)
    return path, "model_weights/" + names[0]


def _secret_h5(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.h5"
    secret.parent.mkdir()
    with h5py.File(secret, "w") as f:
        f["kernel"] = SECRET
    return secret


def link_external(path: Path, kernel: str, tmp_path: Path) -> None:
    _secret_h5(tmp_path)
    with h5py.File(path, "r+") as f:
        del f[kernel]
        f[kernel] = h5py.ExternalLink("../outside/secret.h5", "/kernel")


def store_external(path: Path, kernel: str, tmp_path: Path) -> None:
    raw = tmp_path / "outside" / "secret.bin"
    raw.parent.mkdir()
    raw.write_bytes(SECRET.tobytes())
    with h5py.File(path, "r+") as f:
        del f[kernel]
        f.create_dataset(kernel, shape=SECRET.shape, dtype="f4", external=[(str(raw), 0, SECRET.nbytes)])


def map_virtual(path: Path, kernel: str, tmp_path: Path) -> None:
    secret = _secret_h5(tmp_path)
    layout = h5py.VirtualLayout(shape=SECRET.shape, dtype="f4")
    layout[:] = h5py.VirtualSource(str(secret), "kernel", shape=SECRET.shape)
    with h5py.File(path, "r+") as f:
        del f[kernel]
        f.create_virtual_dataset(kernel, layout)


def soft_loop(path: Path, kernel: str, tmp_path: Path) -> None:
    with h5py.File(path, "r+") as f:
        del f[kernel]
        f[kernel] = h5py.SoftLink("/" + kernel)


@pytest.mark.parametrize("attack,words", [
    (link_external, "external link"), (store_external, "external file"),
    (map_virtual, "virtual dataset"), (soft_loop, "soft link")])
def test_hdf5_pointing_outside_is_refused(tmp_path, attack, words):
    path, kernel = _legacy_h5(tmp_path)
    attack(path, kernel, tmp_path)
    if attack is not soft_loop:  # the file is a working exploit: h5py itself follows it
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(f[kernel][()], SECRET)
    with pytest.raises(UnsafeModelError, match=words):
        load_keras_model(path)
    out = tmp_path / "out.onnx"
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 1
    assert not out.exists()


def test_external_link_inside_keras_archive_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    dense_model().save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    weights = tmp_path / "w.h5"
    weights.write_bytes(members["model.weights.h5"])
    _secret_h5(tmp_path)
    with h5py.File(weights, "r+") as f:
        kernels = []
        f.visititems(lambda n, o: kernels.append(n) if isinstance(o, h5py.Dataset) else None)
        del f[kernels[0]]
        f[kernels[0]] = h5py.ExternalLink(str(tmp_path / "outside" / "secret.h5"), "/kernel")
    members["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(UnsafeModelError, match="external link"):
        load_keras_model(path)


# ---- ONNX external data ----------------------------------------------------------------

def _onnx_with_external(folder: Path, location: str, data_file: Path) -> Path:
    data_file.parent.mkdir(parents=True, exist_ok=True)
    data_file.write_bytes(SECRET.tobytes())
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=SECRET.shape)
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(SECRET.nbytes))):
        w.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    path = folder / "m.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_onnx_external_data_beside_the_model_is_read(tmp_path):
    path = _onnx_with_external(tmp_path / "model", "w.bin", tmp_path / "model" / "w.bin")
    w = load_onnx(path).graph.initializer[0]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(w), SECRET)


@pytest.mark.parametrize("where", ["../secret.bin", "ABS", "link.bin"])
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, where):
    secret = tmp_path / "secret.bin"
    folder = tmp_path / "model"
    if where == "ABS":
        where = str(secret)
    path = _onnx_with_external(folder, where, secret)
    if where == "link.bin":
        (folder / "link.bin").symlink_to(secret)
    with pytest.raises(UnsafeModelError, match="outside the model's folder"):
        load_onnx(path)
    out = tmp_path / "out.onnx"
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 1
    assert not out.exists()
