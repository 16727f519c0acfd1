"""Every IR op. Importing this package registers them all (see registry.py).

One module per family; a new family is a new module imported here.
"""
from kcc.ops import (  # noqa: F401
    activation, attention, conv, custom, elementwise, lambda_ops, linear, normalization, pooling, recurrent, reduce,
    resize, shape_ops, tensor, trig)
from kcc.ops.registry import Attr, OpDef, all_ops, get_op, register_op

__all__ = ["Attr", "OpDef", "all_ops", "get_op", "register_op"]
