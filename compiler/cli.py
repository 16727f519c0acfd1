"""The ``kcc`` command line.

    kcc MODEL [WEIGHTS] --emit {onnx,coreml} [-o OUT] [options] [debugging flags]
    kcc run MODEL.mlmodel [NAME=FILE ...] [-o OUT.npz]     (the Core ML runtime)

Exit codes: 0 success, 1 a kcc error (bad model, option or input; the message
says what to do), 2 bad command-line usage, 3 an internal error (a kcc bug).
The output file is written atomically: on any failure no file is left behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EPILOG = """\
examples:
  kcc mnist.keras --emit onnx -o mnist.onnx
  kcc mnist.h5 --emit coreml -o MNIST.mlmodel --input-names image --image-input-names image \\
      --image-scale 0.00392157 --class-labels 0 1 2 3 4 5 6 7 8 9 --output-names output
  kcc arch.json weights.h5 --emit onnx -o model.onnx --input-layout nchw
  kcc mnist.keras --emit onnx -o m.onnx --dump-ir dumps/ --verify-each --time-passes
  kcc run MNIST.mlmodel image=digit.png

debugging:
  --dump-ir DIR writes NN-<pass>.txt, NN-<pass>.dot and NN-<pass>.svg after
  every pass, 00 being the frontend's graph; --print-ir prints the same
  text; --verify-each runs the IR interpreter after every pass on seeded inputs
  and names the first pass that changed an output; --time-passes prints a table
  of passes, wall time and node counts.
"""


def _shape(text: str) -> tuple[str, tuple[int | None, ...]]:
    try:
        name, dims = text.split("=", 1)
        shape = tuple(None if d.strip() in ("", "?", "None", "N") else int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=D1,D2,... (e.g. image=1,28,28,1)") from None
    return name, shape


def build_parser() -> argparse.ArgumentParser:
    from kcc.backends import all_targets

    targets = all_targets()
    p = argparse.ArgumentParser(
        prog="kcc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Compile a Keras model (.keras, .h5, or architecture .json + weights .h5) "
                    "to ONNX or Core ML.")
    p.add_argument("model", help="model file: .keras, .h5/.hdf5, or an architecture .json")
    p.add_argument("weights", nargs="?", help="weights .h5, when MODEL is an architecture .json")
    p.add_argument("--emit", choices=sorted(targets), default="onnx", help="target format (default: onnx)")
    p.add_argument("-o", "--output", help="output file (default: MODEL with the target's suffix)")
    g = p.add_argument_group("model interface")
    g.add_argument("--input-names", nargs="+", metavar="NAME", help="names of the model inputs, in order")
    g.add_argument("--output-names", nargs="+", metavar="NAME", help="names of the model outputs, in order")
    g.add_argument("--input-shape", action="append", type=_shape, metavar="NAME=D1,D2,...",
                   help="override an input's shape (repeatable; batch dim optional; ? for unknown)")
    g.add_argument("--unsafe", action="store_true",
                   help="allow running Python code stored in the model file (Lambda layers). "
                        "Only for files you trust.")
    for t in targets.values():
        hook = getattr(t, "add_cli_arguments", None)
        if hook is not None:
            hook(p.add_argument_group(f"{t.name} options"))
    d = p.add_argument_group("debugging")
    d.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR (text, DOT and SVG picture)")
    d.add_argument("--print-ir", action="store_true", help="print the IR after every pass")
    d.add_argument("--verify-each", action="store_true",
                   help="run the interpreter after every pass and name the first that changed an output")
    d.add_argument("--time-passes", action="store_true", help="print a table of pass times and node counts")
    return p


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from kcc.backends import get_target

    opts: dict[str, Any] = {
        "input_names": args.input_names,
        "output_names": args.output_names,
        "input_name_shape_dict": dict(args.input_shape) if args.input_shape else None,
        "safe_mode": not args.unsafe,
        "dump_ir": args.dump_ir,
        "print_ir": args.print_ir,
        "verify_each": args.verify_each,
        "time_passes": args.time_passes,
    }
    target = get_target(args.emit)
    convert = getattr(target, "options_from_cli", None)
    if convert is not None:
        opts.update(convert(args))
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # TensorFlow's C++ start-up logging (when a model needs TF) is noise on a command line.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv and argv[0] == "run":
        from kcc.coreml.cli import main as run_main
        return run_main(argv[1:])
    from kcc.errors import KccError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _compile(args)
    except KccError as e:
        print(f"kcc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug in kcc: say so, keep it to one message
        print(f"kcc: internal error: {type(e).__name__}: {e}\n"
              f"This is a bug in kcc; please report it with the model that triggers it.", file=sys.stderr)
        return 3


def _compile(args: argparse.Namespace) -> int:
    from kcc.api import compile_model, save
    from kcc.backends import get_target

    target = get_target(args.emit)
    source: Any = (args.model, args.weights) if args.weights else args.model
    out = Path(args.output) if args.output else Path(args.model).with_suffix(target.suffix)
    result = compile_model(source, target=args.emit, serialized=True, **options_from_args(args))
    save(result.model, out)
    if args.time_passes:
        print(result.report.table())
    n_in, n_out = len(result.graph.inputs), len(result.graph.outputs)
    print(f"kcc: wrote {out} ({target.name}; {len(result.graph)} nodes, {n_in} input(s), {n_out} output(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
