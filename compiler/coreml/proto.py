"""The Core ML protobuf classes, without importing all of coremltools.

``import coremltools`` imports TensorFlow and takes 15 s or more; the runtime
only needs the generated ``*_pb2`` modules that coremltools ships in its
``proto`` folder. When coremltools is not imported yet, those modules are loaded
from that folder under a private package name. protobuf keeps one class per
message descriptor, so the classes are the very ones coremltools uses
(``isinstance`` holds across both, and specs pass freely between them).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

from kcc.errors import RuntimeModelError

_PRIVATE = "kcc.coreml._coremltools_proto"


def _package() -> str:
    if "coremltools" in sys.modules:
        return "coremltools.proto"
    if _PRIVATE not in sys.modules:
        found = importlib.util.find_spec("coremltools")  # locates it without running __init__
        if found is None or not found.origin:
            raise RuntimeModelError("coremltools is not installed; the Core ML runtime needs its protobuf classes")
        package = types.ModuleType(_PRIVATE)
        package.__path__ = [os.path.join(os.path.dirname(found.origin), "proto")]
        sys.modules[_PRIVATE] = package
    return _PRIVATE


def module(name: str) -> types.ModuleType:
    """A generated protobuf module by name, e.g. ``module("Model_pb2")``."""
    return importlib.import_module(f"{_package()}.{name}")
