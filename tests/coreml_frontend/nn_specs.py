"""NeuralNetwork specs written with coremltools' NeuralNetworkBuilder, for layer coverage.

Dims are unequal everywhere (C=3, H=5, W=7, ...) so a transposed or misread
axis changes the numbers. Weights are seeded; the reference is Core ML's
semantics as kcc's NeuralNetwork runtime (``kcc.coreml.predict``) computes them.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np


def builder_module() -> Any:
    warnings.filterwarnings("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    return datatypes, NeuralNetworkBuilder


def rank5_cnn(seed: int = 0) -> Any:
    """conv (same, strided) -> PReLU -> batchnorm -> pool -> deconv / branches -> add, concat -> dense."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5  # noqa: E731
    b = NeuralNetworkBuilder([("x", datatypes.Array(3, 5, 7))], [("y", None)])
    b.add_convolution("conv", kernel_channels=3, output_channels=4, height=3, width=2, stride_height=1,
                      stride_width=2, border_mode="same", groups=1, W=r(3, 2, 3, 4), b=r(4), has_bias=True,
                      input_name="x", output_name="c1")
    b.add_activation("prelu", "PRELU", "c1", "a1", params=np.abs(r(4)))
    b.add_batchnorm("bn", 4, gamma=r(4) + 1, beta=r(4), mean=r(4), variance=np.abs(r(4)) + 0.5,
                    input_name="a1", output_name="n1")
    b.add_pooling("pool", height=2, width=3, stride_height=1, stride_width=1, layer_type="MAX",
                  padding_type="VALID", input_name="n1", output_name="p1")            # (4, 4, 2)
    b.add_pooling("avg", height=2, width=2, stride_height=2, stride_width=1, layer_type="AVERAGE",
                  padding_type="SAME", input_name="n1", output_name="p2", exclude_pad_area=True)  # (4, 3, 4)
    b.add_convolution("deconv", kernel_channels=4, output_channels=2, height=2, width=3, stride_height=2,
                      stride_width=1, border_mode="valid", groups=1, W=r(2, 3, 2, 4), b=r(2), has_bias=True,
                      is_deconv=True, output_shape=None, input_name="p1", output_name="d1")  # (2, 8, 4)
    b.add_activation("lrelu", "LEAKYRELU", "d1", "d2", params=[0.15])
    b.add_unary("sq", "d2", "d3", mode="power", alpha=2.0, scale=0.5, shift=0.25)
    b.add_pooling("dpool", height=2, width=1, stride_height=2, stride_width=1, layer_type="AVERAGE",
                  padding_type="VALID", input_name="d3", output_name="d4")           # (2, 4, 4)
    b.add_elementwise("mul", ["p2", "p2"], "m1", mode="MULTIPLY")                 # (4, 3, 4)
    b.add_slice("slice", "m1", "s1", axis="height", start_index=0, end_index=2, stride=1)  # (4, 2, 4)
    b.add_slice("slice2", "d4", "s2", axis="height", start_index=1, end_index=-1, stride=1)  # (2, 2, 4)
    b.add_elementwise("cat", ["s1", "s2"], "cat", mode="CONCAT")                  # (6, 2, 4)
    b.add_activation("sig", "SIGMOID_HARD", "cat", "h1", params=[0.3, 0.4])
    b.add_scale("scale", W=r(6), b=r(6), has_bias=True, input_name="h1", output_name="h2", shape_scale=[6],
                shape_bias=[6])
    b.add_flatten("flat", mode=1, input_name="h2", output_name="f1")
    b.add_inner_product("fc", W=r(5, 48), b=r(5), input_channels=48, output_channels=5, has_bias=True,
                        input_name="f1", output_name="y")
    return b.spec


def rnn_model(seed: int = 0) -> Any:
    """A sequence (T=6, F=4) through simpleRecurrent, GRU and an LSTM: rank-5 blobs with a real Seq axis."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5  # noqa: E731
    b = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("y", None)])
    b.add_simple_rnn("rnn", W_h=r(5, 5), W_x=r(5, 4), b=r(5), hidden_size=5, input_size=4, activation="TANH",
                     input_names=["x"], output_names=["r1", "r1h"], output_all=True)
    b.add_gru("gru", W_h=[r(3, 3) for _ in range(3)], W_x=[r(3, 5) for _ in range(3)], b=[r(3) for _ in range(3)],
              hidden_size=3, input_size=5, input_names=["r1"], output_names=["g1", "g1h"], output_all=True,
              activation="TANH", inner_activation="SIGMOID",
              reverse_input=True)
    b.add_unilstm("lstm", W_h=[r(4, 4) for _ in range(4)], W_x=[r(4, 3) for _ in range(4)],
                  b=[r(4) for _ in range(4)], hidden_size=4, input_size=3, input_names=["g1"],
                  output_names=["y", "lh", "lc"], output_all=False, forget_bias=True)
    return b.spec


def nd_model(seed: int = 0) -> Any:
    """Specification-4 ND layers on exact-mapped (2, 3, 5) arrays."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    b = NeuralNetworkBuilder([("x", datatypes.Array(2, 3, 5)), ("z", datatypes.Array(2, 5, 3))], [("y", None)],
                             disable_rank5_shape_mapping=True)
    b.add_transpose("t", axes=[0, 2, 1], input_name="x", output_name="t1")              # (2, 5, 3)
    b.add_batched_mat_mul("mm", ["t1"], "mm", weight_matrix_rows=3, weight_matrix_columns=4, W=r(3, 4), bias=r(4))
    b.add_layer_normalization("ln", "mm", "ln", normalized_shape=[4], gamma=r(4), beta=r(4), eps=1e-5)
    b.add_add_broadcastable("addb", ["t1", "z"], "ab")                                # (2, 5, 3)
    b.add_greater_than("gt", ["ab", "z"], "gt")
    b.add_where_broadcastable("where", ["gt", "ab", "t1"], "w1")
    b.add_sin("sin", "w1", "sn")
    b.add_floor("floor", "ab", "fl")
    b.add_concat_nd("cat", ["sn", "fl", "ln"], "cat", axis=-1)                         # (2, 5, 10)
    b.add_softmax_nd("sm", "cat", "sm", axis=1)
    b.add_slice_static("sl", "sm", "sl", begin_ids=[0, 1, 0], end_ids=[2, 5, 9], strides=[1, 2, 1],
                       begin_masks=[True, False, False], end_masks=[True, False, False])    # (2, 2, 9)
    b.add_reduce_mean("rm", "sl", "rm", axes=[2], keepdims=True)                        # (2, 2, 1)
    b.add_multiply_broadcastable("mulb", ["sl", "rm"], "y")
    return b.spec


def extra_layers_model(seed: int = 0) -> Any:
    """Rank-5 layers past the basic set: crop, dot, sequence-free bidirectional LSTM, ... (C=4, H=5, W=6)."""
    datatypes, NeuralNetworkBuilder = builder_module()
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5  # noqa: E731
    b = NeuralNetworkBuilder([("x", datatypes.Array(4, 5, 6)), ("v", datatypes.Array(3))], [("y", None),
                                                                                             ("z", None)])
    b.add_crop("crop", left=1, right=2, top=0, bottom=1, offset=[0, 0], input_names=["x"], output_name="c1")
    b.add_padding("pad", left=2, right=0, top=1, bottom=1, value=0, input_name="c1", output_name="p1",
                  padding_type="reflection")                                              # (4, 6, 5)
    b.add_reduce("red", "p1", "r1", axis="HW", mode="sumsquare")                           # (4, 1, 1)
    b.add_l2_normalize("l2", "p1", "l2", epsilon=1e-6)
    b.add_mvn("mvn", "l2", "m1", across_channels=False, normalize_variance=True, epsilon=1e-5)
    b.add_upsample("up", scaling_factor_h=2, scaling_factor_w=1, input_name="m1", output_name="u1", mode="NN")
    b.add_reduce("red2", "u1", "r2", axis="HW", mode="avg")                               # (4, 1, 1)
    dot = b.nn_spec.layers.add()  # the builder has no helper for the dot layer
    dot.name, dot.dot.cosineSimilarity = "dot", True
    dot.input.extend(["r1", "r2"])
    dot.output.append("d1")
    b.add_elementwise("scaled", ["r2", "d1"], "s1", mode="MULTIPLY")                      # (4, 1, 1)
    b.add_flatten("flat", mode=0, input_name="s1", output_name="f1")
    b.add_bidirlstm("bilstm", W_h=[r(2, 2) for _ in range(4)], W_x=[r(2, 3) for _ in range(4)],
                    b=[r(2) for _ in range(4)], W_h_back=[r(2, 2) for _ in range(4)],
                    W_x_back=[r(2, 3) for _ in range(4)], b_back=[r(2) for _ in range(4)], hidden_size=2,
                    input_size=3, input_names=["v"], output_names=["bl", "hf", "cf", "hb", "cb"],
                    output_all=False)
    b.add_elementwise("cat", ["f1", "bl"], "y", mode="CONCAT")                            # (6, 1, 1)
    b.add_lrn("lrn", "p1", "n1", alpha=0.3, beta=0.75, local_size=3, k=1.5)
    b.add_unary("round", "n1", "z0", mode="abs")
    b.add_activation("z", "SOFTPLUS", "z0", "z")
    return b.spec


def nd_math_model() -> Any:
    """ND math layers spelled with several IR ops: round (halves away from 0), mod, floorDiv, sinh, reductions."""
    datatypes, NeuralNetworkBuilder = builder_module()
    b = NeuralNetworkBuilder([("a", datatypes.Array(2, 3, 4)), ("d", datatypes.Array(2, 3, 4))], [("y", None)],
                             disable_rank5_shape_mapping=True)
    b.add_round("round", "a", "r")
    b.add_mod_broadcastable("mod", ["a", "d"], "m")
    b.add_floor_div_broadcastable("fdiv", ["a", "d"], "fd")
    b.add_sinh("sinh", "d", "sh")
    b.add_cosh("cosh", "d", "ch")
    b.add_exp2("exp2", "d", "e2")
    b.add_reduce_logsumexp("lse", "a", "lse", axes=[1], keepdims=True)                   # (2, 1, 4)
    b.add_reduce_l2("l2", "a", "l2", axes=[2], keepdims=False)                           # (2, 3)
    b.add_expand_dims("ex", "l2", "l2e", axes=[-1])                                      # (2, 3, 1)
    b.add_stack("stack", ["r", "m", "fd", "sh", "ch", "e2"], "st", axis=1)                # (2, 6, 3, 4)
    b.add_reduce_sum("rs", "st", "rs", axes=[1], keepdims=False)                         # (2, 3, 4)
    b.add_add_broadcastable("add1", ["rs", "lse"], "s1")
    b.add_add_broadcastable("add2", ["s1", "l2e"], "y")
    return b.spec
