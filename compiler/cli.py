"""The ``kcc`` command line.

    kcc MODEL [WEIGHTS] --emit {onnx,coreml} [-o OUT] [options] [debugging flags]
    kcc run MODEL.mlmodel [NAME=FILE ...] [-o OUT.npz]     (the Core ML runtime)
    kcc inspect MODEL [WEIGHTS] [--json]                    (what is inside a model file)

Output: third-party start-up noise (TensorFlow's native logs, coremltools'
version warnings) is kept off the terminal unless --verbose (kcc.quiet); a
progress line is drawn on an interactive stderr unless --quiet (kcc.progress).

Exit codes: 0 success, 1 any failure (a bad model, option or input, or an
internal error, which the message calls a bug), 2 bad command-line usage, 130
interrupted. A failure prints one ``kcc: error:`` line (the traceback only with
--debug). The output file is written atomically (a temporary file in the same
directory, fsync, rename): on any failure, Ctrl-C included, no file is left
behind and an existing output is untouched.
"""
from __future__ import annotations

import argparse
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
  kcc inspect MNIST.mlmodel            (also .keras, .h5, arch.json weights.h5, .onnx; --json)

debugging:
  --dump-ir DIR writes NN-<pass>.txt, NN-<pass>.dot and NN-<pass>.svg for the
  frontend's graph (00) and for every pass that changed the graph (NN = the
  pass's position in the pipeline), plus passes.log listing every pass;
  --dump-all writes every pass, changed or not. --print-ir prints the text
  after every pass; --verify-each runs the IR interpreter after every pass on
  seeded inputs and names the first pass that changed an output; --time-passes
  prints a table of passes, wall time and node counts.

install extras (a path that needs one says so):
  kcc[tensorflow]  in-memory Keras models, Lambda and custom-layer tracing
  kcc[hub]         KerasHub models
  kcc[verify]      onnxruntime, to run emitted ONNX models
  kcc[all]         all of the above
"""


def _shape(text: str) -> tuple[str, tuple[int | None, ...]]:
    try:
        name, dims = text.split("=", 1)
        shape = tuple(None if d.strip() in ("", "?", "None", "N") else int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=D1,D2,... (e.g. image=1,28,28,1)") from None
    return name, shape


def build_parser() -> argparse.ArgumentParser:
    from kcc import __version__
    from kcc.backends import all_targets

    targets = all_targets()
    p = argparse.ArgumentParser(
        prog="kcc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Compile a Keras model (.keras, .h5, or architecture .json + weights .h5) "
                    "to ONNX or Core ML. Other commands: `kcc run MODEL.mlmodel ...` runs a Core ML "
                    "model; `kcc inspect MODEL` describes a model file.")
    # `--version` alone prints kcc's version; with a model it is the Core ML metadata option.
    p.add_argument("-V", action="version", version=f"kcc {__version__}",
                   help="print kcc's version and exit (so does `kcc --version` alone)")
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
    g.add_argument("--function-name", metavar="NAME",
                   help="Core ML ML Program: the function of a multifunction .mlpackage to read (default: main)")
    for t in targets.values():
        hook = getattr(t, "add_cli_arguments", None)
        if hook is not None:
            hook(p.add_argument_group(f"{t.name} options"))
    add_verbosity_arguments(p)
    d = p.add_argument_group("debugging")
    d.add_argument("--dump-ir", metavar="DIR",
                   help="write the frontend's IR and the IR after every pass that changed it into DIR "
                        "(text, DOT and SVG picture; passes.log lists every pass)")
    d.add_argument("--dump-all", action="store_true", help="with --dump-ir: write every pass, changed or not")
    d.add_argument("--print-ir", action="store_true", help="print the IR after every pass")
    d.add_argument("--verify-each", action="store_true",
                   help="run the interpreter after every pass and name the first that changed an output")
    d.add_argument("--time-passes", action="store_true", help="print a table of pass times and node counts")
    d.add_argument("--debug", action="store_true", help="on an error, print the Python traceback too")
    return p


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from kcc.backends import get_target

    opts: dict[str, Any] = {
        "input_names": args.input_names,
        "output_names": args.output_names,
        "input_name_shape_dict": dict(args.input_shape) if args.input_shape else None,
        "safe_mode": not args.unsafe,
        "function_name": args.function_name,
        "dump_ir": args.dump_ir,
        "dump_all": args.dump_all,
        "print_ir": args.print_ir,
        "verify_each": args.verify_each,
        "time_passes": args.time_passes,
    }
    target = get_target(args.emit)
    convert = getattr(target, "options_from_cli", None)
    if convert is not None:
        opts.update(convert(args))
    return opts


def add_verbosity_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output").add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="print errors only (no progress line, no warnings)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="let TensorFlow's, coremltools' and tf2onnx's own messages through")


def _verbosity(args: argparse.Namespace) -> str:
    return "quiet" if args.quiet else "verbose" if args.verbose else "normal"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        from kcc import __version__
        print(f"kcc {__version__}")
        return 0
    if argv and argv[0] == "run":
        from kcc.coreml.cli import main as run_main
        return run_main(argv[1:], prog="kcc run")
    if argv and argv[0] == "inspect":
        return _guarded(inspect_main, argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dump_all and not args.dump_ir:
        parser.error("--dump-all needs --dump-ir DIR")
    return _guarded(_compile, args, _verbosity(args))


def _guarded(fn: Any, args: Any, verbosity: str | None = None) -> int:
    """Run a command with kcc's error policy: one ``kcc: error:`` line and exit 1 (130 on Ctrl-C)."""
    import traceback

    from kcc import quiet
    from kcc.errors import KccError

    debug = bool(getattr(args, "debug", False))

    if verbosity is not None:
        quiet.set_verbosity(verbosity)
    try:
        with quiet.silenced():
            return fn(args)
    except KccError as e:
        if debug:
            traceback.print_exc()
        print(f"kcc: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("kcc: error: interrupted; no output file was written", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug in kcc: say so, keep it to one message
        if debug:
            traceback.print_exc()
        hidden = "; --verbose shows the libraries' messages" if quiet.captured().strip() else ""
        text = " ".join(str(e).split())[:500]
        print(f"kcc: error: internal error (a bug in kcc): {type(e).__name__}: {text}; please report "
              f"it with the model that triggers it (--debug shows the traceback{hidden})", file=sys.stderr)
        return 1


def _compile(args: argparse.Namespace) -> int:
    from kcc import progress, quiet
    from kcc.api import compile_to_file
    from kcc.backends import get_target

    target = get_target(args.emit)
    source: Any = (args.model, args.weights) if args.weights else args.model
    out = Path(args.output) if args.output else Path(args.model).with_suffix(target.suffix)
    with progress.task(f"{Path(args.model).name} -> {target.name}"):
        # Written as it is emitted where the target can (ONNX streams its weights to the file).
        result = compile_to_file(source, out, target=args.emit, **options_from_args(args))
    if args.time_passes:
        print(result.report.table())
    if quiet.verbosity() != "quiet":
        n_in, n_out = len(result.graph.inputs), len(result.graph.outputs)
        also = f" and {result.model[1]}" if len(result.model) > 1 else ""
        print(f"kcc: wrote {out}{also} ({target.name}; {len(result.graph)} nodes, {n_in} input(s), "
              f"{n_out} output(s))")
    return 0


def inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kcc inspect", description="Describe a model file: inputs and outputs (shapes, dtypes, layouts), "
        "op or layer counts, parameters, format versions, classifier labels and metadata. Reads .keras, "
        ".h5/.hdf5, an architecture .json with its weights .h5, .onnx, .mlmodel and .mlpackage, "
        "without TensorFlow.")
    p.add_argument("model", help="the model file")
    p.add_argument("weights", nargs="?", help="weights .h5, when MODEL is an architecture .json")
    p.add_argument("--json", action="store_true", help="print the description as JSON (for scripts)")
    return p


def inspect_main(argv: list[str]) -> int:
    from kcc.describe import describe, format_text

    args = inspect_parser().parse_args(argv)
    info = describe(args.model, args.weights)
    print(info.to_json() if args.json else format_text(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
