"""Bad NeuralNetwork input: one clear kcc error naming the file and the layer, CLI exit 1, no output file."""
from __future__ import annotations

import pytest

from kcc.cli import main as kcc_main
from nn_specs import builder_module, rank5_cnn

import coremltools  # noqa: E402,F401  (a test dependency; the frontend itself never imports it)


def _cli_fails(tmp_path, capsys, data: bytes, *needles: str) -> str:
    src = tmp_path / "bad.mlmodel"
    src.write_bytes(data)
    out = tmp_path / "out.onnx"
    assert kcc_main([str(src), "--emit", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kcc: error:"), err
    assert str(src) in err[0]
    for needle in needles:
        assert needle in err[0], err[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    return err[0]


def test_corrupt_protobuf(tmp_path, capsys):
    data = rank5_cnn().SerializeToString()
    _cli_fails(tmp_path, capsys, data[: len(data) // 2] + b"\xff\xff\xff", "corrupt")


def test_unsupported_spec_version(tmp_path, capsys):
    spec = rank5_cnn()
    spec.specificationVersion = 9
    _cli_fails(tmp_path, capsys, spec.SerializeToString(), "specification version 9", "1 to 8")


def test_unknown_layer(tmp_path, capsys):
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 6, 6))], [("y", None)], disable_rank5_shape_mapping=True)
    b.add_random_normal_like("noise", "x", "y")
    _cli_fails(tmp_path, capsys, b.spec.SerializeToString(), "'noise'", "randomNormalLike", "Supported layers")


def test_nd_layer_in_a_rank5_model(tmp_path, capsys):
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 6, 6))], [("y", None)])
    b.add_topk("top", ["x"], ["y", "i"], k=2, axis=0)
    _cli_fails(tmp_path, capsys, b.spec.SerializeToString(), "'top'", "topK", "rank-5 model")


def test_layer_reading_an_undefined_blob(tmp_path, capsys):
    spec = rank5_cnn()
    spec.neuralNetwork.layers[1].input[0] = "nowhere"
    _cli_fails(tmp_path, capsys, spec.SerializeToString(), "'prelu'", "'nowhere'")
