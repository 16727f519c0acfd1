"""The Lambda library (lambda_library.py): every body converts and matches Keras three ways."""
from __future__ import annotations

import pytest

from lambda_helpers import check_three_ways, lambda_model
from lambda_library import LIBRARY


def test_library_is_large_enough():
    assert len(LIBRARY) >= 30
    assert len({name for name, *_ in LIBRARY}) == len(LIBRARY)


@pytest.mark.parametrize("name,shapes,body,kwargs", LIBRARY, ids=[e[0] for e in LIBRARY])
def test_lambda_body(name, shapes, body, kwargs):
    model = lambda_model(shapes, body, **kwargs)
    result, err = check_three_ways(model)
    assert "lambda" not in " ".join(result.graph.op_types())
    print(f"{name}: max relative error {err:.3g}, ops {result.graph.op_types()}")
