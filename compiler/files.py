"""Writing output files whole: flush before the rename, and the mode a new file gets.

Every writer that builds its output in a temporary file and renames it into
place (``kcc.api.save_atomic``, ``write_atomic``: the ONNX and Core ML file
writers) uses these, so a crash leaves the old output or the new one, never half
of it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kcc.errors import ModelFileError


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


def write_atomic(path: Path, names: list[str], write: Callable[[Path], None]) -> list[Path]:
    """Call ``write(folder)`` to make the files ``names`` in a temporary folder beside ``path``, then move
    them next to it (``names[0]`` is ``path``'s own name, moved last); return their final paths.

    On failure none of them is left behind (nor the folder).
    """
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"cannot write {path}: directory {directory} does not exist")
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=directory))
    except OSError as e:
        raise ModelFileError(f"cannot write {path}: {e.strerror}") from None
    moved: list[Path] = []
    try:
        write(work)
        for name in names:
            fsync_file(work / name)
            os.chmod(work / name, output_mode())
        for name in names[1:] + names[:1]:
            os.replace(work / name, directory / name)
            moved.append(directory / name)
    except BaseException as e:
        for done in moved:
            os.unlink(done)
        if isinstance(e, OSError):
            raise ModelFileError(f"cannot write {' and '.join(str(directory / n) for n in names)}: "
                                 f"{e.strerror or e}") from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [directory / name for name in names]
