"""``--dump-ir``: the frontend's graph and only the passes that changed it (``--dump-all``: every
pass), ``passes.log`` explaining the numbering, and pictures that stay readable."""
from __future__ import annotations

from pathlib import Path

import pytest

from kcc.cli import main
from kcc.dump import to_dot, to_svg
from kcc.examples import mnist_small


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dump") / "mnist.keras"
    mnist_small(seed=5).save(path)
    return path


def _index(dumps: Path) -> list[list[str]]:
    return [line.split(None, 3) for line in (dumps / "passes.log").read_text().splitlines()[1:]]


def test_only_changed_passes_are_written(mnist_file, tmp_path):
    dumps = tmp_path / "d"
    assert main([str(mnist_file), "-o", str(tmp_path / "m.onnx"), "--dump-ir", str(dumps)]) == 0
    rows = _index(dumps)
    assert rows[0][:2] == ["00", "frontend"]
    written = sorted(p.stem for p in dumps.glob("*.txt") if p.name != "passes.log")
    changed = [f"{r[0]}-{r[1]}" for r in rows if r[3].startswith(("frontend", "changed"))]
    assert written == changed, (written, changed)
    unchanged = [r for r in rows if r[3].startswith("unchanged")]
    assert unchanged, "the tutorial CNN leaves some passes with nothing to do"
    assert 2 <= len(written) < len(rows)
    for stem in written:  # each file set is complete, and consecutive written texts differ
        assert all((dumps / f"{stem}{ext}").exists() for ext in (".txt", ".dot", ".svg"))
    texts = [(dumps / f"{stem}.txt").read_text() for stem in written]
    assert all(a != b for a, b in zip(texts, texts[1:]))


def test_dump_all_writes_every_pass(mnist_file, tmp_path, capsys):
    dumps = tmp_path / "all"
    assert main([str(mnist_file), "-o", str(tmp_path / "m.onnx"), "--dump-ir", str(dumps), "--dump-all"]) == 0
    rows = _index(dumps)
    assert len(list(dumps.glob("*.svg"))) == len(rows) and all("written as" in r[3] for r in rows)
    with pytest.raises(SystemExit) as e:
        main([str(mnist_file), "--dump-all"])
    assert e.value.code == 2 and "--dump-all needs --dump-ir" in capsys.readouterr().err


def _residual_graph():
    """Dense -> relu -> Dense, plus a skip connection from the input around both (unequal sizes)."""
    import keras

    from kcc.api import COMMON_OPTIONS, load_graph

    inp = keras.Input((5,), name="x")
    h = keras.layers.Dense(7, activation="relu", name="hidden")(inp)
    h = keras.layers.Dense(6, name="mid")(h)
    h = keras.layers.Dense(5, name="back")(h)
    out = keras.layers.Add(name="skip")([h, inp])
    return load_graph(keras.Model(inp, out), boundary="channels_last", options=dict(COMMON_OPTIONS))


def test_pictures_collapse_weights_and_frame_layers():
    graph = _residual_graph()
    dot = to_dot(graph)
    assert "subgraph cluster_" in dot and 'label="hidden"' in dot  # Dense + relu of one layer, framed
    consts = [v for n in graph.nodes() for v in n.inputs if v is not None and v.is_const]
    assert consts and all(f'"in:{v.name}"' not in dot for v in consts)  # weights are no boxes of their own
    assert "f32[7,5]" in dot or "f32[5,7]" in dot                         # but a line in their consumer's box
    assert dot.count("->") == len([v for n in graph.nodes() for v in n.inputs
                                   if v is not None and not v.is_const]) + len(graph.outputs)
    svg = to_svg(graph)
    assert svg.startswith("<svg") and svg.count("<rect") >= len(graph) + 2
    assert "<path d=" in svg, "the skip connection must be routed around the boxes it passes"
    assert "stroke-dasharray" in svg and ">hidden<" in svg
