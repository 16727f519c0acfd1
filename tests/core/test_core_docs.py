"""Generated docs stay in sync with the registries they are generated from."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_table_is_regenerated():
    from kcc.frontends.keras import coverage

    text = (ROOT / "docs" / "layers.md").read_text()
    assert text == coverage.markdown(), \
        "docs/layers.md is stale: run `python -m kcc.frontends.keras.coverage > docs/layers.md`"


def test_every_supported_class_has_an_onnx_and_coreml_entry():
    text = (ROOT / "docs" / "layers.md").read_text()
    from kcc.frontends.keras.registry import supported_classes

    for cls in supported_classes():
        row = next((line for line in text.splitlines() if line.startswith(f"| {cls} |")), None)
        assert row is not None, cls
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[-2] == "yes", (cls, cells[-2])
        assert cells[-1].startswith(("yes", "no:")), (cls, cells[-1])
