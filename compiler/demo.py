"""The tutorial, for real: train the small MNIST CNN, convert it to Core ML and ONNX, compare.

    python -m kcc.demo [--out DIR] [--epochs N]

1. Builds the tutorial's small CNN (``kcc.examples.mnist_small``).
2. Trains it briefly on real handwritten digits that ship inside scikit-learn
   (``sklearn.datasets.load_digits``: 1797 8x8 scans), scaled up to MNIST's
   format (a 20x20 digit centred in 28x28, pixels 0-255). Nothing is downloaded.
3. Compiles it with the tutorial's options to ``MNISTClassifier.mlmodel``
   (input ``image``: a 28x28 grayscale image with ``image_scale=1/255``, so the
   model takes 0-255 pixels; class labels 0-9; output ``output``; metadata) and
   to ``MNISTClassifier.onnx``.
4. Runs the held-back digits through Keras, kcc's Core ML runtime and
   onnxruntime and prints accuracy and agreement side by side.

Finishes in about a minute on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kcc.extras import require

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise in a demo.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LABELS = [str(d) for d in range(10)]
COREML_OPTIONS: dict[str, Any] = {
    "input_names": "image",
    "image_input_names": "image",
    "image_scale": 1 / 255.0,
    "class_labels": LABELS,
    "output_names": "output",
    "author": "kcc demo",
    "license": "MIT",
    "short_description": "Handwritten digit classifier (the Keras & Core ML tutorial's small CNN)",
    "version": "1.0",
    "input_descriptions": {"image": "A 28x28 grayscale image of a digit, pixels 0-255"},
    "output_descriptions": {"output": "Probability of each digit", "classLabel": "The most likely digit"},
}


def load_digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as MNIST-style uint8 images (N, 28, 28) and int labels (N,)."""
    from PIL import Image

    load_digits = require("sklearn.datasets", "the demo's handwritten digits").load_digits

    digits = load_digits()
    images = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, img in enumerate(digits.images):
        scan = Image.fromarray((img * (255.0 / 16.0)).astype(np.uint8))
        images[i, 4:24, 4:24] = np.asarray(scan.resize((20, 20), Image.BILINEAR))
    return images, digits.target.astype(np.int64)


def split(images: np.ndarray, labels: np.ndarray, held_back: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(len(images) * held_back)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def train(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> Any:
    from kcc.examples import mnist_small

    keras = require("keras", "training the demo's model")

    model = mnist_small(seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images[..., None].astype(np.float32) / 255.0, labels, epochs=epochs, batch_size=32, verbose=0)
    return model


def predict_keras(model: Any, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images[..., None].astype(np.float32) / 255.0, verbose=0, batch_size=256))


def predict_coreml(model_or_path: Any, images: np.ndarray) -> np.ndarray:
    """Probabilities from kcc's Core ML runtime, one 0-255 image at a time (as an app would)."""
    from kcc.coreml import load_spec, predict

    spec = load_spec(model_or_path)
    out = np.zeros((len(images), len(LABELS)), np.float32)
    for i, img in enumerate(images):
        probs = predict(spec, {"image": img})["output"]
        out[i] = [probs[label] for label in LABELS]
    return out


def predict_onnx(onnx_model: Any, images: np.ndarray) -> np.ndarray:
    from kcc.testing import run_onnx

    return np.asarray(run_onnx(onnx_model, [images[..., None].astype(np.float32) / 255.0])[0])


def table(rows: Sequence[tuple[str, np.ndarray]], labels: np.ndarray) -> str:
    ref = rows[0][1]
    lines = [f"{'engine':<22} {'accuracy':>9} {'agrees with Keras':>18} {'max |p - p_keras|':>18}",
             "-" * 70]
    for name, probs in rows:
        acc = float(np.mean(probs.argmax(1) == labels))
        agree = float(np.mean(probs.argmax(1) == ref.argmax(1)))
        diff = float(np.max(np.abs(probs - ref)))
        lines.append(f"{name:<22} {acc:>9.2%} {agree:>18.2%} {diff:>18.2e}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kcc.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out", help="directory for MNISTClassifier.mlmodel/.onnx (default: out/)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    import kcc

    images, labels = load_digits_28x28()
    (x_train, y_train), (x_test, y_test) = split(images, labels, held_back=0.25, seed=args.seed)
    print(f"kcc demo: {len(x_train)} training and {len(x_test)} held-back digits from sklearn.datasets.load_digits "
          f"(8x8 scans scaled to 28x28)")
    model = train(x_train, y_train, args.epochs, args.seed)
    print(f"  trained the tutorial's small CNN for {args.epochs} epochs ({time.perf_counter() - t0:.0f}s so far)")

    mlmodel = kcc.compile(model, target="coreml", **COREML_OPTIONS)
    coreml_path = kcc.save(mlmodel, out_dir / "MNISTClassifier.mlmodel")
    onnx_model = kcc.compile(model, target="onnx", input_names="image", output_names="output")
    onnx_path = kcc.save(onnx_model, out_dir / "MNISTClassifier.onnx")
    spec = mlmodel.get_spec()
    print(f"  wrote {coreml_path} (Core ML spec {spec.specificationVersion}, input 'image' 28x28 grayscale, "
          f"classifier 0-9) and {onnx_path}")

    rows = [("Keras", predict_keras(model, x_test)),
            ("Core ML (kcc runtime)", predict_coreml(coreml_path, x_test)),
            ("ONNX (onnxruntime)", predict_onnx(onnx_model, x_test))]
    report = f"{len(x_test)} held-back digits:\n{table(rows, y_test)}"
    (out_dir / "results.txt").write_text(report + "\n", encoding="utf-8")
    print()
    print(report)
    print(f"\ndone in {time.perf_counter() - t0:.0f}s (table also in {out_dir / 'results.txt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
