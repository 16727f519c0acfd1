"""Writing output files whole: flush before the rename, and the mode a new file gets.

Every writer that builds its output in a temporary file and renames it into
place (``kcc.api.save_atomic``, the ONNX external-data writer) uses these, so a
crash leaves the old output or the new one, never half of it.
"""
from __future__ import annotations

import os


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file to disk before it replaces the output."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def output_mode() -> int:
    """The mode a newly created file gets under the process umask (mkstemp makes 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
