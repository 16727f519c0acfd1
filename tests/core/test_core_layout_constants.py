"""kcc.layout's permutations and the activation constants declared in kcc.ops, checked against numpy and Keras."""
from __future__ import annotations

import numpy as np
import pytest

from kcc.layout import ir_axis, keras_shape, to_ir_perm, to_keras_perm


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_layout_permutations_are_inverse_and_match_ir_axis(rank):
    # Unequal dim sizes: a swapped pair of axes changes the shape.
    x = np.arange(np.prod(range(2, 2 + rank))).reshape(tuple(range(2, 2 + rank)))
    ir = np.transpose(x, to_ir_perm(rank))
    assert np.array_equal(np.transpose(ir, to_keras_perm(rank)), x)
    if rank >= 3:
        assert ir.shape == (2, 1 + rank) + tuple(range(3, 1 + rank))  # channels (the last Keras dim) second
    for k in range(-rank, rank):
        assert ir.shape[ir_axis(k, rank)] == x.shape[k], (rank, k)


def test_keras_shape_of_an_ir_value():
    from kcc.ir import Graph, TensorType

    g = Graph()
    v = g.add_input("x", TensorType(("N", 8, 5, 7)))
    assert keras_shape(v) == ("N", 5, 7, 8)


def _x():
    # Ties and boundaries: the hard_sigmoid knees (+-3 for 1/6, +-2.5 for 0.2), 0, +-0.
    return np.array([-4.0, -3.0, -2.5, -1e-3, -0.0, 0.0, 1e-3, 2.5, 3.0, 4.0], np.float32)


def _ir(op: str, x: np.ndarray, **attrs) -> np.ndarray:
    from kcc.ops import get_op

    opdef = get_op(op)
    return opdef.run(opdef.normalize_attrs(attrs, where=op), [x])[0]


def test_declared_activation_constants_match_keras():
    """The IR ops with their declared defaults compute what Keras 3 computes, at the boundaries."""
    import keras
    ops = keras.ops
    x = _x()
    for ir_op, keras_fn in [("hard_sigmoid", keras.activations.hard_sigmoid), ("selu", keras.activations.selu),
                            ("hard_silu", keras.activations.hard_silu),
                            ("leaky_relu", keras.activations.leaky_relu)]:
        want = ops.convert_to_numpy(keras_fn(x))
        np.testing.assert_allclose(_ir(ir_op, x), want, rtol=1e-6, atol=1e-7, err_msg=ir_op)
    want = ops.convert_to_numpy(keras.activations.gelu(x, approximate=True))
    np.testing.assert_allclose(_ir("gelu", x, approximate=True), want, rtol=1e-6, atol=1e-7)


def test_keras2_hard_sigmoid_slope():
    from kcc.frontends.keras.activations import keras_hard_sigmoid_alpha
    from kcc.ops.activation import HARD_SIGMOID_BETA

    x = _x()
    y = _ir("hard_sigmoid", x, alpha=keras_hard_sigmoid_alpha(True), beta=HARD_SIGMOID_BETA)
    # tf.keras 2: clip(0.2 x + 0.5, 0, 1): 0 at -2.5 and 1 at 2.5 exactly.
    np.testing.assert_array_equal(y[[1, 2, 7, 8]], np.array([0.0, 0.0, 1.0, 1.0], np.float32))
    assert keras_hard_sigmoid_alpha(False) == pytest.approx(1 / 6)


def test_op_defaults_are_the_declared_constants():
    from kcc.ops import get_op
    from kcc.ops.activation import HARD_SIGMOID_ALPHA, HARD_SIGMOID_BETA, LEAKY_RELU_ALPHA
    from kcc.ops.normalization import BATCH_NORM_EPSILON, LAYER_NORM_EPSILON
    from kcc.ops.recurrent import activation_attrs

    assert get_op("hard_sigmoid").attrs["alpha"].default == HARD_SIGMOID_ALPHA
    assert get_op("hard_sigmoid").attrs["beta"].default == HARD_SIGMOID_BETA
    assert get_op("leaky_relu").attrs["alpha"].default == LEAKY_RELU_ALPHA
    assert get_op("batch_norm").attrs["epsilon"].default == BATCH_NORM_EPSILON
    assert get_op("layer_norm").attrs["epsilon"].default == LAYER_NORM_EPSILON
    lstm = get_op("lstm").normalize_attrs({}, where="lstm")
    assert activation_attrs("hard_sigmoid", lstm) == {"alpha": HARD_SIGMOID_ALPHA, "beta": HARD_SIGMOID_BETA}
