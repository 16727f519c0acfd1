"""Valid seed files of every format kcc reads, built in code from small Keras models.

``build_seeds(folder)`` writes, for three small models (a CNN, a recurrent model,
an embedding model with a merge):

* ``NAME.keras`` (Keras 3 archive), ``NAME.h5`` (legacy HDF5 full model),
  ``NAME.json`` + ``NAME.weights.h5`` (architecture plus Keras 3 weights);
* ``NAME.onnx`` and ``NAME.mlmodel``, made by kcc itself from the ``.keras`` file,
  with ``NAME.feeds.npz`` (seeded inputs for ``kcc.coreml.predict``);
* ``ops.onnx`` (hand-built ONNX graph) and ``prog.mlpackage`` (an ML Program made
  with coremltools' MIL builder, read by kcc's Core ML frontend).

Every seed converts (or runs) cleanly before it is mutated: a mutation that
fails is then the mutation's doing. ``SEEDS`` lists (format, files) pairs; the
engine picks them by index, so a case number always means the same file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("cnn", "rnn", "embed")
# kcc's ONNX frontend reads no recurrent ops or LayerNormalization, so only the CNN is
# converted to ONNX; ``ops.onnx`` (built by hand) covers more of the ONNX importer's table.
ONNX_MODELS = ("cnn",)


@dataclass(frozen=True)
class Seed:
    """One mutable input: its format and the files (role -> file name in the seed folder)."""

    name: str
    format: str  # "keras" | "h5" | "json" | "onnx" | "mlmodel" | "mlpackage"
    files: tuple[tuple[str, str], ...]


def seeds() -> list[Seed]:
    out = []
    for m in MODELS:
        out += [Seed(f"{m}.keras", "keras", (("model", f"{m}.keras"),)),
                Seed(f"{m}.h5", "h5", (("model", f"{m}.h5"),)),
                Seed(f"{m}.json", "json", (("model", f"{m}.json"), ("weights", f"{m}.weights.h5"))),
                *([Seed(f"{m}.onnx", "onnx", (("model", f"{m}.onnx"),))] if m in ONNX_MODELS else []),
                Seed(f"{m}.mlmodel", "mlmodel", (("model", f"{m}.mlmodel"), ("feeds", f"{m}.feeds.npz")))]
    return out + [Seed("ops.onnx", "onnx", (("model", "ops.onnx"),)),
                  Seed("prog.mlpackage", "mlpackage", (("model", "prog.mlpackage"),
                                                       ("feeds", "prog.feeds.npz")))]


def mlpackage(path: Path) -> dict[str, np.ndarray]:
    """A small ML Program (conv, relu, pool, mean, linear, softmax) saved by coremltools as an
    ``.mlpackage`` (its weights in ``weights/weight.bin``); returns seeded feeds for it."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    lw, lb = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec((1, 3, 8, 6))])
    def prog(x):
        y = mb.relu(x=mb.conv(x=x, weight=w, bias=b, pad_type="same", name="conv"), name="relu")
        y = mb.max_pool(x=y, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", name="pool")
        y = mb.reduce_mean(x=y, axes=[2, 3], keep_dims=False, name="gap")
        return mb.softmax(x=mb.linear(x=y, weight=lw, bias=lb, name="fc"), axis=-1, name="prob")

    ct.convert(prog, convert_to="mlprogram", source="milinternal",
               minimum_deployment_target=ct.target.iOS15, compute_precision=ct.precision.FLOAT32,
               pass_pipeline=ct.PassPipeline.EMPTY).save(str(path))
    return {"x": rng.standard_normal((1, 3, 8, 6)).astype(np.float32)}


def ops_onnx() -> bytes:
    """A hand-built ONNX graph over many of the ops kcc's ONNX frontend reads (opset 17)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def init(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array), name)

    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    inits = [
        init("w", f32(4, 3, 3, 3)), init("b", f32(4)),
        init("scale", f32(4)), init("shift", f32(4)), init("mean", f32(4) * 0.1),
        init("var", np.abs(f32(4)) + 0.5),
        init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
        init("gw", f32(5, 8)), init("gb", f32(5)),
        init("idx", np.array([2, 0, 1], np.int64)),
        init("starts", np.array([0], np.int64)), init("ends", np.array([2], np.int64)),
        init("axes", np.array([1], np.int64)), init("shape2", np.array([0, -1], np.int64)),
        init("s0", np.array([0], np.int64)), init("s8", np.array([8], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("Pad", ["r", "pads"], ["p"], name="pad", mode="constant"),
        helper.make_node("MaxPool", ["p"], ["mp"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["mp"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1),
        helper.make_node("Gather", ["flat", "idx"], ["g"], name="gather", axis=1),
        helper.make_node("ReduceMax", ["mp"], ["rmax"], name="rmax", axes=[2, 3], keepdims=0),
        helper.make_node("Slice", ["rmax", "starts", "ends", "axes"], ["sl"], name="slice"),
        helper.make_node("Concat", ["g", "sl", "flat"], ["cat"], name="cat", axis=1),
        helper.make_node("Reshape", ["cat", "shape2"], ["rs"], name="reshape"),
        helper.make_node("Sigmoid", ["rs"], ["sg"], name="sig"),
        helper.make_node("Mul", ["rs", "sg"], ["sw"], name="swish"),
        helper.make_node("Slice", ["sw", "starts", "ends", "axes"], ["head"], name="head"),
        helper.make_node("Concat", ["sw", "head", "g"], ["feat"], name="feat", axis=1),
        helper.make_node("Slice", ["feat", "starts", "ends", "axes"], ["two"], name="two"),
        helper.make_node("Slice", ["feat", "s0", "s8", "axes"], ["feat8"], name="first8"),
        helper.make_node("Gemm", ["feat8", "gw", "gb"], ["logits"], name="gemm", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
        helper.make_node("Transpose", ["mp"], ["t"], name="transpose", perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["t"], ["z"], name="mean", axes=[1, 2], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("two", TensorProto.FLOAT, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _models():
    import keras

    L = keras.layers
    keras.utils.set_random_seed(7)
    inp = keras.Input((8, 6, 3), name="image")
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    y = L.BatchNormalization(name="bn")(y)
    y = L.MaxPooling2D(2, name="pool")(y)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.Flatten(name="flat")(y)
    cnn = keras.Model(inp, L.Dense(5, activation="softmax", name="dense")(y), name="cnn")

    inp = keras.Input((5, 4), name="seq")
    y = L.LSTM(6, return_sequences=True, name="lstm")(inp)
    y = L.Bidirectional(L.GRU(3, name="gru"), name="bi")(y)
    rnn = keras.Model(inp, L.Dense(2, name="out")(y), name="rnn")

    inp = keras.Input((7,), dtype="int32", name="tokens")
    e = L.Embedding(20, 4, name="emb")(inp)
    a = L.GlobalAveragePooling1D(name="avg")(e)
    b = L.GlobalMaxPooling1D(name="max")(e)
    y = L.Concatenate(name="cat")([a, b])
    y = L.LayerNormalization(name="ln")(y)
    embed = keras.Model(inp, L.Dense(3, activation="tanh", name="head")(y), name="embed")
    return {"cnn": cnn, "rnn": rnn, "embed": embed}


def _feeds(spec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for f in spec.description.input:
        shape = [int(d) for d in f.type.multiArrayType.shape]
        feeds[f.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def build_seeds(folder: Path) -> list[Seed]:
    """Write every seed file into ``folder`` (once; reused when present) and return the seeds."""
    import kcc
    from kcc.coreml import load_spec, predict

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / ".complete"
    version = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    if done.exists() and done.read_text() == version:
        return seeds()
    for name, model in _models().items():
        model.save(folder / f"{name}.keras")
        model.save(folder / f"{name}.h5")
        (folder / f"{name}.json").write_text(model.to_json())
        model.save_weights(folder / f"{name}.weights.h5")
        if name in ONNX_MODELS:
            kcc.save(kcc.compile_model(folder / f"{name}.keras", target="onnx", serialized=True).model,
                     folder / f"{name}.onnx")
            kcc.compile_model(folder / f"{name}.onnx", target="onnx", serialized=True)
        ml = folder / f"{name}.mlmodel"
        kcc.save(kcc.compile_model(folder / f"{name}.keras", target="coreml", serialized=True).model, ml)
        feeds = _feeds(load_spec(ml))
        np.savez(folder / f"{name}.feeds.npz", **feeds)
        predict(ml, feeds)
    feeds = mlpackage(folder / "prog.mlpackage")
    np.savez(folder / "prog.feeds.npz", **feeds)
    predict(folder / "prog.mlpackage", feeds)
    kcc.compile_model(folder / "prog.mlpackage", target="onnx", serialized=True)
    (folder / "ops.onnx").write_bytes(ops_onnx())
    kcc.compile_model(folder / "ops.onnx", target="onnx", serialized=True)
    done.write_text(version)
    return seeds()
