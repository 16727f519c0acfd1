"""Bad ML Program input: one clear kcc error naming the file (and op), CLI exit 1, no output file.

A small valid package is made once; each case copies it and breaks one thing:
the protobuf, the weight file's presence, a blob offset or size, the sentinel,
the header, an op type, the opset, a blob path escaping the weights directory.
"""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import kcc
from kcc.cli import main as kcc_main
from kcc.errors import ModelFileError, UnsupportedOpError
from kcc.frontends.coreml import load_mlprogram
from kcc.frontends.coreml.package import MODEL_FILE, parse_spec
from mlp_helpers import coremltools, program_to_mlpackage, seeded

W = seeded((6, 5), 1)


@pytest.fixture(scope="module")
def good_package(tmp_path_factory) -> Path:
    coremltools()
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec((2, 5))])
    def prog(x):
        return mb.relu(x=mb.linear(x=x, weight=W), name="y")

    return program_to_mlpackage(prog, tmp_path_factory.mktemp("good") / "good.mlpackage")


@pytest.fixture
def pkg(tmp_path, good_package) -> Path:
    dst = tmp_path / "model.mlpackage"
    shutil.copytree(good_package, dst)
    return dst


def _spec(pkg: Path):
    return parse_spec((pkg / MODEL_FILE).read_bytes(), str(pkg))


def _save(pkg: Path, spec) -> None:
    (pkg / MODEL_FILE).write_bytes(spec.SerializeToString())


def _weights(pkg: Path) -> Path:
    return pkg / MODEL_FILE.parent / "weights" / "weight.bin"


def _blob_offset(spec) -> int:
    for op in spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations:
        if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
            return int(op.attributes["val"].blobFileValue.offset)
    raise AssertionError("the test package has no blob value")


def _patch(path: Path, offset: int, fmt: str, value: int) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def _fails(pkg: Path, error: type, *needles: str, tmp_path: Path | None = None, capsys=None) -> None:
    with pytest.raises(error) as info:
        load_mlprogram(pkg)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    if tmp_path is not None and capsys is not None:
        out = tmp_path / "out.onnx"
        assert kcc_main([str(pkg), "--emit", "onnx", "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kcc: error:"), err
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_good_package_converts(pkg):
    g = load_mlprogram(pkg)
    assert [n.op for n in g.nodes()] == ["dense", "relu"]
    np.testing.assert_array_equal(g.nodes()[0].inputs[1].const, W.T)


def test_corrupt_protobuf(pkg, tmp_path, capsys):
    (pkg / MODEL_FILE).write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    _fails(pkg, ModelFileError, str(pkg), "protobuf parse failed", tmp_path=tmp_path, capsys=capsys)


def test_missing_manifest(pkg):
    (pkg / "Manifest.json").unlink()
    _fails(pkg, ModelFileError, "Manifest.json")


def test_missing_weight_file(pkg, tmp_path, capsys):
    _weights(pkg).unlink()
    _fails(pkg, ModelFileError, "weight.bin", "is missing", "copy the whole .mlpackage", tmp_path=tmp_path,
           capsys=capsys)


def test_blob_offset_past_end(pkg, tmp_path, capsys):
    spec = _spec(pkg)
    for op in spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations:
        if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
            op.attributes["val"].blobFileValue.offset = 1 << 20
    _save(pkg, spec)
    _fails(pkg, ModelFileError, "weight.bin", "no blob metadata at offset 1048576", tmp_path=tmp_path, capsys=capsys)


def test_blob_size_past_end(pkg, tmp_path, capsys):
    offset = _blob_offset(_spec(pkg))
    _patch(_weights(pkg), offset + 8, "<Q", 1 << 40)  # sizeInBytes
    _fails(pkg, ModelFileError, "weight.bin", "past the end of the file", tmp_path=tmp_path, capsys=capsys)


def test_blob_data_offset_past_end(pkg):
    offset = _blob_offset(_spec(pkg))
    _patch(_weights(pkg), offset + 16, "<Q", (1 << 64) - 8)  # data offset near 2**64: no overflow
    _fails(pkg, ModelFileError, "past the end of the file")


def test_wrong_sentinel(pkg, tmp_path, capsys):
    offset = _blob_offset(_spec(pkg))
    _patch(_weights(pkg), offset, "<I", 0xDEADBEEE)
    _fails(pkg, ModelFileError, "weight.bin", "sentinel 0xdeadbeee", tmp_path=tmp_path, capsys=capsys)


def test_wrong_blob_dtype(pkg):
    offset = _blob_offset(_spec(pkg))
    _patch(_weights(pkg), offset + 4, "<I", 1)  # float16 where the program declares float32
    _fails(pkg, ModelFileError, "stores float16 data", "declares float32")


def test_bad_header(pkg):
    _patch(_weights(pkg), 4, "<I", 7)
    _fails(pkg, ModelFileError, "storage format version 7")
    _weights(pkg).write_bytes(b"\x01\x00")
    _fails(pkg, ModelFileError, "shorter than the 64-byte storage header")


def test_unknown_mil_op(pkg, tmp_path, capsys):
    spec = _spec(pkg)
    for op in spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations:
        if op.type == "relu":
            op.type = "frobnicate"
    _save(pkg, spec)
    _fails(pkg, UnsupportedOpError, str(pkg), "'frobnicate'", "'y'", "Supported MIL ops", tmp_path=tmp_path,
           capsys=capsys)


def test_unsupported_opset(pkg, tmp_path, capsys):
    spec = _spec(pkg)
    fn = spec.mlProgram.functions["main"]
    fn.opset = "CoreML9"
    fn.block_specializations["CoreML9"].CopyFrom(fn.block_specializations["CoreML5"])
    del fn.block_specializations["CoreML5"]
    _save(pkg, spec)
    _fails(pkg, ModelFileError, str(pkg), "'CoreML9'", "minimum_deployment_target", tmp_path=tmp_path, capsys=capsys)


def test_blob_path_escaping_the_package(pkg, tmp_path):
    outside = tmp_path / "secret.bin"
    shutil.copy(_weights(pkg), outside)
    spec = _spec(pkg)
    for op in spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations:
        if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
            op.attributes["val"].blobFileValue.fileName = "@model_path/weights/../../../../secret.bin"
    _save(pkg, spec)
    _fails(pkg, ModelFileError, "outside the model's weights directory")


def test_unknown_function(pkg):
    with pytest.raises(ModelFileError, match="no function 'other'.*main"):
        load_mlprogram(pkg, {"function_name": "other"})
    with pytest.raises(ModelFileError, match="no function 'other'"):
        kcc.compile(str(pkg), target="onnx", function_name="other")


def test_declared_shape_disagreeing_with_the_ops(pkg):
    from kcc.errors import ConversionError

    spec = _spec(pkg)
    for op in spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations:
        if op.type == "relu":
            op.outputs[0].type.tensorType.dimensions[1].constant.size = 7  # (2, 6) declared as (2, 7)
    _save(pkg, spec)
    with pytest.raises(ConversionError, match=r"'y'.*shape \[2, 6\].*declares \[2, 7\]"):
        load_mlprogram(pkg)


def test_fuzz_regressions_manifest_and_output_dtype(pkg, tmp_path):
    """Fuzz cases 1700, 45736, 65794 (Manifest.json nested 100,000 deep; itemInfoEntries a list; a
    null byte in the root model's path) and an
    output whose multiArray dataType is 99: each one clear kcc error, never a Python crash."""
    from kcc.coreml import predict
    from kcc.errors import KccError

    for name, text in (("deep", "[" * 100_000 + "]" * 100_000),
                       ("list", '{"rootModelIdentifier": 0, "itemInfoEntries": [], "fileFormatVersion": "1.0.0"}'),
                       # case 65794: a root model path holding a null byte (ValueError from pathlib)
                       ("null", '{"rootModelIdentifier": "r", "itemInfoEntries": {"r": {"path": "a\\u0000b"}}}')):
        bad = tmp_path / f"{name}.mlpackage"
        shutil.copytree(pkg, bad)
        (bad / "Manifest.json").write_text(text)
        with pytest.raises(KccError, match="Manifest.json"):
            kcc.compile(str(bad), target="onnx")
    spec = _spec(pkg)
    spec.description.output[0].type.multiArrayType.dataType = 99
    _save(pkg, spec)
    with pytest.raises(KccError, match="data type 99"):
        predict(str(pkg), {spec.description.input[0].name: seeded((2, 5), 3)})
