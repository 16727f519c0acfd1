"""Helpers for the ML Program frontend tests: make .mlpackages with coremltools, run them back.

Every check runs the same package two ways -- compiled by kcc to ONNX and run in
onnxruntime with its DEFAULT session options, and run by ``kcc.coreml.predict``
(the IR interpreter) -- and compares both to a reference from the source
framework (Keras, or numpy for hand-written MIL programs), relative to the
reference's largest magnitude.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import kcc
from kcc.coreml import predict
from kcc.testing import assert_close, assert_not_degenerate

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def coremltools():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct


def keras_to_mlpackage(model: Any, path: Path, precision: str = "fp32", **kwargs: Any) -> Path:
    """coremltools 9's ML Program conversion of a Keras 3 model (through its TensorFlow frontend)."""
    ct = coremltools()
    prec = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    ml = ct.convert(model, convert_to="mlprogram", source="tensorflow", compute_precision=prec, **kwargs)
    ml.save(str(path))
    return path


def program_to_mlpackage(prog: Any, path: Path, target: str = "iOS15") -> Path:
    """A MIL program written with coremltools' builder, saved as it is (no graph passes)."""
    ct = coremltools()
    ml = ct.convert(prog, convert_to="mlprogram", source="milinternal",
                    minimum_deployment_target=getattr(ct.target, target),
                    compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY)
    ml.save(str(path))
    return path


def run_onnx_default(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime as its users run it: default session options."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))


def check_package(pkg: Path, feeds: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                  tol: float = 1e-4, **options: Any) -> dict[str, float]:
    """Compile ``pkg`` to ONNX and run it; run it with kcc.coreml.predict; both must match ``reference``."""
    model = kcc.compile(str(pkg), target="onnx", **options)
    got_onnx = run_onnx_default(model, feeds)
    got_run = predict(str(pkg), dict(feeds))
    errors = {}
    for name, ref in reference.items():
        assert_not_degenerate(ref, f"{pkg.name} reference {name}")
        errors[f"onnx:{name}"] = assert_close(ref, got_onnx[name], tol, f"{pkg.name} {name} (onnxruntime)")
        errors[f"run:{name}"] = assert_close(ref, got_run[name], tol, f"{pkg.name} {name} (kcc.coreml.predict)")
    return errors


def with_ties(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Seeded data with exact zeros and small integers mixed in (boundaries of relu, clip, round ...)."""
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float32)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)
    flat[idx] = rng.choice([0.0, 1.0, -1.0, 0.5, -0.5, 6.0, 2.5], size=idx.size)
    return x


def seeded(shape: Sequence[int], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


ProgramFactory = Callable[[], Any]


GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/<name>.txt (rewritten on purpose with KCC_UPDATE_GOLDEN=1)."""
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get("KCC_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"golden file {path} is missing; create it with KCC_UPDATE_GOLDEN=1"
    assert path.read_text() == text, f"IR text differs from {path}; if intended, regenerate with KCC_UPDATE_GOLDEN=1"
