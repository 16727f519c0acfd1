"""kcc's TensorFlow-op table, on top of tf2onnx's (see docs/lambda.md).

Two kinds of entries:

* ``TF2ONNX_OVERRIDES``: handed to tf2onnx as ``custom_op_handlers``; they
  replace tf2onnx's lowering of a TF op where that lowering is not importable
  (``tf.reverse`` becomes ``ReverseSequence`` with sequence lengths computed
  from the symbolic batch; kcc wants a reversing ``Slice``).
* ``TF_LEFTOVERS``: TF ops tf2onnx leaves unconverted (they stay in its ONNX
  output with their TF op type); each is rewritten into ONNX nodes before the
  importer runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from kcc.extras import require


def _reverse_as_slice(ctx: Any, node: Any, name: str, args: list) -> Any:
    """ReverseV2(x, axes) -> Slice(x, starts=-1, ends=-inf, axes, steps=-1) (axes must be constant)."""
    utils = require("tf2onnx.utils", "lowering tf.reverse")

    axes = node.inputs[1].get_tensor_value(as_list=True)
    axes = [axes] if isinstance(axes, int) else list(axes)
    n = len(axes)
    low = np.iinfo(np.int64).min
    operands = [ctx.make_const(utils.make_name(f"{node.name}_{key}"), np.asarray(v, np.int64)).output[0]
                for key, v in (("starts", [-1] * n), ("ends", [low] * n), ("axes", axes), ("steps", [-1] * n))]
    node.type = "Slice"
    ctx.replace_inputs(node, [node.input[0]] + operands)
    return node


# TF op type -> (handler(ctx, node, name, args), args), tf2onnx's custom_op_handlers form.
TF2ONNX_OVERRIDES = {"ReverseV2": (_reverse_as_slice, [])}


def tf2onnx_overrides() -> dict[str, tuple]:
    return dict(TF2ONNX_OVERRIDES)


def _rewrite_erfc(node: onnx.NodeProto, fresh) -> list[onnx.NodeProto]:
    """erfc(x) = 1 - erf(x) (tf.nn.gelu's exact form uses Erfc, which tf2onnx lacks)."""
    erf, one = fresh("erf"), fresh("one")
    return [helper.make_node("Constant", [], [one], value=helper.make_tensor(one, onnx.TensorProto.FLOAT, [], [1.0])),
            helper.make_node("Erf", [node.input[0]], [erf], name=fresh(node.name + "/erf")),
            helper.make_node("Sub", [one, erf], list(node.output), name=node.name)]


def _rewrite_expm1(node: onnx.NodeProto, fresh) -> list[onnx.NodeProto]:
    """expm1(x) = exp(x) - 1 (tf.math.expm1, keras.ops.expm1, ELU-style bodies)."""
    exp, one = fresh("exp"), fresh("one")
    return [helper.make_node("Constant", [], [one], value=helper.make_tensor(one, onnx.TensorProto.FLOAT, [], [1.0])),
            helper.make_node("Exp", [node.input[0]], [exp], name=fresh(node.name + "/exp")),
            helper.make_node("Sub", [exp, one], list(node.output), name=node.name)]


def _rewrite_log1p(node: onnx.NodeProto, fresh) -> list[onnx.NodeProto]:
    """log1p(x) = log(1 + x)."""
    plus, one = fresh("plus1"), fresh("one")
    return [helper.make_node("Constant", [], [one], value=helper.make_tensor(one, onnx.TensorProto.FLOAT, [], [1.0])),
            helper.make_node("Add", [node.input[0], one], [plus], name=fresh(node.name + "/add")),
            helper.make_node("Log", [plus], list(node.output), name=node.name)]


# TensorFlow ops tf2onnx leaves unconverted (still with their TF op type) -> an
# equivalent ONNX spelling. A small table kcc owns on top of tf2onnx's.
TF_LEFTOVERS = {"Erfc": _rewrite_erfc, "Expm1": _rewrite_expm1, "Log1p": _rewrite_log1p}


def patch_leftovers(model: onnx.ModelProto) -> None:
    counter = iter(range(10 ** 9))

    def fresh(hint: str) -> str:
        return f"kcc_{hint}_{next(counter)}"

    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        rewrite = TF_LEFTOVERS.get(node.op_type)
        nodes.extend(rewrite(node, fresh) if rewrite else [node])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
