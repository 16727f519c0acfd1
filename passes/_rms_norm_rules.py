"""The rms_norm formula in IR ops, shared by the ONNX and Core ML lowering passes.

    y = x / sqrt(mean(x * x over axes) + epsilon) * scale

(ONNX's RMSNormalization function body, Keras's ``ops.rms_normalization``).
``scale`` holds the normalized dims in axis order; it is reshaped to broadcast
against ``x``. The ``check`` a pass passes in decides when the op stays whole.
"""
from __future__ import annotations

from typing import Callable

from kcc.pattern import RewriteRule


def _rewrite(op, x, root, scale=None):
    axes = tuple(sorted(a % x.rank for a in root.attrs["axes"]))
    ms = op.reduce_mean(op.mul(x, x), axes=axes, keepdims=True)
    y = op.div(x, op.sqrt(op.add(ms, op.scalar(root.attrs["epsilon"], x))))
    if scale is None:
        return y
    shape = [1] * x.rank
    for a, d in zip(axes, scale.shape):
        shape[a] = d
    s = op.const(scale.const.reshape(shape), name=f"{scale.name}_b") if scale.is_const else \
        op.reshape(scale, shape=tuple(shape))
    return op.mul(y, s)


def rms_norm_rules(check: Callable[..., str | None]) -> list[RewriteRule]:
    """Rules writing out rms_norm (with and without a scale) where ``check`` returns None."""
    return [RewriteRule("rms_norm_scale", lambda op, x, scale: op.rms_norm(x, scale, _capture="root"),
                        _rewrite, check),
            RewriteRule("rms_norm", lambda op, x: op.rms_norm(x, None, _capture="root"), _rewrite, check)]
