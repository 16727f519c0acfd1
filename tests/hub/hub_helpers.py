"""Tiny KerasHub models (random weights, never presets) and their seeded inputs.

Each builder makes a Backbone or Task from a small config with unequal sizes
(vocabulary 50, hidden 16, 2 heads, intermediate 32, sequence 12), so a wrong
axis or transpose shows. ``hub_inputs`` gives token ids with REAL padding masks:
row 0 is unpadded, the other rows end in padding (mask 0, token id 0), so a model
that ignores its mask gives different numbers at every position of those rows.
``compare`` converts the model (in memory or from its ``.keras`` file) and checks
onnxruntime (default session options) against Keras within 1e-4 of each
output's largest magnitude.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

import kcc
from kcc.testing import assert_close, assert_not_degenerate, calibrate_batchnorm, run_onnx

BATCH, SEQ, VOCAB = 3, 12, 50
# One transformer layer each (each is traced through TensorFlow: the cost of a test);
# BERT keeps two, so a mask must reach every layer of a stack.
TEXT = dict(vocabulary_size=VOCAB, num_layers=1, hidden_dim=16, intermediate_dim=32)


def _hub() -> Any:
    import keras_hub

    return keras_hub


def bert(num_layers: int = 2) -> Any:
    return _hub().models.BertBackbone(num_heads=2, max_sequence_length=SEQ,
                                      **{**TEXT, "num_layers": num_layers})


def distil_bert() -> Any:
    return _hub().models.DistilBertBackbone(num_heads=2, max_sequence_length=SEQ, **TEXT)


def roberta() -> Any:
    return _hub().models.RobertaBackbone(num_heads=2, max_sequence_length=SEQ, **TEXT)


def gpt2() -> Any:
    return _hub().models.GPT2Backbone(num_heads=2, max_sequence_length=SEQ, **TEXT)


def gemma() -> Any:
    return _hub().models.GemmaBackbone(num_query_heads=2, num_key_value_heads=1, head_dim=8, **TEXT)


def llama() -> Any:
    return _hub().models.LlamaBackbone(num_query_heads=4, num_key_value_heads=2, **TEXT)


def mistral() -> Any:
    return _hub().models.MistralBackbone(num_query_heads=4, num_key_value_heads=2, sliding_window=8, **TEXT)


def qwen() -> Any:
    return _hub().models.QwenBackbone(num_query_heads=4, num_key_value_heads=2, **TEXT)


def vit() -> Any:
    return _hub().models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=1, num_heads=2,
                                     hidden_dim=16, mlp_dim=32)


def resnet() -> Any:
    return _hub().models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(24, 32, 3))


def efficientnet() -> Any:
    return _hub().models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0], stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=["v1", "v1"],
        stackwise_force_input_filters=[0, 0], stackwise_nores_option=[False, False],
        input_shape=(24, 32, 3), include_stem_padding=False)
    # num_features stays at its default (1280): keras-hub 0.32's get_config leaves it
    # out, so a file saved with another value cannot be rebuilt by anyone (Keras's
    # load_model fails on top_conv's kernel shape too).


def bert_classifier() -> Any:
    return _hub().models.BertTextClassifier(backbone=bert(num_layers=1), num_classes=3, preprocessor=None)


BUILDERS: dict[str, Callable[[], Any]] = {
    "bert": bert, "distil_bert": distil_bert, "roberta": roberta, "gpt2": gpt2, "gemma": gemma,
    "llama": llama, "mistral": mistral, "qwen": qwen, "vit": vit, "resnet": resnet,
    "efficientnet": efficientnet, "bert_classifier": bert_classifier,
}


def padding_mask(batch: int = BATCH, seq: int = SEQ) -> np.ndarray:
    """Row 0 unpadded; row i ends in ``i * seq // (batch + 1)`` padding positions."""
    mask = np.ones((batch, seq), np.int32)
    for i in range(1, batch):
        mask[i, seq - i * seq // (batch + 1):] = 0
    return mask


def hub_inputs(model: Any, batch: int = BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs by name: token ids (0 where padded), segment ids, a padding mask, images."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    seq = next((t.shape[1] for t in model.inputs if input_name(t) == "token_ids" and t.shape[1]), SEQ)
    mask = padding_mask(batch, seq)
    for t in model.inputs:
        name = input_name(t)
        if name == "padding_mask":
            out[name] = mask
        elif name == "token_ids":
            out[name] = (rng.integers(1, VOCAB, (batch, seq)) * mask).astype(np.int32)
        elif name == "segment_ids":
            out[name] = (np.arange(seq)[None, :] >= seq // 2).astype(np.int32).repeat(batch, 0) * mask
        else:
            shape = (batch,) + tuple(t.shape[1:])
            out[name] = rng.normal(size=shape).astype(np.float32)
    return out


def input_name(tensor: Any) -> str:
    """The name of the InputLayer behind a model input: the converted model's input name."""
    return tensor._keras_history[0].name


def keras_feed(model: Any, inputs: dict[str, np.ndarray]) -> Any:
    """``inputs`` in the structure of ``model.input`` (a dict, a list or one tensor)."""
    import keras

    return keras.tree.map_structure(lambda t: inputs[input_name(t)], model.input)


@functools.lru_cache(maxsize=None)
def prepared(name: str) -> Any:
    """The model ``name`` built (once), with BatchNorm statistics of real activations (CNNs)."""
    import keras

    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    if any(type(l).__name__ == "BatchNormalization" for l in _sublayers(model)):
        calibrate_batchnorm(model, keras_feed(model, hub_inputs(model, batch=8, seed=1)))
    return model


def _sublayers(model: Any) -> list[Any]:
    return list(model._flatten_layers(include_self=False, recursive=True))


def keras_outputs(model: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Keras's outputs flattened as Keras flattens them (dict outputs in sorted key order)."""
    import keras

    return [np.asarray(y) for y in keras.tree.flatten(model(keras_feed(model, inputs), training=False))]


def static_shapes(inputs: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]] | None:
    """Fixed batch and sequence for token inputs; None for an image model.

    An image backbone's only input is an unnamed ``keras.Input`` (``input_layer``,
    ``input_layer_1``... as Keras numbers it in the process that rebuilds it), and its
    image size is fixed already; its batch stays symbolic.
    """
    if len(inputs) == 1 and next(iter(inputs.values())).dtype.kind == "f":
        return None
    return {k: tuple(v.shape) for k, v in inputs.items()}


def compare(model: Any, source: Any, *input_sets: dict[str, np.ndarray], **options: Any) -> float:
    """Convert ``source`` (the model or its file) to ONNX once; worst error vs Keras on each input set."""
    onnx_model = kcc.compile(source, target="onnx", **options)
    names = [i.name for i in onnx_model.graph.input]
    worst = 0.0
    for inputs in input_sets:
        feeds = inputs
        if set(names) != set(inputs) and len(names) == len(inputs) == 1:
            # An unnamed keras.Input is "input_layer" or "input_layer_1", as Keras numbers it
            # in the process that builds (or rebuilds) the model.
            feeds = {names[0]: next(iter(inputs.values()))}
        got = run_onnx(onnx_model, feeds)
        want = keras_outputs(model, inputs)
        assert len(got) == len(want), f"{len(got)} ONNX outputs, Keras has {len(want)}"
        for i, (w, g) in enumerate(zip(want, got)):
            assert_not_degenerate(w, f"Keras output {i}")
            worst = max(worst, assert_close(w, g, what=f"output {i} (batch {len(g)})"))
    return worst


def saved(model: Any, directory: Path) -> Path:
    path = directory / f"{model.name}.keras"
    model.save(path)
    return path


def compare_coreml(model: Any, inputs: dict[str, np.ndarray], source: Any = None) -> float:
    """Convert ``source`` (default: ``model`` itself) to Core ML at batch 1 (fixed sequence);
    kcc's Core ML runtime vs Keras running ``model``, row by row.

    Core ML holds rank >= 3 tensors channels-first: an image input is fed as
    ``(N, C, H, W)`` and a ``(N, T, F)`` output comes back as ``(N, F, T)``.
    """
    from kcc.coreml import predict
    from kcc.layout import to_ir_perm, to_keras_perm

    # Token inputs get a fixed (1, T); image inputs keep their declared size (and the
    # name a reloaded file gives them, which may differ from the live model's).
    shapes = {k: (1,) + v.shape[1:] for k, v in inputs.items() if v.dtype.kind in "iu"}
    spec = kcc.compile(model if source is None else source, target="coreml",
                       input_name_shape_dict=shapes or None).get_spec()
    worst = 0.0
    for i in range(len(next(iter(inputs.values())))):
        row = {k: v[i:i + 1] for k, v in inputs.items()}
        feed = {k: np.transpose(v, to_ir_perm(v.ndim)) for k, v in row.items()}
        declared = [f.name for f in spec.description.input]
        if len(feed) == len(declared) == 1:  # a reloaded file may rename its one input
            feed = {declared[0]: next(iter(feed.values()))}
        outs = predict(spec, feed)
        for k, (w, feature) in enumerate(zip(keras_outputs(model, row), spec.description.output)):
            got = np.asarray(outs[feature.name], np.float32)
            if w.ndim >= 3:
                got = np.transpose(got.reshape([w.shape[p] for p in to_ir_perm(w.ndim)]), to_keras_perm(w.ndim))
            worst = max(worst, assert_close(w, got.reshape(w.shape), what=f"Core ML output {k} (row {i})"))
    return worst
