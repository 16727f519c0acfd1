"""One MIL program per op family (mil_programs.py) -> kcc -> ONNX and kcc.coreml.predict, against numpy."""
from __future__ import annotations

import pytest

from mil_programs import CASES
from mlp_helpers import check_package, coremltools, program_to_mlpackage


@pytest.mark.parametrize("family", sorted(CASES))
def test_mil_op_family(tmp_path, family):
    opset, feeds, build, ref = CASES[family]()
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    pkg = program_to_mlpackage(build(mb, types), tmp_path / f"{family}.mlpackage", opset)
    reference = {k: v.astype("float32") for k, v in ref(**feeds).items()}
    check_package(pkg, feeds, reference, tol=1e-4)
    assert ct  # coremltools made the package
