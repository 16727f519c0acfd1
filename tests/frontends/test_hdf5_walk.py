"""safety.check_hdf5 walks a weights file once: it refuses links out of the file and
returns the tree it found: every path, the datasets, and the bytes they declare (each
object once); the Keras 3 weights reader reads through that tree."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from kcc.errors import UnsafeModelError
from kcc.frontends.keras.safety import check_hdf5


def _file(path):
    with h5py.File(path, "w") as f:
        f["layers/dense/vars/0"] = np.zeros((3, 5), np.float32)
        f["layers/dense/vars/1"] = np.zeros((5,), np.float64)
        f["layers/empty"] = h5py.Empty("f4")
        f["layers/scalar"] = np.int16(7)
        f["layers/text"] = np.array([b"ab", b"cde"])
        f["layers/again"] = f["layers/dense/vars/0"]  # a second hard link: one object, counted once
        f.create_group("layers/nothing")
        f["layers/t"] = np.dtype("f8")  # a committed datatype: no data
    return path


def test_walk_returns_the_declared_bytes_each_object_once(tmp_path):
    with h5py.File(_file(tmp_path / "w.h5"), "r") as f:
        tree = check_hdf5(f, "w.h5")
        assert tree.declared_bytes == 3 * 5 * 4 + 5 * 8 + 2 + 2 * 3
        assert tree.root.keys() == ["layers"]
        assert sorted(tree.root.get("layers").keys()) == ["again", "dense", "empty", "nothing",
                                                          "scalar", "t", "text"]
        assert [name for name, _ in tree.root.get("layers").datasets()] == [
            "again", "dense/vars/0", "dense/vars/1", "empty", "scalar", "text"]
        assert tree.root.get("layers/nothing").keys() == []


def test_walk_still_refuses_a_soft_link(tmp_path):
    path = _file(tmp_path / "w.h5")
    with h5py.File(path, "r+") as f:
        f["layers/link"] = h5py.SoftLink("/layers/dense")
    with h5py.File(path, "r") as f, pytest.raises(UnsafeModelError, match="soft link"):
        check_hdf5(f, "w.h5")
