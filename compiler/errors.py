"""The one family of errors kcc raises at its users.

Every message names the thing that failed (a layer, an op, an option, a file) and
what to do about it. The CLI prints ``kcc: error: <message>`` and exits with 1.
Internal invariant violations (bugs in kcc) are ``AssertionError``/``IRError``
and are not meant to be caught by users.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


class KccError(Exception):
    """Base class of every error kcc reports to a user."""


class ConversionError(KccError):
    """A model could not be converted (unknown layer, op a target lacks, ...)."""


class UnsupportedLayerError(ConversionError):
    """A Keras layer class that no frontend handler knows."""


class UnsupportedOpError(ConversionError):
    """An IR op with no emitter in the chosen target."""


class ModelFileError(KccError):
    """A model file is missing, corrupt or of an unknown format."""


class OptionError(KccError):
    """A compile option is unknown or has a bad value."""


class ShapeError(KccError):
    """Shapes do not agree (a wrong input shape, an override that does not fit)."""


class UnsafeModelError(KccError):
    """Loading the model would execute code stored in the file (safe_mode is on)."""


class RuntimeModelError(KccError):
    """The Core ML runtime cannot run a model (unsupported layer, bad input)."""


class MissingExtraError(KccError):
    """A feature needs a package that the core install leaves out (``pip install 'kcc[EXTRA]'``)."""


class IRError(AssertionError):
    """The IR broke one of its invariants: a bug in kcc or in a pass, not user error."""


@contextlib.contextmanager
def naming_files(source: Any) -> Iterator[None]:
    """Prefix a KccError raised inside with the model file's path, unless it already names it.

    Layer handlers, passes, emitters and the runtime report the layer or op;
    which file it came from is known only at the public entry points.
    """
    try:
        yield
    except KccError as e:
        paths = [os.fspath(p) for p in (source if isinstance(source, (tuple, list)) else (source,))
                 if isinstance(p, (str, os.PathLike))]
        text = str(e.args[0]) if e.args else ""
        if paths and not any(p in text for p in paths):
            e.args = (f"{' + '.join(paths)}: {text}",) + e.args[1:]
        raise


__all__ = [
    "KccError", "ConversionError", "UnsupportedLayerError", "UnsupportedOpError",
    "ModelFileError", "OptionError", "ShapeError", "UnsafeModelError",
    "RuntimeModelError", "MissingExtraError", "IRError",
]
