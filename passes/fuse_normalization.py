"""fuse_normalization: ``(x - mean) / sqrt(var + eps)`` [* scale] [+ shift] -> ``layer_norm``.

The statistics are ``reduce_mean`` over the same axes, kept as size-1 dims
(or dropped when the axes are leading, as ``tf.reduce_mean(x)`` over every
axis does: the scalar broadcasts the same way). Spellings matched:

* variance ``reduce_mean(square(x - mean))`` (tf.math.reduce_variance,
  tf.nn.moments; the ``x - mean`` may be the numerator's node or its own
  node with its own mean) or ``reduce_mean(square(x)) - square(mean)``;
* eps added before the root (``var + eps``) or absent (eps = 0);
* ``d / sqrt(v)``, ``d / pow(v, 0.5)``, ``d * rsqrt(v)``,
  ``d * reciprocal(sqrt(v))``, ``d * pow(v, -0.5)``, the inverse optionally
  pre-multiplied by a scale (``d * (rsqrt(v) * gamma)``);
* Keras's own form ``x * inv + (-mean * inv [+ beta])`` (or ``x * inv - mean * inv``,
  or tf.nn.batch_normalization's ``x * inv + (beta - mean * inv)``)
  with ``inv = rsqrt(var + eps) [* gamma]``, the rsqrt in any of the inverse
  spellings above (tracing lowers tf.math.rsqrt to ``reciprocal(sqrt(.))``).

A following per-feature multiply/add/sub/div by a constant is then absorbed
into layer_norm's ``scale``/``bias`` when the constant only varies along the
normalized axes (layer_norm's parameters have the normalized dims' shape);
otherwise it stays a separate node after the layer_norm.

Before (the seed Lambda ``(x - tf.reduce_mean(x)) / tf.sqrt(tf.math.reduce_variance(x) + 1e-7)``)::

    %m: f32[] = reduce_mean(%x) {axes=(0, 1)}
    %d: f32[N,10] = sub(%x, %m)
    %m2: f32[1,1] = reduce_mean(%x) {axes=(0, 1), keepdims=True}
    %d2: f32[N,10] = sub(%x, %m2)
    %sq: f32[N,10] = square(%d2)
    %v: f32[] = reduce_mean(%sq) {axes=(0, 1)}
    %ve: f32[] = add(%v, %eps)
    %s: f32[] = sqrt(%ve)
    %y: f32[N,10] = div(%d, %s)

After::

    %layer_norm: f32[N,10] = layer_norm(%x) {axes=(0, 1), epsilon=1e-07}

IR ``layer_norm`` (kcc.ops.normalization): statistics over ``axes`` (may include
the batch axis 0), biased variance, eps inside the square root. Targets:
ONNX LayerNormalization when the axes are a suffix with static dims, else the
decomposed formula; Core ML layerNormalization (suffix of the non-batch
axes) or mvn (normalizeVariance, acrossChannels for (C,H,W)).

Not fused: means or variance over different axes, a dropped-dims mean over
non-leading axes (it would broadcast against the wrong dims), eps added after
the square root (``/ (sqrt(var) + eps)`` is another function), a negative or
non-scalar eps, the mean of another tensor, an intermediate read elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kcc.ir import DTYPES, Node, Value
from kcc.ops.shapes import norm_axes
from kcc.passes._match import same_type, scalar
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass


# ------------------------------------------------------------------ statistics
def _mean(op, x, cap: str):
    return op.reduce_mean(x, _capture=cap)


def _centered(op, x):
    return op.sub(x, _mean(op, x, "m1"))


_VARIANCES: dict[str, Callable] = {
    "mean_sq_dev": lambda op, x: op.reduce_mean(op.square(op.sub(x, _mean(op, x, "m2"))), _capture="v"),
    "mean_sq_minus_sq_mean": lambda op, x: op.sub(op.reduce_mean(op.square(x), _capture="v"),
                                                  op.square(_mean(op, x, "m2"))),
}


def _var_eps(op, x, var: str, eps, with_eps: bool):
    v = _VARIANCES[var](op, x)
    return op.add(v, eps) if with_eps else v


# Forms of d / sqrt(a): name -> (op, d, a, gamma) -> pattern.
_ROOTS: dict[str, Callable] = {
    "div_sqrt": lambda op, d, a, g: op.div(d, op.sqrt(a), _capture="root"),
    "div_pow_half": lambda op, d, a, g: op.div(d, op.pow(a, 0.5), _capture="root"),
}
_INVERSES: dict[str, Callable] = {
    "rsqrt": lambda op, a: op.rsqrt(a),
    "recip_sqrt": lambda op, a: op.reciprocal(op.sqrt(a)),
    "pow_neg_half": lambda op, a: op.pow(a, -0.5),
}
for _n, _inv in _INVERSES.items():
    _ROOTS[f"mul_{_n}"] = lambda op, d, a, g, _inv=_inv: op.mul(d, _inv(op, a), _capture="root")
    _ROOTS[f"mul_{_n}_gamma"] = lambda op, d, a, g, _inv=_inv: op.mul(d, op.mul(_inv(op, a), g), _capture="root")


# Keras's layer_normalization: x * inv + res, res = -mean * inv [+ beta].
def _inv(op, a, g, inverse: str, with_gamma: bool):
    r = _INVERSES[inverse](op, a)
    return op.mul(r, g) if with_gamma else r


_KERAS: dict[str, Callable] = {
    "x_inv_plus_negmean_inv": lambda op, x, inv, b: op.add(op.mul(x, inv), op.mul(op.neg(_mean(op, x, "m1")), inv),
                                                           _capture="root"),
    "x_inv_plus_negmean_inv_beta": lambda op, x, inv, b: op.add(
        op.mul(x, inv), op.add(op.mul(op.neg(_mean(op, x, "m1")), inv), b), _capture="root"),
    "x_inv_minus_mean_inv": lambda op, x, inv, b: op.sub(op.mul(x, inv), op.mul(_mean(op, x, "m1"), inv),
                                                         _capture="root"),
    # tf.nn.batch_normalization: x * inv + (offset - mean * inv)
    "x_inv_plus_beta_minus_mean_inv": lambda op, x, inv, b: op.add(
        op.mul(x, inv), op.sub(b, op.mul(_mean(op, x, "m1"), inv)), _capture="root"),
}


def _stat_axes(node: Node, x: Value) -> tuple[int, ...] | None:
    """The normalized axes of a reduce_mean, if its result broadcasts back onto x like keepdims."""
    axes = norm_axes(node.attrs["axes"], x.rank)
    if node.attrs["keepdims"] or axes == tuple(range(len(axes))):
        return axes
    return None


def _check(graph, x, root, m1, v, m2=None, eps=None, gamma=None, beta=None):
    reason = same_type(root, x)
    if reason:
        return reason
    axes = _stat_axes(m1, x)
    if axes is None or not axes:
        return f"the mean {m1.name} drops non-leading axes {m1.attrs['axes']}"
    for node in (m2 or m1, v):
        if _stat_axes(node, node.inputs[0]) != axes:
            return f"{node.name} reduces over {node.attrs['axes']}, the mean over {axes}"
    if eps is not None:
        e = scalar(eps)
        if e is None or e < 0:
            return f"eps {eps.name} is not a non-negative scalar constant"
    for p in (gamma, beta):
        if p is not None and not p.is_const:
            return f"{p.name} is not constant"
    return None


def _rewrite(op, x, root, m1, v, m2=None, eps=None, gamma=None, beta=None):
    y = op.layer_norm(x, axes=_stat_axes(m1, x), epsilon=scalar(eps) if eps is not None else 0.0)
    if gamma is not None:
        y = op.mul(y, gamma)
    if beta is not None:
        y = op.add(y, beta)
    return y


def _rule(name: str, build: Callable) -> RewriteRule:
    # Every rule names the same variables; the ones a form does not use stay unbound.
    def pattern(op, x, eps, gamma, beta):
        return build(op, x, eps, gamma, beta)
    return RewriteRule(name, pattern, _rewrite, _check)


def _normalize_rules() -> list[RewriteRule]:
    rules = []
    for var in _VARIANCES:
        for with_eps in (True, False):
            tag = f"{var}{'_eps' if with_eps else ''}"
            for rname, root in _ROOTS.items():
                rules.append(_rule(f"norm_{rname}_{tag}", lambda op, x, e, g, b, root=root, var=var, we=with_eps:
                                   root(op, _centered(op, x), _var_eps(op, x, var, e, we), g)))
            for kname, form in _KERAS.items():
                for inverse in _INVERSES:
                    for wg in (False, True):
                        rules.append(_rule(f"keras_{kname}_{inverse}{'_gamma' if wg else ''}_{tag}",
                                           lambda op, x, e, g, b, form=form, var=var, we=with_eps, wg=wg, iv=inverse:
                                           form(op, x, _inv(op, _var_eps(op, x, var, e, we), g, iv, wg), b)))
    return rules


# ------------------------------------------------- absorbing a following affine
_AFFINE: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "add": lambda c: (np.ones_like(c), c),
    "sub": lambda c: (np.ones_like(c), -c),
    "mul": lambda c: (c, np.zeros_like(c)),
    "div": lambda c: (1.0 / c, np.zeros_like(c)),
}


def _as_param(c: Value, ln: Node) -> np.ndarray | None:
    """``c`` as an array of the normalized dims' shape, if it only varies along them."""
    x = ln.inputs[0]
    axes = ln.attrs["axes"]
    axes = norm_axes(axes, x.rank)
    if not c.is_const or not c.dtype.startswith("f") or c.rank > x.rank:
        return None
    dims = [x.shape[a] for a in axes]
    if not all(isinstance(d, int) for d in dims):
        return None
    shape = (1,) * (x.rank - c.rank) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(shape) if i not in axes):
        return None
    try:
        return np.broadcast_to(c.const.astype(np.float64).reshape([shape[a] for a in axes]), dims)
    except ValueError:
        return None


def _check_absorb(graph, x, c, ln, root, s=None, b=None):
    if root.outputs[0].type != ln.outputs[0].type:
        return "the constant widens the output"
    vec = _as_param(c, ln)
    if vec is None:
        return f"{c.name} {c.type} does not vary along the normalized axes {ln.attrs['axes']} only"
    if root.op == "div" and np.any(vec == 0):
        return "division by zero"
    if any(p is not None and not p.is_const for p in (s, b)):
        return "the layer_norm's scale or bias is not constant"
    return None


def _absorb(op, x, c, ln, root, s=None, b=None):
    mul, add = _AFFINE[root.op](_as_param(c, ln))
    dt = DTYPES[x.dtype]
    s0 = s.const.astype(np.float64) if s is not None else 1.0
    b0 = b.const.astype(np.float64) if b is not None else 0.0
    scale = np.asarray(s0 * mul)
    bias = np.asarray(b0 * mul + add)
    new_s = None if s is None and np.all(scale == 1) else op.const(scale.astype(dt), name=f"{ln.name}_scale")
    new_b = None if b is None and np.all(bias == 0) else op.const(bias.astype(dt), name=f"{ln.name}_bias")
    return op.layer_norm(x, new_s, new_b, **ln.attrs)


def _absorb_pattern(aff: str, with_scale: bool, with_bias: bool) -> Callable:
    # A factory, so the loop's choices live in a closure (RewriteRule reads the
    # pattern variables from the signature: x, s, b, c; unused ones stay unbound).
    def pattern(op, x, s, b, c):
        ln = op.layer_norm(x, s if with_scale else None, b if with_bias else None, _capture="ln")
        return getattr(op, aff)(ln, c, _capture="root")
    return pattern


def _absorb_rules() -> list[RewriteRule]:
    return [RewriteRule(f"absorb_{aff}{'_s' if ws else ''}{'_b' if wb else ''}", _absorb_pattern(aff, ws, wb),
                        _absorb, _check_absorb)
            for aff in _AFFINE for ws in (False, True) for wb in (False, True)]


RULES = _normalize_rules() + _absorb_rules()


@register_pass
@dataclass
class FuseNormalization(RewritePass):
    name = "fuse_normalization"
    after = ("fold_identity", "fuse_square", "fold_idempotent")
    rules = RULES
