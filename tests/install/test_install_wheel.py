"""The wheel stands alone: built with ``python -m build``, installed with no extras into a fresh venv.

One test, about a minute and a half: it builds the sdist and the wheel from a
copy of the source tree, makes an empty venv, installs the wheel (the core
dependencies come from the package index, through pip's cache), and then uses
the ``kcc`` command as a new user would: ``--version``, ``--help``, ``inspect``,
the tutorial ``.keras`` to ONNX and to Core ML, and ``kcc run`` on an image.
TensorFlow, Keras, tf2onnx and onnxruntime must not be importable there; a
model that needs them fails with one line naming the extra. The numbers are
checked against Keras and onnxruntime in this (the test) environment.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kcc
from kcc.examples import mnist_small
from kcc.testing import assert_close, run_keras

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("compiler", "passes", "backends", "pyproject.toml", "README.md")
OPTIONAL = ("tensorflow", "keras", "tf2onnx", "tf_keras", "onnxruntime", "keras_hub")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("install")]


def _run(cmd: list[str], timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


def test_wheel_installs_alone_and_converts_the_tutorial(tmp_path):
    src, dist, venv, work = (tmp_path / d for d in ("src", "dist", "venv", "work"))
    for d in (src, work):
        d.mkdir()
    _copy_sources(src)
    _ok(_run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)]))
    wheels, sdists = sorted(dist.glob("kcc-*.whl")), sorted(dist.glob("kcc-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    assert wheels[0].name.startswith(f"kcc-{kcc.__version__}-")

    _ok(_run([sys.executable, "-m", "venv", str(venv)]))
    py, exe = venv / "bin" / "python", venv / "bin" / "kcc"
    _ok(_run([str(py), "-m", "pip", "install", "--quiet", str(wheels[0])], timeout=900))
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (OPTIONAL,)
    assert _ok(_run([str(py), "-c", probe])).strip() == "[]", "the core install pulled in an extra"

    assert _ok(_run([str(exe), "--version"])).strip() == f"kcc {kcc.__version__}"
    help_text = _ok(_run([str(exe), "--help"]))
    assert "inspect" in help_text and "kcc[tensorflow]" in help_text

    model = mnist_small(seed=3)
    keras_file = work / "mnist.keras"
    model.save(keras_file)
    described = _ok(_run([str(exe), "inspect", str(keras_file)], cwd=work))
    assert "Conv2D 3" in described and "[N, 28, 28, 1]" in described and "[N, 10]" in described

    onnx_proc = _run([str(exe), str(keras_file), "--emit", "onnx", "-o", "mnist.onnx"], cwd=work)
    coreml_proc = _run([str(exe), str(keras_file), "--emit", "coreml", "-o", "mnist.mlmodel",
                        "--input-names", "image", "--image-input-names", "image", "--image-scale", "0.00392157",
                        "--class-labels", *[str(d) for d in range(10)], "--output-names", "output"], cwd=work)
    for proc in (onnx_proc, coreml_proc):
        _ok(proc)
        assert proc.stderr == "", f"a conversion printed on stderr:\n{proc.stderr}"

    # The digit: unequal halves of real zeros and bright strokes, as a PNG.
    from PIL import Image

    pixels = np.zeros((28, 28), np.uint8)
    pixels[4:24, 9:12] = 255
    pixels[4:7, 9:20] = 200
    Image.fromarray(pixels).save(work / "digit.png")
    _ok(_run([str(exe), "run", "mnist.mlmodel", "digit.png", "-o", "out.npz"], cwd=work))
    printed = _ok(_run([str(exe), "run", "mnist.mlmodel", "image=digit.png"], cwd=work))
    assert "classLabel" in printed

    x = (pixels.astype(np.float32) * np.float32(0.00392157))[None, :, :, None]
    expected = run_keras(model, [x])[0][0]
    with np.load(work / "out.npz") as out:
        probs = dict(zip(out["output.labels"].tolist(), out["output"]))
        label = str(out["classLabel"])
    assert_close(np.array([probs[str(d)] for d in range(10)]), expected, 1e-4)
    assert label == str(int(np.argmax(expected)))
    from kcc.testing import run_onnx

    assert_close(run_onnx(str(work / "mnist.onnx"), [x])[0][0], expected, 1e-4)

    # A model that needs TensorFlow says which extra to install, in one line, and writes nothing.
    import keras

    inp = keras.Input((6,), name="x")
    lam = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Lambda(lambda t: t * 2.0, name="twice")(inp)))
    lam.save(work / "lambda.keras")
    proc = _run([str(exe), "lambda.keras", "--unsafe", "-o", "lambda.onnx"], cwd=work)
    assert proc.returncode == 1
    assert proc.stderr.startswith("kcc: error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "pip install 'kcc[tensorflow]'" in proc.stderr
    assert not (work / "lambda.onnx").exists()
