"""kcc's MIL blob reader against coremltools' own blob writer (its C++ MILBlob library).

Every element type coremltools writes is read back equal, sub-byte types
included (odd counts, so the padding bits matter); byte-aligned arrays are views
of the file's memory map, not copies.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.errors import ModelFileError
from kcc.frontends.coreml.blob import BlobFile
from mlp_helpers import coremltools

rng = np.random.default_rng(0)
CASES = {  # blob type name -> (writer method, values)
    "float32": ("write_float_data", rng.standard_normal(7).astype(np.float32)),
    "float16": ("write_fp16_data", rng.standard_normal(9).astype(np.float16)),
    "int8": ("write_int8_data", rng.integers(-128, 128, 11).astype(np.int8)),
    "uint8": ("write_uint8_data", rng.integers(0, 256, 5).astype(np.uint8)),
    "int16": ("write_int16_data", rng.integers(-3000, 3000, 6).astype(np.int16)),
    "uint16": ("write_uint16_data", rng.integers(0, 60000, 6).astype(np.uint16)),
    "int32": ("write_int32_data", rng.integers(-10 ** 6, 10 ** 6, 3).astype(np.int32)),
    "uint32": ("write_uint32_data", rng.integers(0, 10 ** 6, 3).astype(np.uint32)),
    "int4": ("write_int4_data", rng.integers(-8, 8, 13).astype(np.int8)),
    "uint4": ("write_uint4_data", rng.integers(0, 16, 13).astype(np.uint8)),
    "uint1": ("write_uint1_data", rng.integers(0, 2, 19).astype(np.uint8)),
    "uint2": ("write_uint2_data", rng.integers(0, 4, 17).astype(np.uint8)),
    "uint3": ("write_uint3_data", rng.integers(0, 8, 15).astype(np.uint8)),
    "uint6": ("write_uint6_data", rng.integers(0, 64, 9).astype(np.uint8)),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    coremltools()
    from coremltools.libmilstoragepython import _BlobStorageWriter

    path = tmp_path_factory.mktemp("blob") / "weight.bin"
    writer = _BlobStorageWriter(str(path))
    offsets = {}
    for name, (method, values) in CASES.items():
        arg = values.view(np.uint16) if name == "float16" else values
        offsets[name] = getattr(writer, method)(np.ascontiguousarray(arg))
    del writer  # flushes and closes the file
    return path, offsets


@pytest.mark.parametrize("name", sorted(CASES))
def test_reads_what_coremltools_writes(written, name):
    path, offsets = written
    blob = BlobFile(path)
    assert blob.count == len(CASES)
    values = CASES[name][1]
    got = blob.read(offsets[name], values.size, expect=name)
    np.testing.assert_array_equal(got, values)
    assert blob.info(offsets[name]).dtype == name


def test_byte_aligned_blobs_are_views(written):
    path, offsets = written
    got = BlobFile(path).read(offsets["float32"], 7, expect="float32")
    assert not got.flags.owndata and not got.flags.writeable


def test_count_larger_than_blob(written):
    path, offsets = written
    with pytest.raises(ModelFileError, match="holds 7 float32 values.*needs 8"):
        BlobFile(path).read(offsets["float32"], 8)
    with pytest.raises(ModelFileError, match="holds 13 int4 values.*needs 14"):
        BlobFile(path).read(offsets["int4"], 14)


def test_misaligned_or_header_offset(written):
    path, offsets = written
    for bad in (0, 32, offsets["float32"] + 8):
        with pytest.raises(ModelFileError, match="no blob metadata at offset"):
            BlobFile(path).read(bad, 1)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read the weight file"):
        BlobFile(tmp_path / "nope.bin")
