"""The pipeline machinery: ordering rules, options, --verify-each, --dump-ir, the fixed-point bound."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from pass_helpers import c, graph_with
from kcc.errors import ConversionError, IRError, OptionError
from kcc.ir import Graph
from kcc.pattern import RewriteRule, apply_rules
from kcc.passes.base import Pass, register_pass
from kcc.pipeline import Pipeline, RunOptions, get_pass


@register_pass
@dataclasses.dataclass
class _BreakRelu(Pass):
    """A deliberately wrong pass for these tests: relu -> sigmoid."""

    name = "test_break_relu"

    def run(self, graph: Graph) -> bool:
        rule = RewriteRule("relu_to_sigmoid", lambda op, x: op.relu(x), lambda op, x: op.sigmoid(x))
        return apply_rules(graph, [rule])


@register_pass
@dataclasses.dataclass
class _Crash(Pass):
    name = "test_crash"

    def run(self, graph: Graph) -> bool:
        raise ValueError("boom")


def _graph():
    g, op, x = graph_with(origin="act")
    y = op.min(op.max(op.mul(op.sigmoid(x), x), c(op, 0.0)), c(op, 6.0))
    g.set_outputs([op.relu(op.identity(y)), op.relu(op.sin(x))], ["y", "z"])
    return g


def test_ordering_rules_are_checked_when_a_pipeline_is_built():
    with pytest.raises(IRError, match="fuse_gelu must come after fuse_square"):
        Pipeline.from_spec(["fuse_gelu", "fuse_square"])
    with pytest.raises(IRError, match="fuse_hard_silu must come after fuse_clip"):
        Pipeline.from_spec(["fuse_hard_silu", "dce", "fuse_clip"])
    Pipeline.from_spec(["fuse_square", "fuse_gelu"])  # the right order builds


def test_unknown_pass_or_option_raises_option_error():
    with pytest.raises(OptionError, match="pass fuse_activation has no option 'fusible'"):
        Pipeline.from_spec([("fuse_activation", {"fusible": {}})])
    with pytest.raises(OptionError, match="pass dce has no option"):
        get_pass("dce").configure(aggressive=True)
    with pytest.raises(OptionError, match="no pass named 'fuse_everything'"):
        get_pass("fuse_everything")


def test_verify_each_names_the_first_pass_that_changed_an_output():
    p = Pipeline.from_spec(["fold_identity", "fuse_silu", "fuse_clip", "test_break_relu", "dce"])
    report = p.run(_graph(), RunOptions(verify_each=True))
    assert report.first_divergence is not None
    name, err = report.first_divergence
    assert name == "test_break_relu" and err > 1e-2


def test_verify_each_is_quiet_for_correct_passes():
    from kcc.backends import get_target

    report = Pipeline.from_spec(list(get_target("onnx").pipeline)).run(_graph(), RunOptions(verify_each=True))
    assert report.first_divergence is None
    # The ONNX lowering shows too: silu becomes sigmoid and mul (no Swish in ONNX).
    assert [r.name for r in report.records if r.changed] == ["fold_identity", "fuse_clip", "fuse_silu",
                                                             "lower_onnx_elementwise"]


def test_a_crashing_pass_is_named_with_the_passes_before_it():
    p = Pipeline.from_spec(["fold_identity", "fuse_silu", "test_crash"])
    with pytest.raises(ConversionError, match=r"pass test_crash failed \(ValueError: boom\); "
                                              r"passes run before it: fold_identity, fuse_silu"):
        p.run(_graph())


def test_dump_ir_writes_text_and_dot_per_pass(tmp_path):
    p = Pipeline.from_spec(["fold_identity", "fuse_silu", "fuse_clip", "dce"])
    p.run(_graph(), RunOptions(dump_dir=tmp_path, dump_all=True))  # every pass (default: changed ones only)
    names = sorted(f.name for f in tmp_path.iterdir() if f.suffix in (".txt", ".dot"))
    assert names == ["00-frontend.dot", "00-frontend.txt", "01-fold_identity.dot", "01-fold_identity.txt",
                     "02-fuse_silu.dot", "02-fuse_silu.txt", "03-fuse_clip.dot", "03-fuse_clip.txt",
                     "04-dce.dot", "04-dce.txt"]
    # The dumps show each rewrite happening.
    assert "= sigmoid(" in (tmp_path / "01-fold_identity.txt").read_text()
    assert "= silu(%x)" in (tmp_path / "02-fuse_silu.txt").read_text()
    assert "{min=0, max=6}" in (tmp_path / "03-fuse_clip.txt").read_text()
    assert (tmp_path / "04-dce.dot").read_text().startswith("digraph")


def test_fixed_point_bound_warns():
    g, op, x = graph_with()
    g.set_outputs([op.relu(x)], ["y"])
    forever = RewriteRule("relu_again", lambda op, x: op.relu(x), lambda op, x: op.relu(x))
    with pytest.warns(UserWarning, match=r"rewrite rules \['relu_again'\] still firing after 3 sweeps"):
        assert apply_rules(g, [forever], max_iterations=3)
    g.validate()


def test_rewrite_rules_reach_a_fixed_point_without_warning():
    g = _graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pipeline.from_spec(["fold_identity", "fuse_silu", "fuse_clip"]).run(g)
    assert g.op_types() == ["sin", "relu", "silu", "clip"]
    np.testing.assert_equal(g.outputs[0].shape, ("N", 10))
