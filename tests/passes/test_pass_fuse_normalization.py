"""fuse_normalization: (x - mean) / sqrt(var + eps) [* scale] [+ shift] -> layer_norm."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import apply_pass, c, check_rewrite, check_unchanged, graph_with


def _seed_lambda(op, x, axes=(0, 1), eps=1e-7):
    """The issue's seed: (x - tf.reduce_mean(x)) / tf.sqrt(tf.math.reduce_variance(x) + eps), as TF traces it."""
    m = op.reduce_mean(x, axes=axes)
    d = op.sub(x, m)
    m2 = op.reduce_mean(x, axes=axes, keepdims=True)
    v = op.reduce_mean(op.square(op.sub(x, m2)), axes=axes)
    return op.div(d, op.sqrt(op.add(v, c(op, eps))))


def test_seed_lambda_over_all_axes():
    g, op, x = graph_with()
    g.set_outputs([_seed_lambda(op, x)], ["y"])
    out = check_rewrite(g, "fuse_normalization", "seed_all_axes", ["layer_norm"])
    ln = out.nodes()[0]
    assert ln.attrs["axes"] == (0, 1) and abs(ln.attrs["epsilon"] - 1e-7) < 1e-12


def test_shared_centered_value_rsqrt_and_affine_absorbed():
    # d = x - mean; var = mean(d*d); y = d * rsqrt(var + eps) * gamma + beta over the last axis
    g, op, x = graph_with(("N", 4, 6))
    m = op.reduce_mean(x, axes=(2,), keepdims=True)
    d = op.sub(x, m)
    v = op.reduce_mean(op.square(d), axes=(-1,), keepdims=True)
    y = op.mul(d, op.rsqrt(op.add(v, c(op, 1e-3))))
    gamma = c(op, np.linspace(0.5, 2, 6))
    beta = c(op, np.linspace(-1, 1, 6).reshape(1, 1, 6))
    g.set_outputs([op.add(op.mul(y, gamma), beta)], ["y"])
    out = check_rewrite(g, "fuse_normalization", "rsqrt_affine", ["layer_norm"])
    ln = out.nodes()[0]
    assert ln.attrs["axes"] == (2,) and ln.inputs[1].shape == (6,) and ln.inputs[2].shape == (6,)


def test_moments_form_mean_sq_minus_sq_mean():
    g, op, x = graph_with(("N", 8))
    m = op.reduce_mean(x, axes=(1,), keepdims=True)
    v = op.sub(op.reduce_mean(op.square(x), axes=(1,), keepdims=True), op.square(m))
    g.set_outputs([op.div(op.sub(x, m), op.sqrt(op.add(v, c(op, 1e-5))))], ["y"])
    check_rewrite(g, "fuse_normalization", "moments_e_x2", ["layer_norm"], tol=1e-4)


def test_keras_rsqrt_multiply_form_with_gamma_beta():
    # keras.ops.layer_normalization: inv = rsqrt(var + eps) * gamma; x * inv + (-mean * inv + beta)
    g, op, x = graph_with(("N", 8))
    m = op.reduce_mean(x, axes=(1,), keepdims=True)
    v = op.reduce_mean(op.square(op.sub(x, m)), axes=(1,), keepdims=True)
    inv = op.mul(op.rsqrt(op.add(v, c(op, 1e-3))), c(op, np.linspace(1, 2, 8)))
    res = op.add(op.mul(op.neg(m), inv), c(op, np.linspace(-1, 0, 8)))
    g.set_outputs([op.add(op.mul(x, inv), res)], ["y"])
    out = check_rewrite(g, "fuse_normalization", "keras_inv_form", ["layer_norm"], tol=1e-4)
    assert all(v is not None for v in out.nodes()[0].inputs)


def test_keras_form_as_traced_reciprocal_sqrt_without_gamma():
    # keras.ops.layer_normalization traced: rsqrt is reciprocal(sqrt(.)), variance mean(d * d).
    g, op, x = graph_with(("N", 10))
    m = op.reduce_mean(x, axes=(1,), keepdims=True)
    d = op.sub(x, m)
    v = op.reduce_mean(op.square(d), axes=(1,), keepdims=True)
    inv = op.reciprocal(op.sqrt(op.add(v, c(op, 1e-3))))
    g.set_outputs([op.add(op.mul(x, inv), op.mul(op.neg(m), inv))], ["y"])
    check_rewrite(g, "fuse_normalization", "keras_traced", ["layer_norm"], tol=1e-4)


def test_tf_nn_batch_normalization_form():
    # tf.nn.batch_normalization(x, mean, var, offset, scale, eps): inv = rsqrt(var + eps) * scale;
    # x * inv + (offset - mean * inv)
    g, op, x = graph_with(("N", 10))
    m = op.reduce_mean(x, axes=(1,), keepdims=True)
    v = op.reduce_mean(op.square(op.sub(x, m)), axes=(1,), keepdims=True)
    inv = op.mul(op.reciprocal(op.sqrt(op.add(v, c(op, 1e-3)))), c(op, 2.0))
    g.set_outputs([op.add(op.mul(x, inv), op.sub(c(op, 0.5), op.mul(m, inv)))], ["y"])
    out = check_rewrite(g, "fuse_normalization", "tf_batch_normalization", ["layer_norm"], tol=1e-4)
    assert out.nodes()[0].inputs[1].shape == (10,)


def test_per_channel_scale_after_spatial_norm_stays_a_mul():
    # instance-norm-like: statistics over H, W; a per-channel gamma cannot be a layer_norm scale.
    g, op, x = graph_with(("N", 3, 4, 4))
    m = op.reduce_mean(x, axes=(2, 3), keepdims=True)
    d = op.sub(x, m)
    v = op.reduce_mean(op.square(d), axes=(2, 3), keepdims=True)
    y = op.div(d, op.sqrt(op.add(v, c(op, 1e-5))))
    g.set_outputs([op.mul(y, c(op, np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)))], ["y"])
    check_rewrite(g, "fuse_normalization", "instance_norm_channel_scale", ["layer_norm", "mul"])


def _variant_graph(kind):
    g, op, x = graph_with(("N", 4, 6))
    m = op.reduce_mean(x, axes=(2,), keepdims=True)
    d = op.sub(x, m)
    sq = op.square(d)
    eps = c(op, 1e-3)
    if kind == "eps_after_sqrt":
        v = op.reduce_mean(sq, axes=(2,), keepdims=True)
        y = op.div(d, op.add(op.sqrt(v), eps))
    elif kind == "axes_differ":
        v = op.reduce_mean(sq, axes=(1, 2), keepdims=True)
        y = op.div(d, op.sqrt(op.add(v, eps)))
    elif kind == "dropped_non_leading_axis":
        m2 = op.reduce_mean(x, axes=(2,))  # (N, 4) does not broadcast back onto (N, 4, 6) along axis 2
        v = op.reduce_mean(op.square(op.sub(x, m)), axes=(2,), keepdims=True)
        y = op.div(op.sub(x, op.unsqueeze(m2, axes=(2,))), op.sqrt(op.add(v, eps)))
    elif kind == "negative_eps":
        v = op.reduce_mean(sq, axes=(2,), keepdims=True)
        y = op.div(d, op.sqrt(op.add(v, c(op, -1e-3))))
    elif kind == "centered_read_elsewhere":
        v = op.reduce_mean(sq, axes=(2,), keepdims=True)
        y = op.div(d, op.sqrt(op.add(v, eps)))
        g.set_outputs([y, d], ["y", "d"])
        return g
    elif kind == "mean_of_other_tensor":
        z = g.add_input("z", x.type)
        mz = op.reduce_mean(z, axes=(2,), keepdims=True)
        v = op.reduce_mean(op.square(op.sub(x, mz)), axes=(2,), keepdims=True)
        y = op.div(op.sub(x, mz), op.sqrt(op.add(v, eps)))
    g.set_outputs([y], ["y"])
    return g


@pytest.mark.parametrize("kind", ["eps_after_sqrt", "axes_differ", "dropped_non_leading_axis", "negative_eps",
                                  "centered_read_elsewhere", "mean_of_other_tensor"])
def test_conditions_that_block_the_rewrite(kind):
    check_unchanged(_variant_graph(kind), "fuse_normalization")


def test_absorb_leaves_a_non_constant_scale():
    g, op, x = graph_with(("N", 6))
    s = g.add_input("s", x.type)
    ln = op.layer_norm(x, axes=(1,), epsilon=1e-5)
    g.set_outputs([op.mul(ln, s)], ["y"])
    check_unchanged(g, "fuse_normalization")
    assert apply_pass("fuse_normalization", g) is False
