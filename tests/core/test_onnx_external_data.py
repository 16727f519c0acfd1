"""ONNX models past the 2 GB protobuf limit get external data; NeuralNetwork Core ML refuses them.

No test allocates gigabytes: the thresholds are module constants
(``kcc.backends.onnx.external_data.EXTERNAL_DATA_THRESHOLD``,
``kcc.backends.coreml.size_limit.NEURALNETWORK_WEIGHT_LIMIT``) lowered here so a
small Dense + Embedding model takes the large-model path end to end: written as
``m.onnx`` + ``m.onnx.data``, loaded by onnxruntime from the path with default
session options, and compared with Keras.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.api import serialize  # noqa: E402
from kcc.backends.coreml import size_limit  # noqa: E402
from kcc.backends.onnx import external_data  # noqa: E402
from kcc.cli import main  # noqa: E402
from kcc.errors import OptionError  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx  # noqa: E402

L = keras.layers


def _model() -> keras.Model:
    """Token ids -> Embedding -> Dense stack; unequal sizes (7 tokens, 8 dims, 24 units, 3 outputs)."""
    keras.utils.set_random_seed(11)
    ids = keras.Input((7,), dtype="int32", name="ids")
    y = L.Embedding(300, 8, name="embed")(ids)
    y = L.Dense(24, activation="tanh", name="hidden")(y)
    y = L.Flatten(name="flat")(y)
    return keras.Model(ids, L.Dense(3, name="logits")(y), name="big")


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> tuple[Path, keras.Model]:
    path = tmp_path_factory.mktemp("big") / "big.keras"
    model = _model()
    model.save(path)
    return path, model


def _ids() -> np.ndarray:
    """Every row different; the first and the last token (0, 299) included."""
    ids = np.random.default_rng(3).integers(0, 300, (4, 7)).astype(np.int32)
    ids[0, 0], ids[3, 6] = 0, 299
    return ids


@pytest.fixture
def small_threshold(monkeypatch) -> None:
    monkeypatch.setattr(external_data, "EXTERNAL_DATA_THRESHOLD", 512)


def _reference(model: keras.Model) -> np.ndarray:
    ref = run_keras(model, [_ids()])[0]
    assert_not_degenerate(ref)
    return ref


def test_cli_writes_model_and_data_file_that_onnxruntime_loads(keras_file, tmp_path, small_threshold, capsys):
    path, model = keras_file
    out = tmp_path / "m.onnx"
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 0
    assert "m.onnx.data" in capsys.readouterr().out
    data = tmp_path / "m.onnx.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    weights = sum(np.asarray(w).nbytes for w in model.get_weights())
    assert data.stat().st_size > 0.8 * weights and out.stat().st_size < weights / 4
    stored = onnx.load(str(out), load_external_data=False)
    external = [t.name for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "embed_embeddings" in external and len(external) >= 2  # tensors under 1 KiB stay inline
    assert {e.value for t in stored.graph.initializer for e in t.external_data if e.key == "location"} \
        == {"m.onnx.data"}
    assert_close(_reference(model), run_onnx(str(out), {"ids": _ids()})[0], 1e-5)


def test_under_the_threshold_one_file(keras_file, tmp_path):
    path, model = keras_file
    out = tmp_path / "m.onnx"
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert_close(_reference(model), run_onnx(str(out), {"ids": _ids()})[0], 1e-5)


def test_in_memory_model_is_whole_and_kcc_save_splits_it(keras_file, tmp_path, small_threshold):
    path, model = keras_file
    proto = kcc.compile(path, target="onnx")
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in proto.graph.initializer)
    assert external_data.needs_external_data(proto)
    with pytest.raises(OptionError, match=r"2 GB.*kcc.save\(model, 'model.onnx'\).*model.onnx.data"):
        serialize(proto)
    before = proto.SerializeToString(deterministic=True)
    kcc.save(proto, tmp_path / "saved.onnx")
    assert proto.SerializeToString(deterministic=True) == before  # the caller's model stays whole
    assert (tmp_path / "saved.onnx.data").exists()
    ref = _reference(model)
    assert_close(ref, run_onnx(str(tmp_path / "saved.onnx"), {"ids": _ids()})[0], 1e-5)
    # onnx's own external-data writer, as the compile docstring says.
    onnx.save_model(proto, str(tmp_path / "own.onnx"), save_as_external_data=True, location="own.onnx.data")
    assert_close(ref, run_onnx(str(tmp_path / "own.onnx"), {"ids": _ids()})[0], 1e-5)


def test_the_large_model_check_still_catches_an_invalid_model(keras_file, small_threshold):
    from kcc.errors import ConversionError

    proto = kcc.compile(keras_file[0], target="onnx")
    proto.graph.node[-1].input[0] = "nowhere"
    with pytest.raises(ConversionError, match="invalid ONNX model"):
        external_data.check_onnx(proto)
    assert all(t.HasField("raw_data") for t in proto.graph.initializer if t.dims)


def test_a_failed_write_leaves_nothing(keras_file, tmp_path, small_threshold, monkeypatch, capsys):
    path, _ = keras_file
    out = tmp_path / "m.onnx"
    real_replace = os.replace
    moved = []

    def replace_then_fail(src, dst):
        moved.append(dst)
        if len(moved) == 2:  # the data file is in place; moving the model file fails
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "kcc: error:" in err and "No space left" in err
    assert list(tmp_path.iterdir()) == []

    from kcc.backends.onnx import writer

    real_memory, streamed = writer._memory, []

    def stream_one_then_fail(array):  # the data file holds one tensor when the disk fails
        if streamed:
            raise OSError(5, "Input/output error")
        streamed.append(array.shape)
        return real_memory(array)

    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(writer, "_memory", stream_one_then_fail)
    assert main([str(path), "--emit", "onnx", "-o", str(out)]) == 1
    assert "Input/output error" in capsys.readouterr().err
    assert streamed and list(tmp_path.iterdir()) == []


def test_coreml_neuralnetwork_past_2gb_is_a_clear_error(keras_file, tmp_path, monkeypatch, capsys):
    path, model = keras_file
    weights = sum(np.asarray(w).nbytes for w in model.get_weights())
    out = tmp_path / "m.mlmodel"
    monkeypatch.setattr(size_limit, "NEURALNETWORK_WEIGHT_LIMIT", weights // 4)
    assert main([str(path), "--emit", "coreml", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "kcc: error:" in err and "2 GB" in err and "NeuralNetwork" in err and "ML Program" in err
    assert "--emit onnx" in err and "float16" not in err  # half the weights would not fit either
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # Between half and all of the weights: float16 would fit, and the message says so.
    monkeypatch.setattr(size_limit, "NEURALNETWORK_WEIGHT_LIMIT", weights * 3 // 4)
    assert main([str(path), "--emit", "coreml", "-o", str(out)]) == 1
    assert "model_precision='float16'" in capsys.readouterr().err
    assert main([str(path), "--emit", "coreml", "--model-precision", "float16", "-o", str(out)]) == 0
    assert out.exists()


def test_a_failed_save_leaves_the_in_memory_model_whole(keras_file, tmp_path, small_threshold, monkeypatch):
    from kcc.errors import ModelFileError

    proto = kcc.compile(keras_file[0], target="onnx")
    before = proto.SerializeToString(deterministic=True)

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(ModelFileError, match="No space left"):
        kcc.save(proto, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
    assert proto.SerializeToString(deterministic=True) == before
    monkeypatch.undo()
    monkeypatch.setattr(external_data, "EXTERNAL_DATA_THRESHOLD", 512)
    from onnx import external_data_helper

    real_write, written = external_data_helper.save_external_data, []

    def write_one_then_fail(tensor, base_path):  # onnx's writer stops after its first tensor
        if written:
            raise OSError(5, "Input/output error")
        written.append(tensor.name)
        real_write(tensor, base_path)

    monkeypatch.setattr(external_data_helper, "save_external_data", write_one_then_fail)
    with pytest.raises(ModelFileError, match="Input/output error"):
        kcc.save(proto, tmp_path / "m.onnx")
    assert written and list(tmp_path.iterdir()) == []
    assert proto.SerializeToString(deterministic=True) == before
