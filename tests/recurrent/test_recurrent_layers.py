"""SimpleRNN / LSTM / GRU / RNN(cell) to ONNX: numbers against Keras, graph structure, errors."""
from __future__ import annotations

import pytest

from recurrent_helpers import check, onnx_ops, randomize

import kcc
from kcc.errors import ConversionError

import keras
L = keras.layers

OPTIONS = [
    {},
    {"return_sequences": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"go_backwards": True},
    {"activation": "relu", "return_sequences": True},
]
CASES = [(cls, opts) for cls in ("SimpleRNN", "LSTM", "GRU") for opts in OPTIONS] + [
    ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"reset_after": False, "go_backwards": True, "return_state": True}),
    ("LSTM", {"recurrent_activation": "hard_sigmoid", "activation": "softsign", "return_sequences": True}),
    ("GRU", {"recurrent_activation": "hard_sigmoid", "activation": "elu"}),
    ("LSTM", {"use_bias": False, "return_state": True}),
    ("SimpleRNN", {"activation": "linear", "return_sequences": True}),
    ("SimpleRNN", {"activation": "leaky_relu"}),
]


def _single(cls: str, opts: dict, steps=6, features=3, units=4):
    x = keras.Input((steps, features))
    y = getattr(L, cls)(units, **opts)(x)
    return keras.Model(x, y)


@pytest.mark.parametrize("cls,opts", CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={v}" for k, v in v.items()) or "default")
def test_recurrent_layer(cls, opts):
    result = check(_single(cls, opts))
    onnx_type = {"SimpleRNN": "RNN"}.get(cls, cls)
    assert onnx_ops(result).count(onnx_type) == 1


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_unknown_sequence_length(cls):
    x = keras.Input((None, 3))
    y = getattr(L, cls)(4, return_sequences=True)(x)
    y = getattr(L, cls)(3, go_backwards=True, return_sequences=True)(y)
    result = check(keras.Model(x, y), fill=9)
    assert isinstance(result.graph.inputs[0].shape[1], str)


@pytest.mark.parametrize("cls,n_states", [("SimpleRNN", 1), ("LSTM", 2), ("GRU", 1)])
def test_initial_state_inputs(cls, n_states):
    x = keras.Input((5, 3))
    states = [keras.Input((4,)) for _ in range(n_states)]
    y = getattr(L, cls)(4, return_sequences=True, return_state=True)(x, initial_state=states)
    check(keras.Model([x, *states], y))


@pytest.mark.parametrize("cell", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_rnn_of_cell(cell):
    x = keras.Input((5, 3))
    y = L.RNN(getattr(L, cell)(4), return_sequences=True, go_backwards=True)(x)
    check(keras.Model(x, y))


def test_stacked_lstm_has_no_transpose_between_layers():
    x = keras.Input((None, 3))
    y = L.LSTM(5, return_sequences=True)(x)
    y = L.LSTM(4, return_sequences=True)(y)
    y = L.LSTM(3)(y)
    result = check(keras.Model(x, y))
    ops = onnx_ops(result)
    assert ops.count("LSTM") == 3
    first, last = ops.index("LSTM"), len(ops) - 1 - ops[::-1].index("LSTM")
    assert "Transpose" not in ops[first:last], ops
    assert ops.count("Transpose") == 1, ops  # only the channels-last input boundary


def test_saved_keras_file(tmp_path):
    x = keras.Input((6, 3))
    h = keras.Input((4,))
    y = L.GRU(4, return_sequences=True)(x, initial_state=[h])
    y = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave")(y)
    y = L.RNN(L.SimpleRNNCell(2))(y)
    model = keras.Model([x, h], y)
    path = tmp_path / "rnn.keras"
    randomize(model)
    model.save(path)
    check(model, str(path), randomize_weights=False)


def test_stateful_is_refused():
    model = keras.Sequential([keras.Input((4, 3), batch_size=2), L.LSTM(2, stateful=True)])
    with pytest.raises(ConversionError, match="stateful"):
        kcc.compile(model, target="onnx")


SCAN_CASES = [
    ("SimpleRNN", {"activation": "selu", "return_sequences": True, "return_state": True}, 17),
    ("LSTM", {"activation": "silu", "recurrent_activation": "hard_sigmoid", "go_backwards": True,
              "return_sequences": True}, 17),
    ("GRU", {"activation": "gelu", "reset_after": False, "return_state": True}, 17),
    ("LSTM", {"activation": "gelu", "return_state": True}, 21),
    ("GRU", {"activation": "mish", "go_backwards": True}, 18),
]


@pytest.mark.parametrize("cls,opts,opset", SCAN_CASES,
                         ids=lambda v: v if isinstance(v, str) else str(v) if isinstance(v, int) else v["activation"])
def test_activation_onnx_rnn_cannot_name_becomes_scan(cls, opts, opset):
    x = keras.Input((None, 3))
    states = [keras.Input((4,)) for _ in range(2 if cls == "LSTM" else 1)]
    y = getattr(L, cls)(4, **opts)(x, initial_state=states if opts.get("return_state") else None)
    result = check(keras.Model([x, *states] if opts.get("return_state") else x, y), opset=opset)
    ops = onnx_ops(result)
    assert "Scan" in ops and not {"RNN", "LSTM", "GRU"} & set(ops), ops


def test_unknown_activation_is_refused():
    x = keras.Input((4, 3))
    model = keras.Model(x, L.GRU(2, activation="log_softmax")(x))
    with pytest.raises(ConversionError, match="activation='log_softmax'"):
        kcc.compile(model, target="onnx")


def _tf_keras_check(tk, model, path, xs, seed):
    import numpy as np
    from kcc.testing import assert_close, assert_not_degenerate, run_onnx
    rng = np.random.default_rng(seed)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save(path)
    ref = np.asarray(model(xs))
    assert_not_degenerate(ref)
    onnx_model = kcc.compile(str(path), target="onnx")
    assert_close(ref, run_onnx(onnx_model, [xs])[0])
    return [n.op_type for n in onnx_model.graph.node]


def test_tf_keras_h5_files(tmp_path):
    """tf.keras 2 legacy .h5: Keras 2's hard_sigmoid slope (0.2), both GRU biases, wrappers, time_major."""
    import tf_keras as tk
    import numpy as np
    TL = tk.layers
    xs = np.random.default_rng(0).standard_normal((6, 4, 3)).astype("float32")
    x = TL.Input((4, 3))
    y = TL.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True)(x)
    y = TL.Bidirectional(TL.GRU(3, return_sequences=True, reset_after=True), merge_mode="sum")(y)
    y = TL.GRU(3, reset_after=False, return_sequences=True, go_backwards=True)(y)
    y = TL.TimeDistributed(TL.Dense(2))(y)
    y = TL.SimpleRNN(2)(y)
    _tf_keras_check(tk, tk.Model(x, y), tmp_path / "legacy.h5", xs, 0)
    # time_major=True: the sequence is (T, N=4, F=3); the IR needs no transpose at all.
    x = TL.Input((4, 3))
    y = TL.LSTM(4, time_major=True, return_sequences=True)(x)
    y = TL.Bidirectional(TL.GRU(3, time_major=True, return_sequences=True))(y)
    y = TL.SimpleRNN(2, time_major=True, go_backwards=True, return_sequences=True)(y)
    ops = _tf_keras_check(tk, tk.Model(x, y), tmp_path / "time_major.h5", xs, 1)
    assert "Transpose" not in ops, ops


def test_shared_sequence_feeds_next_layer_without_transpose():
    """A sequence read by a recurrent layer and by a Dense: the Dense and the pooling read it time-major."""
    x = keras.Input((None,), dtype="int32")
    e = L.Embedding(20, 8)(x)
    s = L.Bidirectional(L.LSTM(6, return_sequences=True, dropout=0.3, recurrent_dropout=0.2))(e)
    a = L.GRU(5)(s)
    b = L.GlobalAveragePooling1D()(L.Dense(4)(s))
    result = check(keras.Model(x, [a, b]))
    ops = onnx_ops(result)
    assert ops.count("Transpose") == 1, ops  # embedding -> time-major (sink_transposes: Dense is a MatMul there)


def _write_keras20_h5(path, layers: list, weights: dict) -> None:
    """A Keras 2.0.8 ``model.save`` file (no ``reset_after`` key, hard_sigmoid of slope 0.2)."""
    import json
    import h5py
    import numpy as np
    config = {"class_name": "Model", "config": {
        "name": "model_1", "layers": layers, "input_layers": [["input_1", 0, 0]],
        "output_layers": [[layers[-1]["name"], 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = np.bytes_(b"2.0.8")
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        f.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([n.encode() for n in weights], dtype="S")
        for layer, named in weights.items():
            g = root.create_group(layer)
            g.attrs["weight_names"] = np.array([n.encode() for n, _ in named], dtype="S")
            for name, array in named:
                g.create_dataset(name, data=array)


def test_keras20_file_without_reset_after(tmp_path):
    """Keras 2.0 GRUs had no reset_after (it was False); the 1-D bias says so. Checked against tf_keras."""
    import tf_keras as tk
    import numpy as np
    from kcc.testing import assert_close, assert_not_degenerate, run_onnx
    rnn = {"return_sequences": True, "return_state": False, "go_backwards": False, "stateful": False,
           "unroll": False, "activation": "tanh", "recurrent_activation": "hard_sigmoid", "use_bias": True}

    def layer(cls, name, inbound, **cfg):
        return {"name": name, "class_name": cls, "config": {"name": name, "trainable": True, **cfg},
                "inbound_nodes": inbound}

    layers = [layer("InputLayer", "input_1", [], batch_input_shape=[None, 5, 3], dtype="float32"),
              layer("LSTM", "lstm_1", [[["input_1", 0, 0, {}]]], units=4, **rnn),
              layer("GRU", "gru_1", [[["lstm_1", 0, 0, {}]]], units=3, **rnn)]
    rng = np.random.default_rng(3)
    w = lambda *s: (0.5 * rng.standard_normal(s)).astype("float32")  # noqa: E731
    arrays = {"lstm_1": [w(3, 16), w(4, 16), w(16)], "gru_1": [w(4, 9), w(3, 9), w(9)]}
    names = ("kernel:0", "recurrent_kernel:0", "bias:0")
    weights = {"input_1": [], **{k: [(f"{k}/{n}", a) for n, a in zip(names, v)] for k, v in arrays.items()}}
    path = tmp_path / "keras20.h5"
    _write_keras20_h5(path, layers, weights)
    TL = tk.layers
    x = TL.Input((5, 3))
    y = TL.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True)(x)
    y = TL.GRU(3, recurrent_activation="hard_sigmoid", reset_after=False, return_sequences=True)(y)
    twin = tk.Model(x, y)
    twin.set_weights(arrays["lstm_1"] + arrays["gru_1"])
    xs = rng.standard_normal((2, 5, 3)).astype("float32")
    ref = np.asarray(twin(xs))
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(kcc.compile(str(path), target="onnx"), [xs])[0])
