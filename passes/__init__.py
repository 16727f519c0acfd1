"""kcc.passes: one pass (or one small family of rewrite rules) per module.

Importing this package registers every pass by name (see kcc.pipeline).
"""
from kcc.passes import (  # noqa: F401
    cancel_transposes,
    dce,
    fold_batchnorm,
    fold_channel_affine,
    fold_flatten_transpose,
    fold_identity,
    fold_idempotent,
    fold_layout_reshape,
    fuse_activation,
    fuse_clip,
    fuse_gelu,
    fuse_hard_silu,
    fuse_leaky_relu,
    fuse_mish,
    fuse_normalization,
    fuse_silu,
    fuse_square,
)
