"""Resource limits a model file is held to before kcc allocates what it declares.

A file states sizes (array shapes, zip entry sizes, nesting) that kcc would
otherwise trust and allocate: an HDF5 dataset declared 10^6 x 10^6 with no
stored bytes reads back as four terabytes of fill values, a 1 KB zip entry can
inflate to gigabytes, a config nested ten thousand levels deep exhausts the
Python stack. Every reader checks here first, so the answer is one
``ModelFileError`` naming the file, the object and both sizes:

* ``check_memory``: a conversion whose weights would not fit in the machine's
  physical memory (``os.sysconf``) fails up front and says how much it needs;
* ``check_zip``: entry sizes, compression ratios, methods and encryption of a
  zip archive, from its directory, before any entry is inflated;
* ``read_dataset``: an HDF5 dataset's declared size against the bytes it
  actually stores (allowing for compression), before the array is built;
* ``load_json`` / ``check_depth``: nesting depth of configs, iteratively, so a
  hostile file gives an error instead of a RecursionError;
* ``check_count``: how many layers/nodes a graph may have;
* ``check_hdf5_heaps``: a corrupt HDF5 global heap that would make the HDF5
  library spin forever (no time bound can interrupt C code).
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from kcc.errors import ModelFileError

# Deeper than any real Keras config (a model nested 20 levels deep is ~80) and far
# below what the recursive walkers downstream (copy.deepcopy, parsers) can take.
MAX_JSON_DEPTH = 100
# Layers in one Keras model, nodes in one ONNX graph (subgraphs included).
MAX_LAYERS = 100_000
MAX_NODES = 1_000_000
# Subgraphs within subgraphs (ONNX If/Loop/Scan bodies).
MAX_GRAPH_DEPTH = 32
# Keras stores archive entries uncompressed; recompressed float weights shrink by ~1.1:1
# and JSON by ~10:1. Beyond this an entry is mostly one repeated byte: a zip bomb
# (deflate reaches ~1032:1 on zeros). Also the bound for compressed HDF5 datasets.
MAX_COMPRESSION_RATIO = 200
# Entries this small may have any ratio (a config of repeated keys compresses well).
SMALL_ENTRY = 1 << 20
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
               zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
# Weights are held about twice during a conversion (as read, then relaid out).
WORKING_COPIES = 2


def physical_memory() -> int:
    """Bytes of physical memory (``SC_PHYS_PAGES * SC_PAGE_SIZE``); 2**63 if unknown."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 63


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_memory(nbytes: int, where: str, what: str = "its weights") -> None:
    """Refuse a conversion that needs more than the machine's physical memory for ``what``."""
    need = int(nbytes) * WORKING_COPIES
    have = physical_memory()
    if need > have:
        raise ModelFileError(
            f"{where}: converting it needs about {format_bytes(need)} of memory for {what} "
            f"({format_bytes(int(nbytes))} declared), but this machine has {format_bytes(have)}; "
            "convert it on a machine with more memory (or check that the file is not corrupt)")


def array_bytes(shape: Any, itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python ints: no overflow)."""
    n = int(itemsize)
    for d in shape:
        n *= int(d)
    return n


def check_zip(archive: zipfile.ZipFile, where: str) -> None:
    """Refuse encrypted entries, unknown methods, and entries that inflate beyond reason.

    Reads only the central directory. ``zipfile`` stops inflating at the declared
    ``file_size`` (and then fails its CRC check), so bounding the declared sizes
    bounds what reading an entry can allocate.
    """
    total = 0
    for info in archive.infolist():
        name = info.filename
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{where}: archive entry {name!r} is encrypted; kcc reads only "
                                 "unencrypted archives as Keras writes them")
        if info.compress_type not in ZIP_METHODS:
            raise ModelFileError(f"{where}: archive entry {name!r} uses compression method "
                                 f"{info.compress_type}, which kcc does not read (it reads "
                                 f"{', '.join(ZIP_METHODS.values())}); re-save the model with Keras")
        size, packed = info.file_size, info.compress_size
        if info.compress_type == zipfile.ZIP_STORED and size != packed:
            raise ModelFileError(f"{where}: archive entry {name!r} is stored uncompressed but "
                                 f"declares {size} bytes in {packed} (corrupt archive)")
        if size > SMALL_ENTRY and size > packed * MAX_COMPRESSION_RATIO:
            raise ModelFileError(
                f"{where}: archive entry {name!r} would inflate {packed} bytes to {size} "
                f"(ratio {size // max(packed, 1)}:1, more than {MAX_COMPRESSION_RATIO}:1); "
                "refusing a zip bomb")
        total += size
    check_memory(total, where, "its unpacked archive")


def check_depth(value: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse nested lists/dicts deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ModelFileError(f"{where}: the config nests deeper than {limit} levels; no Keras "
                                 "model does (corrupt or hostile file)")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def load_json(text: str | bytes, where: str) -> Any:
    """``json.loads`` with nesting bounded: RecursionError becomes a clear error."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{where}: the JSON nests too deeply to read (more than "
                             f"{MAX_JSON_DEPTH} levels are refused; corrupt or hostile file)") from None
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{where}: the JSON is not valid UTF-8 text: {e}") from None
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{where}: not valid JSON: {e}") from None
    check_depth(value, where)
    return value


def check_count(n: int, limit: int, where: str, what: str) -> None:
    if n > limit:
        raise ModelFileError(f"{where}: {n} {what} is more than the {limit} kcc accepts "
                             "(corrupt or hostile file?)")


def read_dataset(ds: Any, what: str) -> np.ndarray:
    """An HDF5 dataset (``h5py.Dataset`` or the low-level ``h5d.DatasetID``) as an array,
    after checking its declared size against its storage.

    A contiguous or unfiltered dataset must store every byte it declares (HDF5
    would otherwise hand back fill values for the missing ones); a filtered
    (compressed) one may be smaller, by at most ``MAX_COMPRESSION_RATIO``. HDF5
    reads the data straight into the returned array.
    """
    from h5py import h5d, h5s

    if isinstance(ds, h5d.DatasetID):
        did = ds
    elif hasattr(ds, "dtype") and hasattr(ds, "shape") and hasattr(ds, "id"):
        did = ds.id
    else:
        raise ModelFileError(f"{what}: expected an array (an HDF5 dataset), found a group")
    if did.dtype.kind not in "biuf":
        raise ModelFileError(f"{what}: stores {did.dtype} values; weights are numbers")
    shape = did.shape if did.shape is not None else ()
    nbytes = array_bytes(shape, did.dtype.itemsize)
    check_memory(nbytes, what, "this array")
    if nbytes:
        stored = int(did.get_storage_size())
        filtered = did.get_create_plist().get_nfilters() > 0
        allowed = stored * (MAX_COMPRESSION_RATIO if filtered else 1)
        if nbytes > allowed and (not filtered or nbytes > SMALL_ENTRY):
            raise ModelFileError(
                f"{what}: declares shape {tuple(shape)} ({nbytes} bytes of {did.dtype}) but the "
                f"file stores {stored} bytes for it{' (compressed)' if filtered else ''}; "
                "corrupt or truncated file")
    out = np.empty(shape, did.dtype)
    if nbytes:
        did.read(h5s.ALL, h5s.ALL, out)
    return out


def check_hdf5_heaps(data: Any, where: str) -> None:
    """Refuse an HDF5 file whose global heap holds an object of size 0.

    HDF5's heap reader (the one variable-length strings such as Keras's
    ``model_config`` and ``weight_names`` are read through) never advances past
    such an object and spins forever inside C, where no signal can stop it. The
    check parses each ``GCOL`` collection (HDF5 file format, "Global Heap"): per
    object a 2-byte index, 2-byte reference count, 4 reserved bytes, an 8-byte size
    and the data padded to 8 bytes; index 0 is the free space that ends it (an
    object or a free space of size 0 is what HDF5 spins on).
    ``data`` is the file's bytes or an mmap of them. Files whose "size of lengths"
    is not 8 (not what h5py writes) are left to HDF5.
    """
    if _hdf5_lengths_size(data) != 8:
        return
    at = data.find(b"GCOL")
    while at >= 0:
        if data[at + 4] == 1 and at + 16 <= len(data):
            size = int.from_bytes(data[at + 8:at + 16], "little")
            end = min(at + size, len(data))
            p = at + 16
            while p + 16 <= end:
                index = int.from_bytes(data[p:p + 2], "little")
                length = int.from_bytes(data[p + 8:p + 16], "little")
                if index == 0 and length:  # the free space: the rest of the collection
                    break
                if length == 0:  # an object, or the free space, that would never advance
                    raise ModelFileError(
                        f"{where}: the HDF5 global heap at byte {at} holds object {index} of size 0 "
                        "(corrupt file: HDF5 would loop forever reading it)")
                p += 16 + (length + 7) // 8 * 8
        at = data.find(b"GCOL", at + 4)


def _hdf5_lengths_size(data: Any) -> int | None:
    """The superblock's "size of lengths" field (the superblock is at 0, 512, 1024, ...)."""
    for base in (0, 512, 1024, 2048, 4096):
        if data[base:base + 8] == b"\x89HDF\r\n\x1a\n":
            version = data[base + 8]
            return data[base + 14] if version in (0, 1) else data[base + 10]
    return None
