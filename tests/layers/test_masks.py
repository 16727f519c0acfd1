"""Keras masks (Embedding(mask_zero=True), Masking, explicit mask= arguments) are honored or refused.

Inputs pad at the end and in the middle, so an ignored mask changes the numbers;
each model is also run without its mask in Keras to prove the mask matters.
Models convert from memory and from ``.keras`` files to ONNX and Core ML.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras

import kcc
from kcc.testing import assert_close, max_rel_error, run_keras, run_onnx
from targets_helpers import check_targets, randomize

L = keras.layers
VOCAB, T, S = 11, 7, 5
# Padding (0) at the end of sample 0, in the middle and at the end of sample 1.
IDS = np.array([[3, 1, 4, 9, 0, 0, 0], [5, 0, 2, 6, 0, 1, 0]], dtype=np.int32)
IDS_S = np.array([[7, 2, 0, 0, 0], [0, 3, 8, 0, 4]], dtype=np.int32)


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_mask_matters(model: keras.Model, unmasked: keras.Model, xs: list[np.ndarray]) -> None:
    """The same weights without the mask give other numbers: a converter ignoring the mask would fail."""
    unmasked.set_weights(model.get_weights())
    for r, u in zip(run_keras(model, xs), run_keras(unmasked, xs)):
        assert max_rel_error(r, u) > 1e-2


def _encoder(mask_zero: bool, name: str) -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=mask_zero)(ids)
    x = L.Dense(8, activation="gelu")(x)
    x = L.LayerNormalization()(x)
    x = L.Dropout(0.1)(x)
    a = L.MultiHeadAttention(3, 4, value_dim=6, name="mha")(x, x)
    x = L.Add()([x, a])
    return keras.Model(ids, [a, L.GlobalAveragePooling1D()(x)], name=name)


def test_embedding_mask_reaches_attention_and_pooling(tmp_path):
    model = randomize(_encoder(True, "encoder"))
    check_targets(model, [IDS], tmp_path)
    _assert_mask_matters(model, _encoder(False, "plain"), [IDS])


def test_fully_padded_sample_in_attention(tmp_path):
    """Keras defines it (dot_product_attention: a uniform average over every position)."""
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=True)(ids)
    model = randomize(keras.Model(ids, L.MultiHeadAttention(3, 4, name="mha")(x, x), name="padded"))
    check_targets(model, [np.array([[3, 0, 4, 9, 0, 2, 0], [0] * T], dtype=np.int32)], tmp_path)


def _grouped(mask_zero: bool, name: str) -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=mask_zero)(ids)
    gqa = L.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2, name="gqa")
    return keras.Model(ids, gqa(x, x, use_causal_mask=True), name=name)


def test_embedding_mask_reaches_group_query_attention(tmp_path):
    model = randomize(_grouped(True, "grouped"))
    check_targets(model, [IDS], tmp_path)
    _assert_mask_matters(model, _grouped(False, "grouped_plain"), [IDS])


def _masking(mask_value: float | None, name: str) -> keras.Model:
    x = keras.Input((T, 6), name="x")
    h = L.Masking(mask_value)(x) if mask_value is not None else x
    d = L.Dense(8)(h)
    a = L.MultiHeadAttention(2, 4, name="mha")(d, d, use_causal_mask=True)
    return keras.Model(x, [h, L.GlobalAveragePooling1D()(L.Dense(4)(a))], name=name)


def test_masking_layer_zeroes_and_masks_steps(tmp_path):
    """Masking(-1): masked steps become 0 and the step mask reaches causal attention and pooling."""
    xs = _x(2, T, 6)
    xs[0, 5:] = -1.0
    xs[1, 2] = -1.0
    xs[1, 4, :3] = -1.0  # only part of the features: not masked
    model = randomize(_masking(-1.0, "masking"))
    ref = check_targets(model, [xs], tmp_path)
    assert np.all(ref[0][1, 2] == 0) and np.all(ref[0][1, 4, 3:] == xs[1, 4, 3:])
    unmasked = _masking(None, "unmasked")
    unmasked.set_weights(model.get_weights())
    assert max_rel_error(ref[1], run_keras(unmasked, [xs])[1]) > 1e-2


def _cross(masks: bool, name: str) -> keras.Model:
    q_ids = keras.Input((T,), dtype="int32", name="q_ids")
    v_ids = keras.Input((S,), dtype="int32", name="v_ids")
    am = keras.Input((T, S), name="attention_mask")
    q = L.Embedding(VOCAB, 8, mask_zero=masks)(q_ids)
    v = L.Embedding(VOCAB, 10, mask_zero=masks)(v_ids)
    k = L.Dense(9)(v)
    out, scores = L.MultiHeadAttention(3, 4, value_dim=6, name="mha")(
        q, v, key=k, attention_mask=am, return_attention_scores=True)
    return keras.Model([q_ids, v_ids, am], [out, scores], name=name)


def test_query_value_key_masks_combine_with_attention_mask(tmp_path):
    """query (B, T, 1) & value (B, 1, S) & key (B, 1, S) masks ANDed with attention_mask, as Keras does."""
    am = (np.random.default_rng(3).random((2, T, S)) > 0.3).astype(np.float32)
    xs = [IDS, IDS_S, am]
    model = randomize(_cross(True, "cross"))
    check_targets(model, xs, tmp_path)
    _assert_mask_matters(model, _cross(False, "cross_plain"), xs)


def _merges(mask_zero: bool, name: str) -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    ids2 = keras.Input((T,), dtype="int32", name="ids2")
    a = L.Embedding(VOCAB, 6, mask_zero=mask_zero)(ids)
    b = L.Embedding(VOCAB, 6, mask_zero=mask_zero)(ids2)
    plain = L.Dense(6)(L.Embedding(VOCAB, 6)(ids))
    added = L.Add()([a, b])                                    # OR of the two masks
    feats = L.Concatenate()([a, plain])                        # masked with unmasked along features
    steps = L.Concatenate(axis=1)([a, L.Dense(6)(b)])          # along time: a (B, 2T) mask
    pooled = [L.GlobalAveragePooling1D()(t) for t in (added, feats, steps)]
    return keras.Model([ids, ids2], pooled, name=name)


def test_merge_and_concatenate_masks(tmp_path):
    ids2 = np.array([[0, 4, 0, 2, 0, 0, 1], [5, 0, 0, 6, 0, 3, 0]], dtype=np.int32)
    model = randomize(_merges(True, "merges"))
    check_targets(model, [IDS, ids2], tmp_path)
    _assert_mask_matters(model, _merges(False, "merges_plain"), [IDS, ids2])


def test_explicit_masks_for_softmax_and_pooling(tmp_path):
    scores = keras.Input((T, S), name="scores")
    mask = keras.Input((T, S), name="mask")
    seq = keras.Input((T, 4), name="seq")
    steps = keras.Input((T,), name="steps")
    model = keras.Model([scores, mask, seq, steps],
                        [L.Softmax()(scores, mask=mask), L.GlobalAveragePooling1D()(seq, mask=steps)],
                        name="explicit")
    m = (np.random.default_rng(1).random((2, T, S)) > 0.4).astype(np.float32)
    m[1, 3] = 0.0  # a fully masked row: Keras's Softmax gives zeros
    st = np.array([[1, 1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 1, 1]], dtype=np.float32)
    xs = [_x(2, T, S), m, _x(2, T, 4, seed=1), st]
    ref = check_targets(model, xs, tmp_path)
    assert np.all(ref[0][1, 3] == 0)
    assert max_rel_error(ref[1], xs[2].mean(axis=1)) > 1e-2


def _nested(mask_zero: bool, name: str) -> keras.Model:
    inner_in = keras.Input((T, 8))
    inner = keras.Model(inner_in, L.MultiHeadAttention(2, 4, name="mha")(inner_in, inner_in), name="block")
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=mask_zero)(ids)
    return keras.Model(ids, L.GlobalAveragePooling1D()(inner(x)), name=name)


def test_mask_through_nested_model(tmp_path):
    """The mask enters the nested model (its attention reads it) and its output's mask comes back out."""
    model = randomize(_nested(True, "nested"))
    check_targets(model, [IDS], tmp_path)
    _assert_mask_matters(model, _nested(False, "nested_plain"), [IDS])


def test_layers_that_drop_the_mask(tmp_path):
    """Conv1D and GlobalMaxPooling1D do not support masking: Keras drops the mask, so does kcc."""
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=True)(ids)
    out = [L.GlobalAveragePooling1D()(L.Conv1D(4, 3, padding="same")(x)), L.GlobalMaxPooling1D()(x)]
    model = randomize(keras.Model(ids, out, name="dropped"))
    check_targets(model, [IDS], tmp_path)


def test_keras_ops_drop_the_mask_merge_layers_keep_it(tmp_path):
    """``x + y`` (the keras.ops Add) passes no mask on; the Add layer ORs the masks."""
    ids = keras.Input((T,), dtype="int32", name="ids")
    e = L.Embedding(VOCAB, 6, mask_zero=True)(ids)
    d = L.Dense(6)(e)
    op_sum, layer_sum = e + d, L.Add()([e, d])  # equal values, only the mask differs
    model = randomize(keras.Model(ids, [L.GlobalAveragePooling1D()(t) for t in (op_sum, layer_sum)],
                                  name="opsum"))
    ref = check_targets(model, [IDS], tmp_path)
    assert max_rel_error(ref[0], ref[1]) > 1e-2


@pytest.mark.parametrize("consumer", [
    lambda: L.LSTM(3),
    lambda: L.Bidirectional(L.GRU(3)),
    lambda: L.TimeDistributed(L.Dense(3)),
])
def test_masks_kcc_cannot_honor_are_errors(tmp_path, consumer):
    ids = keras.Input((T,), dtype="int32", name="ids")
    layer = consumer()
    model = keras.Model(ids, layer(L.Dense(4)(L.Embedding(VOCAB, 4, mask_zero=True)(ids))))
    path = tmp_path / "refused.keras"
    model.save(path)
    for source in (model, str(path)):
        with pytest.raises(kcc.ConversionError, match=f"{layer.name}.*mask"):
            kcc.compile(source, target="onnx")


def test_mask_without_reader_converts():
    ids = keras.Input((T,), dtype="int32", name="ids")
    model = randomize(keras.Model(ids, L.Dense(3)(L.Embedding(VOCAB, 4, mask_zero=True)(ids)), name="noreader"))
    assert_close(run_keras(model, [IDS])[0], run_onnx(kcc.compile(model, target="onnx"), [IDS])[0])


# Constructor arguments for the classes that need some (others: the first of _CANDIDATES that works).
_CTOR = {
    "Activation": ("relu",), "Bidirectional": (L.LSTM(2),), "TimeDistributed": (L.Dense(2),),
    "EinsumDense": ("ab,bc->ac", 2), "GroupQueryAttention": (2, 2, 1), "InputLayer": ((2,),),
    "Lambda": (lambda t: t,), "RNN": (L.SimpleRNNCell(2),), "Permute": ((1,),), "Reshape": ((2,),),
}
_CANDIDATES = [(), (2, 3), (2,), (0.1,)]


def _instance(cls: type) -> keras.layers.Layer:
    for args in [_CTOR[cls.__name__]] if cls.__name__ in _CTOR else _CANDIDATES:
        try:
            return cls(*args)
        except (TypeError, ValueError):
            continue
    raise AssertionError(f"add constructor arguments for {cls.__name__} to _CTOR")


def test_mask_tables_agree_with_keras():
    """Every handler-known Keras layer class: passes masks on iff Keras's supports_masking (default
    compute_mask), and a class whose call() reads masks is honored (READS) or refused (REFUSE)."""
    import inspect

    from keras.src.utils.python_utils import is_default

    from kcc.frontends.keras.layers import masking
    from kcc.frontends.keras.registry import supported_classes

    checked = 0
    for name in supported_classes():
        cls = getattr(L, name, None)
        if cls is None or not isinstance(cls, type) or cls.__name__ != name:
            continue  # keras.ops operations (no masks) and renamed aliases
        layer = _instance(cls)
        default_rule = is_default(cls.compute_mask)
        if layer.supports_masking and default_rule:
            assert name in masking.PROPAGATE or name in masking.REFUSE, f"{name} passes masks on in Keras"
        else:
            assert name not in masking.PROPAGATE, f"{name} does not pass masks on unchanged in Keras"
        if not default_rule:
            assert name in masking.MASK_RULES.names() or name in ("Embedding", "Masking") \
                or name in masking.REFUSE, f"{name} computes its own mask in Keras"
        params = inspect.signature(cls.call).parameters
        if any(p == "mask" or p.endswith("_mask") and p != "use_causal_mask" for p in params):
            ignores = name == "BatchNormalization"  # reads the mask for training statistics only
            assert ignores or name in masking.READS or name in masking.REFUSE, f"{name} reads masks"
        checked += 1
    assert checked > 80


def _luong(mask_zero: bool, name: str) -> keras.Model:
    q_ids = keras.Input((T,), dtype="int32", name="q_ids")
    v_ids = keras.Input((S,), dtype="int32", name="v_ids")
    q = L.Embedding(VOCAB, 6, mask_zero=mask_zero)(q_ids)
    v = L.Embedding(VOCAB, 6, mask_zero=mask_zero)(v_ids)
    k = L.Dense(6)(v)
    outs = []
    for layer in (L.Attention(name="dot"), L.Attention(use_scale=True, score_mode="concat", name="concat"),
                  L.AdditiveAttention(name="additive")):
        o, s = layer([q, v, k], return_attention_scores=True)
        outs += [o, s, L.GlobalAveragePooling1D()(o)]
    return keras.Model([q_ids, v_ids], outs, name=name)


def test_attention_and_additive_attention_read_query_and_value_masks(tmp_path):
    """Masked scores minus 1e9, masked query rows zeroed, the query mask passed on (to the pooling)."""
    model = randomize(_luong(True, "luong"))
    check_targets(model, [IDS, IDS_S], tmp_path)
    _assert_mask_matters(model, _luong(False, "luong_plain"), [IDS, IDS_S])


def test_attention_causal_with_scale(tmp_path):
    q, v = keras.Input((6, 4), name="q"), keras.Input((6, 4), name="v")
    model = randomize(keras.Model([q, v], L.Attention(use_scale=True)([q, v], use_causal_mask=True),
                                  name="luong_causal"))
    check_targets(model, [_x(2, 6, 4), _x(2, 6, 4, seed=1)], tmp_path)


def test_padding_mask_with_dynamic_length(tmp_path):
    """A decoder-style block on ids of any length: padding mask AND causal mask, built at run time."""
    from targets_helpers import run_coreml

    ids = keras.Input((None,), dtype="int32", name="ids")
    x = L.Embedding(VOCAB, 8, mask_zero=True)(ids)
    a = L.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True)
    model = randomize(keras.Model(ids, L.GlobalAveragePooling1D()(L.Add()([x, a])), name="decoder"))
    path = tmp_path / "decoder.keras"
    model.save(path)
    for source in (model, str(path)):
        onnx_model = kcc.compile(source, target="onnx")
        mlmodel = kcc.compile(source, target="coreml")
        for xs in ([IDS], [IDS[:, :4]]):
            ref = run_keras(model, xs)
            assert_close(ref[0], run_onnx(onnx_model, xs)[0], what=f"ONNX, length {xs[0].shape[1]}")
            assert_close(ref[0], run_coreml(mlmodel, xs, ref)[0], what=f"Core ML, length {xs[0].shape[1]}")


def test_explicit_mask_built_with_keras_ops(tmp_path):
    """A mask the model computes itself with keras.ops (recorded as operations) and passes as mask=."""
    ops = keras.ops
    ids = keras.Input((T,), dtype="int32", name="ids")
    x = L.Dense(4)(L.Embedding(VOCAB, 6)(ids))
    keep = ops.logical_and(ops.not_equal(ids, 0), ops.logical_not(ops.equal(ids, 5)))
    steps = ops.any(ops.expand_dims(keep, axis=-1), axis=-1)
    model = randomize(keras.Model(ids, L.GlobalAveragePooling1D()(x, mask=steps), name="opsmask"))
    ref = check_targets(model, [IDS], tmp_path)
    unmasked = keras.Model(ids, L.GlobalAveragePooling1D()(x))
    assert max_rel_error(ref[0], run_keras(unmasked, [IDS])[0]) > 1e-2


class Twice(keras.layers.Layer):
    """A custom layer (traced): Keras drops the mask here (supports_masking is False by default)."""

    def call(self, x):
        return x * 2.0 + 1.0


class TwiceKeepingMask(Twice):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


class TwiceFlippingMask(Twice):
    def compute_mask(self, x, mask=None):
        return None if mask is None else keras.ops.logical_not(mask)


def _custom(cls: type, mask_zero: bool) -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = cls()(L.Embedding(VOCAB, 6, mask_zero=mask_zero)(ids))
    return keras.Model(ids, L.MultiHeadAttention(2, 3, name="mha")(h, h))


@pytest.mark.parametrize("cls, keeps", [(Twice, False), (TwiceKeepingMask, True)])
def test_custom_layer_mask_follows_its_live_object(cls, keeps):
    """supports_masking False: the mask stops there; True (default compute_mask): it reaches attention."""
    model = randomize(_custom(cls, True))
    plain = _custom(cls, False)
    plain.set_weights(model.get_weights())
    ref = run_keras(model, [IDS])[0]
    assert_close(ref, run_onnx(kcc.compile(model, target="onnx"), [IDS])[0])
    assert (max_rel_error(ref, run_keras(plain, [IDS])[0]) > 1e-2) == keeps


def test_custom_compute_mask_read_by_attention_is_an_error():
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = TwiceFlippingMask(name="flip")(L.Embedding(VOCAB, 6, mask_zero=True)(ids))
    model = keras.Model(ids, L.MultiHeadAttention(2, 3, name="mha")(h, h))
    with pytest.raises(kcc.ConversionError, match="'mha'.*'flip'"):
        kcc.compile(model, target="onnx")
