"""Write a bench table into a docs page between its begin/end markers (or append it)."""
from __future__ import annotations

from pathlib import Path


def write_table(path: Path, table: str, begin: str, end: str) -> None:
    """Replace the text from ``begin`` to ``end`` in ``path`` with ``table`` (which carries both markers)."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + table + text[text.index(end) + len(end):]
    else:
        text = text + ("\n" if text else "") + table + "\n"
    path.write_text(text)
