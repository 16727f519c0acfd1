"""The ``tensorflow`` target: the Keras model exported as a TensorFlow SavedModel directory.

Keras 3's ``model.export(dir, format="tf_saved_model")`` writes a SavedModel
whose ``serving_default`` signature takes the model's inputs by their source
names (kcc names the Keras inputs after them) with the batch axis left
dynamic, so ``tf.saved_model.load`` and TensorFlow Serving run it as is.

``kcc.compile(source, target="tensorflow")`` returns a ``SavedModelExport``;
``kcc.save(result, DIR)`` (and the CLI's ``-o DIR``) write the directory:
into a temporary sibling first, renamed into place only when complete, so a
failure leaves no partial directory.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kcc.backends import Target, register_target
from kcc.errors import ModelFileError
from kcc.extras import require
from kcc.ir import Graph


class SavedModelExport:
    """A Keras model to be written as a SavedModel directory (``write_directory(path)``)."""

    def __init__(self, keras_model: Any):
        self.keras_model = keras_model

    def write_directory(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise ModelFileError(f"cannot write {path}: directory {parent} does not exist")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ModelFileError(f"cannot write the SavedModel to {path}: it exists and is not an empty "
                                 "directory; remove it or name another")
        require("tensorflow", "writing a TensorFlow SavedModel")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
        try:
            self.keras_model.export(str(tmp / "saved_model"), format="tf_saved_model", verbose=False)
            if path.exists():
                path.rmdir()
            os.replace(tmp / "saved_model", path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path


def _emit(graph: Graph, options: dict[str, Any]) -> SavedModelExport:
    from kcc.backends.keras import emit_keras

    return SavedModelExport(emit_keras(graph, keras_boundary_layout=options.get("keras_boundary_layout", "keras"),
                                       keras_trainable=options.get("keras_trainable", True),
                                       target="tensorflow"))


def _make_target() -> Target:
    from kcc.backends.keras import OPTIONS, PIPELINE, options_from_cli

    return Target(
        name="tensorflow",
        pipeline=PIPELINE,
        emit=_emit,
        default_boundary="channels_last",
        options=dict(OPTIONS),
        suffix="",
        serialize=_emit,
        options_from_cli=options_from_cli,
        pass_options=("keras_boundary_layout",),
    )


TARGET = register_target(_make_target())
