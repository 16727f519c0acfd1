"""An HDF5 file's object tree as one walk found it: paths, groups, datasets opened at the low level.

``safety.check_hdf5`` walks every link of a weights file once (to refuse links out
of the file) and records what it found here; the Keras 3 weights reader
(``archive_keras3.fill_weights``) then looks layers and variables up by path in
this tree instead of through h5py's high-level ``Group`` and ``Dataset`` objects,
which cost tens of microseconds per lookup: most of the load time of a model with
thousands of layers (bench/graph_scaling.py). Datasets are read straight into
the array kcc keeps (``limits.read_dataset``).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5o

# What H5Tree.add is given for a group or a dataset: the tree keeps paths, not open
# objects (HDF5 holds several kB per open object; a dataset is opened when it is read).
GROUP, DATASET = "group", "dataset"


class H5Tree:
    """Every path of one HDF5 file (relative to its root, ``a/b/c``) and the datasets among them."""

    def __init__(self, file: h5py.File):
        self.file = file
        self.children: dict[str, list[str]] = {"": []}  # group path -> its member names, in link order
        self.datasets: set[str] = set()
        self.declared_bytes = 0  # what the datasets declare, each object counted once

    def add(self, path: str, obj: Any) -> None:
        """Record a link found by the walk (parents come before their members): ``obj`` is
        ``GROUP``, ``DATASET``, or None for another kind of object."""
        parent, _, name = path.rpartition("/")
        self.children.setdefault(parent, []).append(name)
        if obj is GROUP:
            self.children.setdefault(path, [])
        elif obj is DATASET:
            self.datasets.add(path)

    def dataset(self, path: str) -> Any:
        return h5o.open(self.file.id, path.encode())

    @property
    def root(self) -> H5Node:
        return H5Node(self, "")


class H5Node:
    """A group of an ``H5Tree`` (the subset of ``h5py.Group`` the weights readers use)."""

    __slots__ = ("tree", "path")

    def __init__(self, tree: H5Tree, path: str):
        self.tree = tree
        self.path = path

    @property
    def name(self) -> str:
        """The absolute HDF5 path, as ``h5py.Group.name`` gives it."""
        return "/" + self.path

    def _join(self, key: str) -> str:
        return f"{self.path}/{key}" if self.path else key

    def get(self, key: str) -> H5Node | Any | None:
        """The member group (an ``H5Node``) or dataset (an ``h5d.DatasetID``) ``key``, or None."""
        path = self._join(key)
        if path in self.tree.children:
            return H5Node(self.tree, path)
        return self.tree.dataset(path) if path in self.tree.datasets else None

    def __contains__(self, key: str) -> bool:
        path = self._join(key)
        return path in self.tree.children or path in self.tree.datasets

    def __len__(self) -> int:
        return len(self.tree.children[self.path])

    def keys(self) -> list[str]:
        return list(self.tree.children[self.path])

    def groups(self) -> Iterator[H5Node]:
        for key in self.tree.children[self.path]:
            child = self.get(key)
            if isinstance(child, H5Node):
                yield child

    def datasets(self) -> Iterator[tuple[str, Any]]:
        """Every dataset below this group: (path relative to it, DatasetID), depth first in
        link order (the order of ``h5py.Group.visititems``)."""
        children, found = self.tree.children, self.tree.datasets
        stack = [(self.path, "")]
        while stack:
            path, rel = stack.pop()
            if path in found:
                yield rel, self.tree.dataset(path)
                continue
            for key in reversed(children.get(path, ())):
                stack.append((f"{path}/{key}" if path else key, f"{rel}/{key}" if rel else key))

    def attr(self, key: str) -> Any:
        """The group's attribute ``key`` (strings decoded), or None when it has none."""
        oid = h5o.open(self.tree.file.id, self.path.encode() or b".")
        if not h5a.exists(oid, key.encode()):
            return None
        try:
            a = h5a.open(oid, key.encode())
            value = np.empty(a.shape if a.shape is not None else (), a.dtype)
            a.read(value)
            value = value[()]
        except Exception:  # noqa: BLE001 - a type the low level cannot read: h5py's own reading
            value = h5py.Group(oid).attrs.get(key)
        return value.decode("utf-8") if isinstance(value, bytes) else value

