"""Quiet by default: no TensorFlow lines on stderr; --verbose lets them through; --quiet prints
errors only; a missing extra is one line naming it; the progress line appears only on a terminal."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcc import progress, quiet
from kcc.cli import main
from kcc.examples import mnist_small


@pytest.fixture(scope="module")
def lambda_file(tmp_path_factory) -> Path:
    import keras

    inp = keras.Input((6,), name="x")
    y = keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(inp)
    path = tmp_path_factory.mktemp("quiet") / "lambda.keras"
    keras.Model(inp, keras.layers.Dense(3)(y)).save(path)
    return path


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quiet") / "mnist.keras"
    mnist_small(seed=4).save(path)
    return path


def _kcc(args: list[str], cwd: Path, prelude: str = "pass") -> subprocess.CompletedProcess:
    """kcc in a fresh process, with TensorFlow's own log level unset (as a user's shell has it)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = f"import sys; {prelude}; from kcc.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


def test_tensorflow_path_prints_nothing_on_stderr(lambda_file, tmp_path):
    proc = _kcc([str(lambda_file), "--unsafe", "-o", "m.onnx"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"stderr should be empty, got:\n{proc.stderr}"
    assert proc.stdout.startswith("kcc: wrote m.onnx")
    verbose = _kcc([str(lambda_file), "--unsafe", "-o", "v.onnx", "--verbose"], tmp_path)
    assert verbose.returncode == 0
    assert "oneDNN" in verbose.stderr or "cuda" in verbose.stderr.lower(), verbose.stderr


def test_quiet_prints_nothing_but_writes(mnist_file, tmp_path, capsys):
    try:
        assert main([str(mnist_file), "-o", str(tmp_path / "q.onnx"), "--quiet"]) == 0
    finally:
        quiet.set_verbosity("normal")
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and (tmp_path / "q.onnx").exists()


def test_missing_extra_is_one_line_naming_it(lambda_file, tmp_path):
    blocked = "sys.modules.update(dict.fromkeys(['keras', 'tensorflow', 'tf2onnx', 'tf_keras']))"
    proc = _kcc([str(lambda_file), "--unsafe", "-o", "m.onnx"], tmp_path, prelude=blocked)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcc: error:"), proc.stderr
    assert "pip install 'kcc[tensorflow]'" in lines[0] and "lambda.keras" in lines[0]
    assert not (tmp_path / "m.onnx").exists()


def test_require_names_the_extra(monkeypatch):
    from kcc.errors import MissingExtraError
    from kcc.extras import require

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"checking a model needs onnxruntime .*pip install 'kcc\[verify\]'"):
        require("onnxruntime", "checking a model")


class _Tty(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty, flags, drawn", [(True, [], True), (True, ["--quiet"], False), (False, [], False)])
def test_progress_line_only_on_a_terminal(mnist_file, tmp_path, monkeypatch, tty, flags, drawn):
    stream = _Tty(tty)
    monkeypatch.setattr(quiet, "terminal", lambda: stream)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "REFRESH", 0.005)
    try:
        assert main([str(mnist_file), "-o", str(tmp_path / "m.onnx"), *flags]) == 0
    finally:
        quiet.set_verbosity("normal")
    text = stream.getvalue()
    if drawn:
        assert "kcc: mnist.keras -> onnx" in text and "\r\x1b[K" in text
        assert text.endswith("\r\x1b[K"), "the progress line must be erased at the end"
    else:
        assert text == ""


def test_warn_is_one_line(capsys):
    quiet.warn("first line\nsecond   line")
    assert capsys.readouterr().err == "kcc: warning: first line second line\n"


def test_kcc_python_warnings_stay_visible_inside_silenced(tmp_path):
    """A warnings.warn from kcc's own code is one kcc line; a library's goes to the captured stream."""
    code = """if True:
        import sys, warnings
        import kcc.pattern
        from kcc import quiet
        with quiet.silenced():
            warnings.warn_explicit("rules still firing\\nafter 8 sweeps", UserWarning, kcc.pattern.__file__, 1)
            warnings.warn_explicit("library chatter", UserWarning, "/somewhere/else/lib.py", 1)
        assert "library chatter" in quiet.captured(), quiet.captured()
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "kcc: warning: rules still firing after 8 sweeps\n"
