"""PyTorch models built in code, traced and converted by coremltools 9 to ML Programs (runs in the torch venv).

    /work/venvs/torch/bin/python bench/pytorch_models.py OUT_DIR [--models cnn,resnet,...] [--precision fp32|fp16]

Used by bench/pytorch_back.py, which runs it in a separate venv (Python 3.11,
torch==2.13.0 CPU, coremltools 9; kcc's own venv has no torch). For each model:
seeded random weights, ``eval()``, BatchNorm running statistics calibrated on a
varied batch (fresh statistics are the identity, which hides mistakes), one
``torch.jit.trace`` (``torch.export`` for the attention models),
``coremltools.convert(convert_to="mlprogram")``, and the
package saved to ``OUT_DIR/<name>.mlpackage`` beside ``OUT_DIR/<name>.npz`` that
holds the inputs (by the package's input names) and torch's outputs (by the
package's output names). One JSON line per model on stdout: name, input and
output names, conversion seconds, or the error.

This module imports torch and coremltools only; it never imports kcc.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class SmallCNN(nn.Module):
    """The tutorial CNN in PyTorch: conv-bn-relu, max pool, conv, adaptive average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 16, 3, stride=2), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 2 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.relu6(self.b2(self.c2(x)))
        x = F.adaptive_avg_pool2d(x, (2, 3))
        return self.fc(torch.flatten(x, 1))


class Block(nn.Module):
    """A ResNet basic block (stride 2 with a 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.proj(x))


class ResNetish(nn.Module):
    """Stem, max pool, three basic-block stages, global average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 5, 2, 2, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.stages = nn.Sequential(Block(16, 16, 1), Block(16, 24, 2), Block(24, 32, 2))
        self.fc = nn.Linear(32, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class MobileBlocks(nn.Module):
    """Depthwise-separable convs with hardswish, squeeze-excite (sigmoid gate), and a softmax head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, 2, 1)
        self.dw = nn.Conv2d(12, 12, 3, 1, 1, groups=12)
        self.bn = nn.BatchNorm2d(12)
        self.se1, self.se2 = nn.Conv2d(12, 4, 1), nn.Conv2d(4, 12, 1)
        self.pw = nn.Conv2d(12, 20, 1)
        self.fc = nn.Linear(20, 5)
        with torch.no_grad():  # logits of a few units, so the softmax is far from uniform
            self.fc.weight.mul_(20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.hardswish(self.stem(x))
        x = F.silu(self.bn(self.dw(x)))
        s = torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(x, 1)))))
        x = F.gelu(self.pw(x * s))
        return torch.softmax(self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)), dim=-1)


class UNetish(nn.Module):
    """Encoder-decoder: strided conv down, transposed conv and bilinear upsampling up, skip concat, leaky relu."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, 2, 1)
        self.mid = nn.Conv2d(8, 8, 3, 1, 1)
        self.up = nn.ConvTranspose2d(8, 6, 2, 2)
        self.out = nn.Conv2d(6 + 3 + 8, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = F.leaky_relu(self.down(x), 0.1)
        m = torch.tanh(self.mid(d))
        u = self.up(m)
        b = F.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.out(torch.cat([u, x, b], dim=1))


class LSTMTagger(nn.Module):
    """Embedding, a two-layer LSTM, a linear head on every step (a sequence tagger)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 12)
        self.lstm = nn.LSTM(12, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 6)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.emb(tokens))
        return self.fc(y)


class GRUClassifier(nn.Module):
    """A bidirectional GRU over features, its last step into a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(10, 14, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(28, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(x)
        return self.fc(y[:, -1])


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block: LayerNorm, nn.MultiheadAttention, residual, GELU MLP."""

    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff1, self.ff2 = nn.Linear(d, 3 * d), nn.Linear(3 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


class TinyTransformer(nn.Module):
    """Token + position embedding, nn.TransformerEncoderLayer (post-norm, relu), mean pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 24)
        self.pos = nn.Parameter(torch.randn(1, 9, 24) * 0.1)
        self.layer = nn.TransformerEncoderLayer(24, 3, dim_feedforward=40, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.layer(self.emb(tokens) + self.pos)
        return self.fc(h.mean(dim=1))


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _tokens(shape: tuple[int, ...], high: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, high, shape).astype(np.int32))


# name -> (constructor, input maker (batch, seed) -> tensor); unequal H and W catch transposed axes
MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[int, int], torch.Tensor]]] = {
    "cnn": (SmallCNN, lambda b, s: _images((b, 3, 20, 28), s)),
    "resnet": (ResNetish, lambda b, s: _images((b, 3, 40, 56), s)),
    "mobile": (MobileBlocks, lambda b, s: _images((b, 3, 24, 32), s)),
    "unet": (UNetish, lambda b, s: _images((b, 3, 16, 24), s)),
    "lstm": (LSTMTagger, lambda b, s: _tokens((b, 11), 50, s)),
    "gru": (GRUClassifier, lambda b, s: _images((b, 7, 10), s)),
    "encoder": (EncoderBlock, lambda b, s: _images((b, 9, 32), s)),
    "transformer": (TinyTransformer, lambda b, s: _tokens((b, 9), 40, s)),
}

# captured with torch.export instead of torch.jit.trace (see make)
EXPORTED = {"encoder", "transformer"}


def calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """Set BatchNorm running statistics from a forward pass over a varied batch, then affine params off 1/0."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass sets the batch statistics exactly
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def make(name: str, out: Path, precision: str) -> dict[str, Any]:
    import coremltools as ct

    ctor, inputs = MODELS[name]
    torch.manual_seed(0)
    model = ctor()
    calibrate(model, inputs(32, 1))
    model.eval()
    x = inputs(2, 0)
    with torch.no_grad():
        ref = model(x).numpy()
    dtype = np.int32 if x.dtype == torch.int32 else np.float32
    options = dict(convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                   compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
    t = time.perf_counter()
    if name in EXPORTED:
        # coremltools 9 fails on nn.MultiheadAttention traced by torch 2.13 (its ``int`` op gets a
        # 1-element array for head_dim); torch.export's graph converts.
        source = torch.export.export(model, (x,)).run_decompositions({})
        ml = ct.convert(source, **options)
    else:
        source = torch.jit.trace(model, x, check_trace=False)
        ml = ct.convert(source, inputs=[ct.TensorType(name="x", shape=tuple(x.shape), dtype=dtype)], **options)
    seconds = time.perf_counter() - t
    stem = f"{name}_{precision}"
    ml.save(str(out / f"{stem}.mlpackage"))
    spec = ml.get_spec()
    in_name = spec.description.input[0].name
    out_name = spec.description.output[0].name
    np.savez(out / f"{stem}.npz", **{f"in:{in_name}": x.numpy(), f"out:{out_name}": ref})
    ops = sorted(_op_types(ml._mil_program.functions["main"]))
    return {"model": name, "precision": precision, "input": "x".join(map(str, x.shape)),
            "capture": "torch.export" if name in EXPORTED else "torch.jit.trace",
            "coremltools_s": seconds, "mil_ops": ops}


def _op_types(block: Any) -> set[str]:
    """MIL op types of a block and of the blocks nested in its ops (loop bodies)."""
    types = set()
    for op in block.operations:
        types.add(op.op_type)
        for inner in op.blocks:
            types |= _op_types(inner)
    return types


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in [n for n in args.models.split(",") if n]:
        try:
            row = make(name, out, args.precision)
        except Exception as exc:  # one failed conversion is a table row, not the end of the run
            error = f"coremltools: {type(exc).__name__}: {exc}"[:300]
            row = {"model": name, "precision": args.precision, "error": error}
        print("ROW " + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
