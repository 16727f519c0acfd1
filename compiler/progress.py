"""A one-line progress display for long work, on an interactive terminal only.

The CLI opens a ``task`` around a conversion; library code reports where it
is with ``step("pass 7/18 fold_batchnorm")``, which costs nothing when no task
is open. On a terminal the line reads

    kcc: vgg16.keras -> onnx: pass 7/18 fold_batchnorm  3.2s

and is redrawn in place (on stderr) until the task ends, when it is erased so
the final "kcc: wrote ..." line stands alone. A background thread refreshes
the clock, so a long single step (reading 500 MB of weights, writing the
file) still shows that kcc is working. Nothing is drawn when stderr is not a
terminal, under ``--quiet``, or for tasks shorter than ``DELAY`` seconds.
"""
from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator

from kcc import quiet

DELAY = 0.5      # seconds before the line first appears (short runs never flicker)
REFRESH = 0.25   # seconds between redraws of the clock


class _Task:
    def __init__(self, title: str):
        self.title = title
        self.label = ""
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.drawn = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="kcc-progress", daemon=True)

    def _tick(self) -> None:
        if self.stopped.wait(DELAY):
            return
        while not self.stopped.is_set():
            self.draw()
            self.stopped.wait(REFRESH)

    def draw(self) -> None:
        with self.lock:
            if self.stopped.is_set():
                return
            elapsed = time.monotonic() - self.start
            text = f"kcc: {self.title}{': ' + self.label if self.label else ''}  {elapsed:.1f}s"
            width = shutil.get_terminal_size((100, 20)).columns - 1
            if len(text) > width:
                text = text[:max(width - 3, 0)] + "..."
            stream = quiet.terminal()
            stream.write("\r\033[K" + text)
            stream.flush()
            self.drawn = True

    def clear(self) -> None:
        with self.lock:
            if self.drawn:
                stream = quiet.terminal()
                stream.write("\r\033[K")
                stream.flush()
                self.drawn = False


_current: _Task | None = None


def enabled() -> bool:
    """True when a progress line would be drawn: an interactive stderr and not ``--quiet``."""
    if quiet.verbosity() == "quiet":
        return False
    try:
        return quiet.terminal().isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def task(title: str) -> Iterator[None]:
    """Show a progress line titled ``title`` while inside (when ``enabled()``)."""
    global _current
    if _current is not None or not enabled():
        yield
        return
    t = _current = _Task(title)
    t.thread.start()
    try:
        yield
    finally:
        t.clear()
        t.stopped.set()
        t.thread.join(timeout=1.0)
        t.clear()
        _current = None


def step(label: str) -> None:
    """Say what the open task is doing now (no-op without one)."""
    t = _current
    if t is not None:
        t.label = label
        if t.drawn:
            t.draw()


def clear_line() -> None:
    """Erase the progress line before another message is printed (it is redrawn on the next tick)."""
    t = _current
    if t is not None:
        t.clear()


quiet.before_message(clear_line)
