"""Optional dependencies: which ``pip install 'kcc[EXTRA]'`` brings each module.

The core install reads and writes model files (numpy, networkx, h5py, onnx,
protobuf, coremltools' protobuf classes, pillow). Everything else is an extra,
loaded only on the path that needs it, always through ``require``:

    tf = require("tensorflow", "tracing Lambda layer 'scale'")

A missing module raises ``MissingExtraError`` whose one-line message names the
purpose and the command that fixes it. The import itself runs inside
``kcc.quiet.silenced()``, so TensorFlow's start-up lines stay off the terminal.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from kcc.errors import MissingExtraError

# Top-level module -> (extra that installs it, its name on the package index).
# "core" modules are in every install; missing, the install itself is broken.
MODULES: dict[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "keras": ("tensorflow", "keras"),
    "tf2onnx": ("tensorflow", "tf2onnx"),
    "tf_keras": ("tensorflow", "tf-keras"),
    "keras_hub": ("hub", "keras-hub"),
    "onnxruntime": ("verify", "onnxruntime"),
    "coremltools": ("core", "coremltools"),
    "PIL": ("core", "pillow"),
    "sklearn": ("demo", "scikit-learn"),
}

# What each extra is for (README and ``kcc --help`` say the same).
EXTRAS: dict[str, str] = {
    "tensorflow": "in-memory Keras models, Lambda and custom-layer tracing, Keras 2 files with Lambdas",
    "hub": "KerasHub models (keras-hub)",
    "verify": "running emitted ONNX models (onnxruntime): checking conversions, the tests",
    "all": "every extra above",
}


def install_hint(module: str) -> str:
    """The pip command that installs ``module`` (dotted names: the top-level package)."""
    extra, _ = MODULES[module.split(".")[0]]
    return "pip install --force-reinstall kcc" if extra == "core" else f"pip install 'kcc[{extra}]'"


def available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    top = module.split(".")[0]
    if top in sys.modules:
        return sys.modules[top] is not None  # None: the import is blocked (python -c "sys.modules[m] = None")
    return importlib.util.find_spec(top) is not None


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (a phrase: "tracing Lambda layer 'f'"), quietly.

    Raises MissingExtraError naming the extra to install when it is absent or
    cannot be imported.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    top = module.split(".")[0]
    if top not in MODULES:
        raise KeyError(f"kcc.extras has no entry for module {top!r}; add it to MODULES")
    extra, package = MODULES[top]
    hint = install_hint(module)
    if not available(module):
        what = "part of kcc's core install" if extra == "core" else f"in the kcc[{extra}] extra"
        raise MissingExtraError(f"{purpose} needs {package} ({what}), which is not installed: {hint}")
    from kcc.quiet import silenced

    try:
        with silenced():
            return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{purpose} needs {package}, which is installed but does not import "
                                f"({type(e).__name__}: {e}); reinstall it: {hint}") from e
