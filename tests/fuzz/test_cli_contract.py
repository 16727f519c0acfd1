"""The CLI contract on failure: exit 1, one ``kcc: error:`` line, no output, no temporary file.

Also: a traceback only with ``--debug``; an internal error (a kcc bug) keeps to the
same one line; Ctrl-C in the middle of writing leaves an existing output exactly
as it was and no temporary file beside it; a written output has the usual mode.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_files import conv_model, keras_file, layer_config

import kcc.api
from kcc.cli import main


@pytest.fixture(scope="module")
def good_file(tmp_path_factory) -> Path:
    return keras_file(tmp_path_factory.mktemp("cli"), conv_model())


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory) -> Path:
    def edit(config: dict) -> None:
        layer_config(config, "conv")["filters"] = -5
    return keras_file(tmp_path_factory.mktemp("cli-bad"), conv_model(), edit)


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failure_is_one_line_exit_1_and_no_file(tmp_path, bad_file, capsys):
    out = tmp_path / "out.onnx"
    assert main([str(bad_file), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kcc: error:") and len(err.strip().splitlines()) == 1, err
    assert "filters = -5" in err and str(bad_file) in err and "Traceback" not in err
    assert _only(tmp_path) == []


def test_debug_adds_the_traceback(tmp_path, bad_file, capsys):
    assert main([str(bad_file), "-o", str(tmp_path / "out.onnx"), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("kcc: error:")
    assert _only(tmp_path) == []


def test_internal_error_keeps_the_contract(tmp_path, good_file, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(kcc.api, "compile_to_file", broken)
    assert main([str(good_file), "-o", str(tmp_path / "out.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kcc: error: internal error") and len(err.strip().splitlines()) == 1, err
    assert "ZeroDivisionError" in err and "--debug" in err
    assert _only(tmp_path) == []


class _Interrupt:
    """Write half of the bytes, then raise KeyboardInterrupt (Ctrl-C mid-write)."""

    def __init__(self, real_open):
        self.real_open = real_open

    def __call__(self, file, mode="r", *args, **kwargs):
        handle = self.real_open(file, mode, *args, **kwargs)
        # save_atomic's ".tmp" file, or a file in write_atomic's temporary ".<name>.*" folder
        if "w" not in mode or not (str(file).endswith(".tmp") or Path(file).parent.name.startswith(".")):
            return handle
        write = handle.write

        def half_then_interrupt(data):
            write(data[: len(data) // 2])
            handle.flush()
            raise KeyboardInterrupt
        handle.write = half_then_interrupt
        return handle


def test_interrupt_during_write_leaves_old_output_untouched(tmp_path, good_file, capsys, monkeypatch):
    out = tmp_path / "out.onnx"
    assert main([str(good_file), "-o", str(out)]) == 0
    old = out.read_bytes()
    assert len(old) > 1000
    import builtins
    monkeypatch.setattr(builtins, "open", _Interrupt(builtins.open))
    assert main([str(good_file), "-o", str(out), "--output-names", "renamed"]) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("kcc: error: interrupted")
    assert out.read_bytes() == old
    assert _only(tmp_path) == ["out.onnx"]  # no .out.onnx.*.tmp left behind


def test_interrupt_through_the_api_removes_the_temporary_file(tmp_path):
    out = tmp_path / "m.bin"

    def interrupted(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kcc.api.save_atomic(out, interrupted)
    assert _only(tmp_path) == []


def test_output_mode_follows_umask(tmp_path, good_file):
    out = tmp_path / "out.onnx"
    assert main([str(good_file), "-o", str(out)]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


def test_unwritable_output_is_a_kcc_error(tmp_path, good_file, capsys):
    out = tmp_path / "missing-dir" / "out.onnx"
    assert main([str(good_file), "-o", str(out)]) == 1
    assert capsys.readouterr().err.startswith("kcc: error: cannot write")


def test_console_script_sigint_like_exit(tmp_path, bad_file):
    """The installed ``kcc`` honours the contract in a real process too."""
    exe = Path(sys.executable).parent / "kcc"
    proc = subprocess.run([str(exe), str(bad_file), "-o", str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("kcc:")]
    assert lines and lines[-1].startswith("kcc: error:") and "filters" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert _only(tmp_path) == []
