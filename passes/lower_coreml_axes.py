"""lower_coreml_axes: ops whose Core ML layer works on fixed axes, with the data moved there first.

Core ML lowering (after the standard pipeline). Each rule writes the
transposes/reshapes the old emitter wrote as extra layers, so the emitter maps
one IR op to one layer and the moves are visible to ``--dump-ir``:

* ``resize`` by a non-integer factor (or of rank > 4): NeuralNetwork's
  ``upsample`` takes integer factors only. Per resized spatial axis, the axis
  moves last and a ``matmul`` with the exact resampling matrix (the resize op's
  own numbers: it resizes an identity) does the work::

      %y = resize(%x) {sizes=(3, 7)}
    ->
      %t = transpose(%x) {perm=(0, 1, 3, 2)}; %m = matmul(%t, %rows); %u = transpose(%m) ...

* ``dense`` with computed weights or on a rank > 4 tensor: ``innerProduct``
  and the 1x1 ``convolution`` take constant weights on rank <= 4. The features
  move last, ``matmul`` (``batchedMatmul``), bias ``add``, features back.
* ``layer_norm`` over axes that are not the last ones: ``layerNormalization``
  and ``mvn`` normalize trailing axes. The normalized axes move last (in
  their order, so the scale/bias keep their shape) and back after.
* ``batch_norm`` of rank > 4: the ``batchnorm`` layer is 4-D. The spatial axes
  but the last fold into one (a row-major reshape keeps each channel's values
  on their channel) and unfold after.

Not lowered: integer-factor 1-D/2-D resizes (``upsample``), dense with constant
weights on rank <= 4, layer_norm over trailing axes, batch_norm of rank <= 4;
anything with dims that are not static where the rewrite needs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from kcc.layout import to_ir_perm, to_keras_perm
from kcc.ops.registry import get_op
from kcc.ops.shapes import norm_axes
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


def _static(dims) -> bool:
    return all(isinstance(d, int) for d in dims)


# ------------------------------------------------------------------ resize
def resampling_rows(size: int, out: int, mode: str) -> np.ndarray:
    """The (size, out) matrix M with ``resize`` along one axis == ``v @ M`` (the op resizing an identity)."""
    eye = np.eye(size, dtype=np.float32).reshape(size, 1, size)       # (N=size, C=1, L=size)
    y = get_op("resize").compute({"mode": mode, "sizes": (out,), "scales": ()}, eye)
    return np.ascontiguousarray(y[:, 0, :], dtype=np.float32)


def upsample_factors(x, out) -> list[float] | None:
    """The per-axis factors of a resize, or None when a spatial dim is not static."""
    if not _static(x.shape[2:]) or not _static(out.shape[2:]):
        return None
    return [o / i for o, i in zip(out.shape[2:], x.shape[2:])]


def _check_resize(graph, x, root):
    factors = upsample_factors(x, root.outputs[0])
    if factors is None:
        return f"the spatial dims of {x.type} -> {root.outputs[0].type} are not static"
    if all(f >= 1 and float(f).is_integer() for f in factors) and x.rank in (3, 4):
        return f"integer factors {factors}: the upsample layer"
    return None


def _resize(op, x, root):
    out = root.outputs[0]
    r, y = x.rank, x
    for a in range(2, r):
        if x.shape[a] == out.shape[a]:
            continue
        rows = op.const(resampling_rows(int(x.shape[a]), int(out.shape[a]), root.attrs["mode"]))
        if a == r - 1:                      # already last
            y = op.matmul(y, rows)
            continue
        perm = tuple(i for i in range(r) if i != a) + (a,)
        moved = op.transpose(y, perm=perm)
        y = op.transpose(op.matmul(moved, rows), perm=tuple(int(i) for i in np.argsort(perm)))
    return y


# ------------------------------------------------------------------ dense
def _check_dense(graph, x, w, root, b=None):
    if root.attrs.get("activation", "linear") != "linear":
        return "a fused activation (lower it first)"
    computed = not w.is_const or (b is not None and not b.is_const)
    if not computed and x.rank <= 4:
        return "constant weights on rank <= 4: innerProduct or a 1x1 convolution"
    return None


def _dense(op, x, w, root, b=None):
    r = x.rank
    y = op.transpose(x, perm=to_keras_perm(r)) if r > 2 else x      # features last
    y = op.matmul(y, w)
    if b is not None:
        y = op.add(y, b)
    return op.transpose(y, perm=to_ir_perm(r)) if r > 2 else y


# ------------------------------------------------------------------ layer_norm
def _trailing(axes: tuple[int, ...], rank: int) -> bool:
    return axes == tuple(range(rank - len(axes), rank))


def _check_layer_norm(graph, x, root, scale=None, bias=None):
    axes = norm_axes(root.attrs["axes"], x.rank)
    if _trailing(axes, x.rank):
        return f"axes {axes} are the trailing axes"
    return None


def _layer_norm(op, x, root, scale=None, bias=None):
    r = x.rank
    axes = norm_axes(root.attrs["axes"], r)
    perm = tuple(a for a in range(r) if a not in axes) + tuple(axes)
    moved = op.transpose(x, perm=perm)
    normed = op.layer_norm(moved, scale, bias, axes=tuple(range(r - len(axes), r)), epsilon=root.attrs["epsilon"])
    return op.transpose(normed, perm=tuple(int(i) for i in np.argsort(perm)))


# ------------------------------------------------------------------ batch_norm
def _check_batch_norm(graph, x, scale, bias, mean, var, root):
    if x.rank <= 4:
        return f"rank {x.rank}: the batchnorm layer"
    if not _static(x.shape[1:]):
        return f"the dims of {x.type} are not static"
    return None


def _batch_norm(op, x, scale, bias, mean, var, root):
    c, *spatial = x.shape[1:]
    flat = op.reshape(x, shape=(0, c, prod(spatial[:-1]), spatial[-1]))
    normed = op.batch_norm(flat, scale, bias, mean, var, epsilon=root.attrs["epsilon"])
    return op.reshape(normed, shape=(0,) + tuple(x.shape[1:]))


def _rules() -> list[RewriteRule]:
    rules = [RewriteRule("resize_as_matmul", lambda op, x: op.resize(x, _capture="root"), _resize, _check_resize),
             RewriteRule("batch_norm_as_4d",
                         lambda op, x, scale, bias, mean, var: op.batch_norm(x, scale, bias, mean, var,
                                                                             _capture="root"),
                         _batch_norm, _check_batch_norm),
             RewriteRule("dense_as_matmul", lambda op, x, w: op.dense(x, w, None, _capture="root"),
                         _dense, _check_dense),
             RewriteRule("dense_bias_as_matmul", lambda op, x, w, b: op.dense(x, w, b, _capture="root"),
                         _dense, _check_dense)]
    for has_scale, has_bias in ((True, True), (True, False), (False, True), (False, False)):
        rules.append(RewriteRule(f"layer_norm_axes_last{'_scale' * has_scale}{'_bias' * has_bias}",
                                 _layer_norm_pattern(has_scale, has_bias), _layer_norm, _check_layer_norm))
    return rules


def _layer_norm_pattern(has_scale: bool, has_bias: bool):
    if has_scale and has_bias:
        return lambda op, x, scale, bias: op.layer_norm(x, scale, bias, _capture="root")
    if has_scale:
        return lambda op, x, scale: op.layer_norm(x, scale, None, _capture="root")
    if has_bias:
        return lambda op, x, bias: op.layer_norm(x, None, bias, _capture="root")
    return lambda op, x: op.layer_norm(x, None, None, _capture="root")


RULES = _rules()


@register_pass
@dataclass
class LowerCoremlAxes(RewritePass):
    name = "lower_coreml_axes"
    # After the folds and fusions that create the ops it rewrites.
    after = ("fold_batchnorm", "fuse_normalization")
    rules = RULES
