"""kcc.passes: one pass (or one small family of rewrite rules) per module.

Importing this package registers every pass by name (see kcc.pipeline).
"""
from kcc.passes import (  # noqa: F401
    cancel_transposes,
    dce,
    fold_batchnorm,
    fold_flatten_transpose,
    fold_identity,
    fuse_activation,
)
