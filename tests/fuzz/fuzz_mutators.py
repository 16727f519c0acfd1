"""Seeded mutations of model files at five levels: bytes, zip entries, JSON fields,
HDF5 attributes/datasets, protobuf fields.

Each mutator takes the seed's files (role -> bytes) and a ``random.Random`` and
returns the mutated files plus a one-line description of what it did. The same
random state gives the same file, so a case number reproduces a case exactly.
"""
from __future__ import annotations

import copy
import io
import json
import random
import struct
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np

Files = dict[str, bytes]

INTS = [0, -1, -5, 1, 2, 3, 7, 16, 32, 255, 2**31, -2**31, 2**63, 10**30]
VALUES: list[Any] = [None, True, False, 1.5, -0.0, float("nan"), float("inf"), "", "x", "same", "valid",
                     "causal", "relu", "bogus_activation", "channels_first", [], [3], [3, 3], [0, 0],
                     [-1, 2], [1, 2, 3, 4, 5], [None, 4], {}, {"class_name": "Bogus", "config": {}},
                     "A" * 5000, "\u00e9\u0000"]


def _interesting_number(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return not v
    candidates = INTS + [v + 1, v - 1, v * 2, -v, 0] if isinstance(v, (int, float)) else INTS
    return rng.choice(candidates)


# ---- bytes ---------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    done = []
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        op = rng.choice(["flip", "set", "truncate", "insert", "copy", "zero_run", "flip", "set"])
        pos = rng.randrange(len(b))
        if op == "flip":
            b[pos] ^= 1 << rng.randrange(8)
        elif op == "set":
            b[pos] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, rng.randrange(256)])
        elif op == "truncate":
            del b[pos:]
        elif op == "insert":
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "copy":
            n = rng.randint(1, 64)
            src = rng.randrange(len(b))
            b[pos:pos + n] = b[src:src + n]
        else:
            n = rng.randint(1, 64)
            b[pos:pos + n] = bytes(min(n, len(b) - pos))
        done.append(f"{op}@{pos}")
    return bytes(b), "bytes " + ",".join(done)


# ---- JSON ----------------------------------------------------------------------------------

def _paths(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every value in the document."""
    out, stack = [], [doc]
    while stack:
        item = stack.pop()
        keys = list(item.keys()) if isinstance(item, dict) else range(len(item)) if isinstance(item, list) else []
        for k in keys:
            out.append((item, k))
            if isinstance(item[k], (dict, list)):
                stack.append(item[k])
    return out


def _strings(doc: Any) -> list[str]:
    return [c[k] for c, k in _paths(doc) if isinstance(c[k], str)][:500]


DEEP = "__kcc_fuzz_deep__"


def mutate_json(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    doc = json.loads(text)
    paths = _paths(doc)
    strings = _strings(doc) or ["x"]
    done = []
    deep = 0
    for _ in range(rng.randint(1, 3)):
        if not paths:
            break
        container, key = rng.choice(paths)
        value = container[key]
        op = rng.choices(["replace", "delete", "duplicate", "deep", "swap"], [70, 12, 8, 2, 8])[0]
        if op == "replace":
            if isinstance(value, (int, float)) and rng.random() < 0.7:
                new = _interesting_number(value, rng)
            elif isinstance(value, str) and rng.random() < 0.5:
                new = rng.choice(strings)
            elif isinstance(value, list) and value and rng.random() < 0.5:
                new = [_interesting_number(v, rng) if isinstance(v, (int, float)) else v for v in value]
            else:
                new = copy.deepcopy(rng.choice(VALUES))  # never share (and so mutate) the bank
            container[key] = new
        elif op == "delete":
            del container[key]
        elif op == "duplicate" and isinstance(container, list):
            container.insert(key, json.loads(json.dumps(value)))
        elif op == "deep":
            container[key] = DEEP
            deep = rng.choice([200, 5000, 100000])
        else:
            other_c, other_k = rng.choice(paths)
            try:  # copies: swapping a value with one inside it must not make a cycle
                container[key], other_c[other_k] = copy.deepcopy(other_c[other_k]), copy.deepcopy(value)
            except (KeyError, IndexError):
                pass
        done.append(f"{op} {str(key)[:40]}")
        paths = _paths(doc)
    out = json.dumps(doc)
    if deep:
        out = out.replace(json.dumps(DEEP), "[" * deep + "1" + "]" * deep, 1)
    return out.encode(), "json " + "; ".join(done)


# ---- zip entries ---------------------------------------------------------------------------

def _members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _patch_headers(data: bytes, index: int, local_off: int, central_off: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of entry ``index`` in both its local and its central header."""
    b = bytearray(data)
    centrals = [i for i in range(len(b)) if b[i:i + 4] == b"PK\x01\x02"]
    locals_ = [i for i in range(len(b)) if b[i:i + 4] == b"PK\x03\x04"]
    if index < len(centrals):
        struct.pack_into(fmt, b, centrals[index] + central_off, value)
    if index < len(locals_):
        struct.pack_into(fmt, b, locals_[index] + local_off, value)
    return bytes(b)


def mutate_entries(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    members = _members(data)
    i = rng.randrange(len(members))
    name, payload = members[i]
    op = rng.choice(["drop", "rename", "duplicate", "random", "empty", "truncate", "method",
                     "bomb", "lie_size", "encrypt", "unknown_method", "traversal"])
    if op == "drop":
        del members[i]
    elif op == "rename":
        members[i] = (rng.choice(["Config.json", "model.weights.json", "x/" + name, name + " "]), payload)
    elif op == "duplicate":
        members.insert(i, (name, rng.choice([payload, b"{}", b"garbage"])))
    elif op == "random":
        members[i] = (name, bytes(rng.randrange(256) for _ in range(rng.randint(1, 2048))))
    elif op == "empty":
        members[i] = (name, b"")
    elif op == "truncate":
        members[i] = (name, payload[:rng.randrange(max(len(payload), 1))])
    elif op == "traversal":
        members.append(("../../kcc_fuzz_escape.txt", b"x"))
    elif op == "bomb":
        members[i] = (name, bytes(rng.choice([5, 20]) << 20))
        return _zip(members, zipfile.ZIP_DEFLATED), f"entries bomb {name}"
    if op == "method":
        method = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
        return _zip(members, method), f"entries method {method}"
    out = _zip(members)
    if op == "lie_size":
        out = _patch_headers(out, i, 22, 24, "<I", rng.choice([0xFFFFFFF0, 10**9, len(payload) + 1]))
    elif op == "encrypt":
        out = _patch_headers(out, i, 6, 8, "<H", 1)
    elif op == "unknown_method":
        out = _patch_headers(out, i, 8, 10, "<H", rng.choice([1, 6, 9, 99, 97]))
    return out, f"entries {op} {name}"


def with_entry(data: bytes, entry: str, mutate: Callable[[bytes, random.Random], tuple[bytes, str]],
               rng: random.Random) -> tuple[bytes, str]:
    """Mutate one member of a zip archive, keep the rest."""
    members = _members(data)
    out, what = [], ""
    for name, payload in members:
        if name == entry:
            payload, what = mutate(payload, rng)
        out.append((name, payload))
    return _zip(out), f"{entry}: {what}"


# ---- HDF5 ----------------------------------------------------------------------------------

def _h5_objects(f) -> tuple[list, list]:
    import h5py

    groups, datasets = [f], []
    f.visititems(lambda n, o: (datasets if isinstance(o, h5py.Dataset) else groups).append(o))
    return groups, datasets


def _attr_value(old: Any, rng: random.Random) -> Any:
    if isinstance(old, np.ndarray) and old.dtype.kind in "SOU" and old.size:
        items = list(old)
        op = rng.choice(["drop", "add", "dup", "reverse", "bogus"])
        if op == "drop":
            items.pop(rng.randrange(len(items)))
        elif op == "add":
            items.append(b"bogus/kernel:0")
        elif op == "dup":
            items.append(items[0])
        elif op == "reverse":
            items.reverse()
        else:
            items[rng.randrange(len(items))] = rng.choice([b"", b"\xff\xfe", b"../x", b"a" * 300])
        return np.array(items, dtype=old.dtype if op != "bogus" else "S300")
    return rng.choice([b"garbage", "x", 0, -1, 2**62, np.arange(3), np.array([b"a", b"b"]),
                       b'{"class_name": "Functional", "config": {"layers": 5}}', b"{", b"\xff\xfe",
                       np.float64("nan")])


def mutate_hdf5(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    import h5py

    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(data)
        tmp.flush()
        with h5py.File(tmp.name, "r+") as f:
            what = _mutate_h5_file(f, rng)
        with open(tmp.name, "rb") as fh:
            return fh.read(), "hdf5 " + what


def _mutate_h5_file(f, rng: random.Random) -> str:
    import h5py

    groups, datasets = _h5_objects(f)
    attrs = [(o, k) for o in groups + datasets for k in o.attrs.keys()]
    op = rng.choices(["attr_delete", "attr_replace", "ds_shape", "ds_dtype", "ds_delete", "ds_group",
                      "ds_huge", "ds_huge_chunked", "ds_nonfinite", "ds_scalar", "group_delete",
                      "hard_link"], [8, 20, 20, 10, 8, 4, 5, 4, 6, 5, 6, 4])[0]
    if op.startswith("attr") and attrs:
        obj, key = rng.choice(attrs)
        if op == "attr_delete":
            del obj.attrs[key]
        else:
            obj.attrs[key] = _attr_value(obj.attrs[key], rng)
        return f"{op} {obj.name}@{key}"
    if op == "group_delete" and len(groups) > 1:
        g = rng.choice(groups[1:])
        name = g.name
        del f[name]
        return f"{op} {name}"
    if not datasets:
        return "none"
    ds = rng.choice(datasets)
    name, parent = ds.name, ds.parent
    data = ds[()]
    key = name.rsplit("/", 1)[-1]
    if op == "hard_link":
        other = rng.choice(datasets)
        if other.name != name:
            del parent[key]
            parent[key] = other
        return f"{op} {name} -> {other.name}"
    del parent[key]
    if op == "ds_shape":
        shape = list(np.shape(data))
        change = rng.choice(["grow", "shrink", "add_dim", "drop_dim", "zero"])
        if change == "add_dim" or not shape:
            shape.append(rng.choice([1, 2]))
        elif change == "drop_dim":
            shape.pop(rng.randrange(len(shape)))
        else:
            i = rng.randrange(len(shape))
            shape[i] = 0 if change == "zero" else max(shape[i] + (1 if change == "grow" else -1), 0)
        parent.create_dataset(key, data=np.random.default_rng(0).standard_normal(shape).astype("f4"))
        return f"{op} {name} -> {shape}"
    if op == "ds_dtype":
        dtype = rng.choice(["i4", "f2", "f8", "?", "c8", "S4", "u1"])
        parent.create_dataset(key, data=np.asarray(data).astype(dtype) if dtype != "S4"
                              else np.full(np.shape(data), b"ab", "S4"))
        return f"{op} {name} -> {dtype}"
    if op == "ds_delete":
        return f"{op} {name}"
    if op == "ds_group":
        parent.create_group(key)
        return f"{op} {name}"
    if op == "ds_huge":
        parent.create_dataset(key, shape=(10**6, 10**6), dtype="f4")
        return f"{op} {name}"
    if op == "ds_huge_chunked":
        parent.create_dataset(key, shape=(10**5, 10**5), dtype="f4", chunks=(100, 100), compression="gzip")
        return f"{op} {name}"
    if op == "ds_nonfinite":
        arr = np.array(data, dtype="f4", copy=True)
        if arr.size:
            arr.flat[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf, 3e38])
        parent.create_dataset(key, data=arr)
        return f"{op} {name}"
    parent.create_dataset(key, data=np.float32(1.0))
    return f"ds_scalar {name}"


# ---- protobuf ------------------------------------------------------------------------------

def _fields(msg, out: list, limit: int = 4000) -> None:
    """Every (message, field, index) that can be mutated, depth first."""
    stack = [msg]
    while stack and len(out) < limit:
        m = stack.pop()
        for fd, value in m.ListFields():
            if fd.is_repeated:
                out.append((m, fd, None))
                if fd.type == fd.TYPE_MESSAGE and not _is_map(fd):
                    stack.extend(list(value)[:64])
            else:
                out.append((m, fd, 0))
                if fd.type == fd.TYPE_MESSAGE:
                    stack.append(value)


def _is_map(fd) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _scalar(fd, old: Any, rng: random.Random, strings: list[str]) -> Any:
    t = fd.type
    if t == fd.TYPE_BOOL:
        return not old
    if t in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
        return rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e30, -old, old * 2])
    if t == fd.TYPE_STRING:
        return rng.choice(strings + ["", "x" * 300, old + "_", "0"])
    if t == fd.TYPE_BYTES:
        op = rng.choice(["truncate", "extend", "flip", "empty"])
        if op == "truncate":
            return old[:rng.randrange(len(old))] if old else b""
        if op == "extend":
            return old + bytes(rng.randint(1, 16))
        if op == "flip" and old:
            b = bytearray(old)
            b[rng.randrange(len(b))] ^= 0xFF
            return bytes(b)
        return b""
    if t == fd.TYPE_ENUM:  # closed (proto2) enums refuse unknown numbers
        unknown = [] if getattr(fd.enum_type, "is_closed", True) else [99, -1]
        return rng.choice([v.number for v in fd.enum_type.values] + unknown)
    unsigned = t in (fd.TYPE_UINT32, fd.TYPE_UINT64, fd.TYPE_FIXED32, fd.TYPE_FIXED64)
    bits = 32 if t in (fd.TYPE_INT32, fd.TYPE_UINT32, fd.TYPE_SINT32, fd.TYPE_FIXED32, fd.TYPE_SFIXED32) else 64
    v = _interesting_number(old, rng)
    lo, hi = (0, 2**bits - 1) if unsigned else (-2**(bits - 1), 2**(bits - 1) - 1)
    return int(min(max(v, lo), hi)) if isinstance(v, int) else lo


def mutate_proto(data: bytes, rng: random.Random, message_type: Callable[[], Any]) -> tuple[bytes, str]:
    msg = message_type()
    msg.ParseFromString(data)
    done = []
    for _ in range(rng.randint(1, 3)):
        targets: list = []
        _fields(msg, targets)
        if not targets:
            break
        m, fd, index = rng.choice(targets)
        strings = [v for _, f, i in targets[:400] if f.type == f.TYPE_STRING and i == 0
                   for v in [getattr(_, f.name)]][:100]
        if index is None:  # a repeated field
            seq = getattr(m, fd.name)
            op = rng.choice(["delete", "duplicate", "clear", "append", "mutate"])
            if _is_map(fd) or not len(seq):
                op = "clear"
            if op == "clear":
                m.ClearField(fd.name)
            elif op == "delete":
                del seq[rng.randrange(len(seq))]
            elif op == "duplicate":
                j = rng.randrange(len(seq))
                if fd.type == fd.TYPE_MESSAGE:
                    seq.add().CopyFrom(seq[j])
                else:
                    seq.append(seq[j])
            elif fd.type != fd.TYPE_MESSAGE:
                j = rng.randrange(len(seq))
                value = _scalar(fd, seq[j], rng, strings)
                if op == "append":
                    seq.append(value)
                else:
                    seq[j] = value
            else:
                op = "delete"
                del seq[rng.randrange(len(seq))]
            done.append(f"{fd.name}[] {op}")
        elif fd.type == fd.TYPE_MESSAGE:
            m.ClearField(fd.name)
            done.append(f"{fd.name} clear")
        else:
            setattr(m, fd.name, _scalar(fd, getattr(m, fd.name), rng, strings))
            done.append(f"{fd.name} set")
    return msg.SerializeToString(), "proto " + "; ".join(done)
