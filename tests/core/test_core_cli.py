"""The kcc command line: outputs, dumps, debugging flags, and errors that leave no file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from kcc.cli import main
from kcc.examples import mnist_small
from kcc.testing import run_keras, run_onnx


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory) -> tuple[Path, object]:
    model = mnist_small(seed=1)
    path = tmp_path_factory.mktemp("cli") / "mnist.keras"
    model.save(path)
    return path, model


def test_emit_onnx_with_dumps(mnist_file, tmp_path, capsys):
    path, model = mnist_file
    out, dumps = tmp_path / "m.onnx", tmp_path / "dumps"
    assert main([str(path), "--emit", "onnx", "-o", str(out), "--dump-ir", str(dumps), "--time-passes"]) == 0
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(onnx.load(out), [x])[0], run_keras(model, [x])[0], atol=1e-5)
    txt = sorted(p.name for p in dumps.glob("*.txt"))
    dot = sorted(p.name for p in dumps.glob("*.dot"))
    svg = sorted(p.name for p in dumps.glob("*.svg"))
    # The frontend's graph and only the passes that changed it (tests/core/test_cli_dump.py).
    assert txt[0] == "00-frontend.txt" and len(txt) == len(dot) == len(svg) >= 3
    assert [t[:-4] for t in txt] == [d[:-4] for d in dot] == [s[:-4] for s in svg]
    assert (dumps / svg[-1]).read_text().startswith("<svg") and "conv" in (dumps / svg[-1]).read_text()
    assert "conv(" in (dumps / "00-frontend.txt").read_text()
    assert "digraph" in (dumps / dot[-1]).read_text()
    table = capsys.readouterr().out
    assert "fold_identity" in table and "nodes before" in table


def test_verify_each_and_print_ir(mnist_file, tmp_path, capsys):
    path, _ = mnist_file
    assert main([str(path), "-o", str(tmp_path / "m.onnx"), "--verify-each", "--print-ir"]) == 0
    out = capsys.readouterr().out
    assert "IR after frontend" in out and "IR after dce" in out
    assert "all" in out and "preserve the outputs" in out


def test_names_flags(mnist_file, tmp_path):
    path, _ = mnist_file
    out = tmp_path / "named.onnx"
    assert main([str(path), "-o", str(out), "--input-names", "image", "--output-names", "output",
                 "--input-layout", "nchw"]) == 0
    m = onnx.load(out)
    assert m.graph.input[0].name == "image" and m.graph.output[0].name == "output"


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_random_bytes_give_one_clear_error_and_no_file(tmp_path, capsys, suffix):
    bad = tmp_path / f"random{suffix}"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "out.onnx"
    assert main([str(bad), "--emit", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kcc: error:") and str(bad) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_missing_file_and_unknown_suffix(tmp_path, capsys):
    assert main([str(tmp_path / "nope.h5"), "-o", str(tmp_path / "o.onnx")]) == 1
    assert main([str(tmp_path / "model.pt"), "-o", str(tmp_path / "o.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("kcc: error:") == 2
    assert not (tmp_path / "o.onnx").exists()


def test_bad_option_value(mnist_file, tmp_path, capsys):
    path, _ = mnist_file
    assert main([str(path), "-o", str(tmp_path / "o.onnx"), "--opset", "9"]) == 1
    assert "opset=9" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_wrong_input_shape_override(mnist_file, tmp_path, capsys):
    path, _ = mnist_file
    assert main([str(path), "-o", str(tmp_path / "o.onnx"), "--input-shape", "image=1,32,32,1"]) == 1
    err = capsys.readouterr().err
    assert "kcc: error:" in err and "image" in err
    assert not (tmp_path / "o.onnx").exists()


def test_help_reads_well():
    proc = subprocess.run([sys.executable, "-m", "kcc", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--emit", "--dump-ir", "--verify-each", "--time-passes", "--input-names", "examples:"):
        assert flag in proc.stdout


def test_console_script_exit_code(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x00" * 100)
    exe = Path(sys.executable).parent / "kcc"
    proc = subprocess.run([str(exe), str(bad), "--emit", "onnx", "-o", str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("kcc: error:")
    assert not (tmp_path / "o.onnx").exists()
