"""``.keras`` files of Functional subclasses (KerasHub Backbones and Tasks): rebuilt by Keras.

A subclass of Functional with its own constructor (``BertBackbone``,
``BertTextClassifier``...) saves its constructor arguments, not its layer graph,
so its ``config.json`` holds no ``layers`` list and kcc's own parser has nothing
to read. Keras rebuilds it by calling the constructor (the class is a registered
serializable of an installed package, found by its ``registered_name``; Keras
imports classes only from the keras/keras_hub family and refuses code in safe
mode), loads ``model.weights.h5`` into it, and kcc then reads the live model's
functional graph and variables as for an in-memory model (load_memory.py).

Before Keras reads anything, the file gets the checks every ``.keras`` file gets:
under ``safe_mode`` a config that stores code is refused (safety.py), and the
weights file may not point outside itself.
"""
from __future__ import annotations

from pathlib import Path

from kcc import limits
from kcc.errors import ConversionError, KccError, ModelFileError, UnsupportedLayerError
from kcc.extras import require

from . import archive_keras3, safety
from .load_config import is_model_entry
from .load_memory import is_graph_model, spec_from_model
from .spec import KerasModelSpec


def is_subclass_entry(entry: dict) -> bool:
    """A top-level config naming a class with a constructor config (no layer graph)."""
    return not is_model_entry(entry) and isinstance(entry.get("config"), dict) \
        and isinstance(entry.get("class_name"), str)


def load_subclass_model(path: Path, entry: dict, weights: bytes, *, safe_mode: bool,
                        custom_objects: dict | None) -> KerasModelSpec:
    """The spec of the model Keras rebuilds from ``path`` (see the module docstring)."""
    where = str(path)
    cls = entry["class_name"]
    if safe_mode:
        safety.refuse_code(entry, where)
    limits.check_hdf5_heaps(weights, f"{where}: model.weights.h5")
    with archive_keras3.open_weights(weights) as f:
        limits.check_memory(safety.check_hdf5(f, f"{where}: model.weights.h5").declared_bytes, where)
    purpose = f"{where}: rebuilding its {cls} model (its config holds constructor arguments, not layers)"
    keras = require("keras", purpose)
    module = str(entry.get("module") or "")
    if module.split(".")[0] == "keras_hub":
        require("keras_hub", purpose)
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode, custom_objects=custom_objects,
                                        compile=False)
    except KccError:
        raise
    except Exception as e:  # Keras raises many types; all mean "could not rebuild"
        text = str(e).strip()
        first = text.splitlines()[0][:300] if text else ""
        raise UnsupportedLayerError(
            f"{where}: the model has class {cls!r} (module {module or '?'}), whose config holds "
            "its constructor arguments, not a layer graph, and Keras could not rebuild it "
            f"({type(e).__name__}: {first}). Install the package that defines it, or pass "
            f"custom_objects={{{cls!r}: TheClass}}.") from None
    if not is_graph_model(model):
        raise ModelFileError(
            f"{where}: the model has class {cls!r}, a subclassed keras.Model with no functional "
            "layer graph; kcc converts Sequential and functional models (and Functional "
            "subclasses such as KerasHub backbones). Rebuild it with keras.Model(inputs, outputs).")
    # Like an in-memory model: Keras built every layer from its config, so the config
    # rules of validate.py (which guard kcc's own parser) have nothing left to check.
    try:
        spec, _ = spec_from_model(model)
    except KccError:
        raise
    except Exception as e:  # reading the rebuilt model's graph: a kcc or third-party bug, named
        raise ConversionError(f"{where}: reading the layer graph of the {cls} model Keras rebuilt "
                              f"failed: {type(e).__name__}: {e}") from e
    return spec


__all__ = ["is_subclass_entry", "load_subclass_model"]
