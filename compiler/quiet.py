"""Quiet by default, honest on request: what reaches the user's terminal.

Three verbosity levels, set once by the CLI (``--quiet``, ``--verbose``) or by a
program (``kcc.quiet.set_verbosity``):

* ``"quiet"``: errors only (no progress line, no kcc warnings);
* ``"normal"`` (default): kcc's own one-line warnings, and a progress line on
  an interactive terminal; third-party start-up noise is kept off the terminal;
* ``"verbose"``: nothing is hidden: TensorFlow's native logs, Python warnings
  and the loggers of TensorFlow, absl, tf2onnx and coremltools come through.

The noise comes from two places. TensorFlow's C++ core writes to file
descriptor 2 before absl's logging is set up (oneDNN and CUDA probing,
``cpu_feature_guard``), so no Python-level setting reaches it: ``silenced()``
points fd 2 at a temporary file for its duration and keeps what was written
(``captured()``, replayed by ``replay()``). The Python side (coremltools'
"TensorFlow version not tested" and "Failed to load _MLModelProxy" lines,
absl warnings, tf2onnx logs, Keras's UserWarnings) also ends up on fd 2 and is
caught the same way; the named loggers are lowered to ERROR as well, so their
messages stay out of programs that embed kcc. ``TF_CPP_MIN_LOG_LEVEL=3`` is set
(unless the user set it) before TensorFlow loads. ``TF_ENABLE_ONEDNN_OPTS`` is
never touched: it changes TensorFlow's numerics, not only its logging.

kcc's own messages go to ``terminal()``, the real stderr even while fd 2 is
redirected; ``warn()`` writes one ``kcc: warning:`` line.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from kcc.errors import OptionError

LEVELS = ("quiet", "normal", "verbose")
CAPTURE_LIMIT = 1 << 20  # bytes of captured third-party output kept per silenced() block
# Loggers of the libraries kcc loads on demand; their INFO/WARNING records are start-up chatter.
NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "coremltools", "keras", "h5py")

_level = "normal"
_depth = 0                      # nesting of silenced(); only the outermost redirects
_terminal: TextIO | None = None  # the real stderr while fd 2 is redirected
_captured: list[str] = []
# Called before kcc prints a message line (kcc.progress registers the erasing of its line).
_before_message: list[Callable[[], None]] = []


def before_message(hook: Callable[[], None]) -> None:
    """Run ``hook`` before each ``warn`` line (a progress display erases itself there)."""
    if hook not in _before_message:
        _before_message.append(hook)


def set_verbosity(level: str) -> None:
    """``"quiet"``, ``"normal"`` or ``"verbose"`` (see the module docstring)."""
    global _level
    if level not in LEVELS:
        raise OptionError(f"verbosity {level!r}: use one of {', '.join(LEVELS)}")
    _level = level


def verbosity() -> str:
    return _level


def terminal() -> TextIO:
    """The stream for kcc's own stderr messages: the user's terminal, also inside ``silenced()``."""
    return _terminal if _terminal is not None else sys.stderr


def warn(message: str) -> None:
    """One ``kcc: warning:`` line (line breaks folded), unless quiet."""
    if _level == "quiet":
        return
    for hook in _before_message:
        hook()
    text = " ".join(str(message).split())
    print(f"kcc: warning: {text}", file=terminal(), flush=True)


def captured() -> str:
    """Everything third-party code wrote to stderr inside ``silenced()`` so far."""
    return "".join(_captured)


def replay() -> None:
    """Write the captured text to the terminal (and forget it)."""
    text = captured()
    _captured.clear()
    if text:
        terminal().write(text)
        terminal().flush()


def _package_dirs() -> tuple[str, ...]:
    """The folders of kcc, kcc.passes and kcc.backends (three folders in a source checkout, one installed)."""
    import importlib.util

    dirs = []
    for name in ("kcc", "kcc.passes", "kcc.backends"):
        spec = importlib.util.find_spec(name)
        dirs += [str(Path(d).resolve()) for d in (spec.submodule_search_locations or [])] if spec else []
    return tuple(d + os.sep for d in dirs)


def _show_warning(fallback: Any) -> Any:
    """Python warnings raised by kcc's own code reach the terminal as one ``kcc: warning:`` line;
    everyone else's go where fd 2 goes (captured)."""
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if str(Path(filename).resolve()).startswith(_package_dirs()):
            warn(str(message))
        else:
            fallback(message, category, filename, lineno, file, line)
    return show


def _quiet_loggers() -> None:
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # the application did not configure it itself
            logger.setLevel(logging.ERROR)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Keep third-party stderr output (native and Python) off the terminal while inside.

    A no-op under ``"verbose"``, when nested, or when fd 2 cannot be duplicated
    (an embedding host without file descriptors).
    """
    global _depth, _terminal
    if _level == "verbose" or _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _quiet_loggers()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    sink = tempfile.TemporaryFile(mode="w+b")
    os.dup2(sink.fileno(), 2)
    _terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                          errors="replace")
    shown = warnings.showwarning
    warnings.showwarning = _show_warning(shown)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        warnings.showwarning = shown
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        _terminal.close()
        _terminal = None
        size = sink.seek(0, os.SEEK_END)
        sink.seek(max(0, size - CAPTURE_LIMIT))  # a chatty library keeps only its last lines
        _captured.append(sink.read().decode("utf-8", errors="replace"))
        sink.close()
