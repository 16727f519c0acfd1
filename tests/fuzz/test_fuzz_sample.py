"""The fuzzing suite's CI sample: 2,000 seeded mutated model files, every outcome allowed.

Each case mutates a valid seed (``.keras``, ``.h5``, ``.json`` + weights, ``.onnx``,
``.mlmodel``) at one level and runs it through the public API in a worker pool
with a time bound (fuzz_engine.py). Allowed: a converted model that passes the
target's checker, or a KccError naming the file. Anything else fails the test
with the case numbers; ``bench/fuzz.py --case N --keep DIR`` rebuilds a case's files.
"""
from __future__ import annotations

from collections import Counter

import pytest

from fuzz_engine import FAILURES, run_cases
from fuzz_seeds import build_seeds

CASES = 2000
MASTER = 1  # not bench/fuzz.py's default master seed: CI and the long run cover different cases


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    build_seeds(folder)
    return folder


def test_seeded_sample_has_only_allowed_outcomes(seed_dir):
    results = run_cases(range(CASES), seed_dir, workers=2, timeout=30.0, master=MASTER)
    kinds = Counter(o.kind for o in results)
    assert len(results) == CASES
    failures = [o for o in results if o.kind in FAILURES]
    report = "\n".join(f"case {o.case} [{o.seed} {o.level} -> {o.target}] {o.kind}: {o.detail} "
                       f"({o.mutation}); rerun: bench/fuzz.py --master {MASTER} --case {o.case} --keep DIR"
                       for o in failures[:30])
    assert not failures, f"{dict(kinds)}\n{report}"
    # The sample exercises both allowed outcomes on every format (a suite that only ever
    # sees refusals, or only conversions, is not testing anything).
    for fmt in ("keras", "h5", "json", "onnx", "mlmodel", "mlpackage"):
        seen = {o.kind for o in results if o.seed.endswith("." + fmt)}
        assert {"converted", "refused"} <= seen, (fmt, seen)
