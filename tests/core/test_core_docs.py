"""Generated docs stay in sync with the registries they are generated from."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "tools" / "gen_layer_table.py"


def _generator():
    """tools/gen_layer_table.py as a module (tools/ is not part of the kcc package)."""
    spec = importlib.util.spec_from_file_location("gen_layer_table", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_layer_table_is_regenerated():
    text = (ROOT / "docs" / "layers.md").read_text()
    assert text == _generator().markdown(), \
        "docs/layers.md is stale: run `.venv/bin/python tools/gen_layer_table.py > docs/layers.md`"


def test_every_supported_class_has_an_onnx_and_coreml_entry():
    text = (ROOT / "docs" / "layers.md").read_text()
    from kcc.frontends.keras.registry import supported_classes

    for cls in supported_classes():
        row = next((line for line in text.splitlines() if line.startswith(f"| {cls} |")), None)
        assert row is not None, cls
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[-2] == "yes", (cls, cells[-2])
        assert cells[-1].startswith(("yes", "no:")), (cls, cells[-1])
