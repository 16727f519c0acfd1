"""Every folder of Python files is in pyproject.toml's package list, so the wheel carries it.

The editable install finds every module, so a missing line only shows after
``pip install kcc``; this fast check names the folder at once (the wheel test
in this folder is the slow, whole proof).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_list_matches_the_folders():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = {package: ROOT / folder for package, folder in config["package-dir"].items()}
    found = set()
    for package, folder in roots.items():
        for init in folder.rglob("*.py"):
            parts = init.parent.relative_to(folder).parts
            if "__pycache__" in parts:
                continue
            found.add(".".join((package, *parts)))
    # A root's sub-folder that is itself mapped (kcc.passes -> passes/) is not also under compiler/.
    missing = sorted(found - listed)
    assert not missing, f"add these packages to pyproject.toml [tool.setuptools] packages: {missing}"
    stale = sorted(p for p in listed - found)
    assert not stale, f"pyproject.toml lists packages with no folder of Python files: {stale}"
    for package in listed:
        folder = next(roots[p] for p in sorted(roots, key=len, reverse=True) if package.startswith(p))
        prefix = next(p for p in sorted(roots, key=len, reverse=True) if package.startswith(p))
        rel = package[len(prefix):].lstrip(".").split(".") if package != prefix else []
        assert (folder.joinpath(*rel) / "__init__.py").is_file(), f"{package} has no __init__.py"
