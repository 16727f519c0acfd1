"""The public API: ``kcc.compile(model, target=..., **options)``.

One path for every source and target:

    source --frontend--> IR graph --target's pipeline--> IR graph --target's emitter--> model

Options are checked before any work: an unknown option, or a known one with a
bad value, raises OptionError naming it.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kcc import progress
from kcc.backends import Target, get_target
from kcc.errors import ModelFileError, OptionError, naming_files
from kcc.files import fsync_file, output_mode
from kcc.ir import Graph
from kcc.pipeline import Pipeline, PipelineReport, RunOptions

# Options every target accepts, with their defaults.
COMMON_OPTIONS: dict[str, Any] = {
    "input_names": None,            # rename the model inputs (list, in model order)
    "output_names": None,           # rename the model outputs (list, in model order)
    "input_name_shape_dict": None,  # {input name: shape}, overriding the model's (batch dim optional)
    "safe_mode": True,              # never run code stored in a model file (Lambda bytecode)
    "custom_objects": None,         # passed to Keras when a file needs Keras to load
    "custom_conversion_functions": None,  # {Keras class name: function}
    "dump_ir": None,                # directory: the IR after every pass that changed it, as text and Graphviz
    "dump_all": False,              # with dump_ir: dump every pass, changed or not
    "print_ir": False,              # print the IR after every pass
    "verify_each": False,           # run the interpreter after every pass, report the first divergence
    "time_passes": False,           # record pass timings (CompileResult.report.table())
    "print_fn": print,              # where print_ir and verify_each messages go
    "function_name": None,          # Core ML ML Program: which function of a multifunction model (default main)
    "weights_dir": None,            # Core ML ML Program: the weights/ directory of an in-memory spec
}


@dataclass
class CompileResult:
    model: Any
    graph: Graph
    report: PipelineReport
    target: Target


def _check_options(target: Target, options: dict[str, Any]) -> dict[str, Any]:
    allowed = {**COMMON_OPTIONS, **target.options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)} for target {target.name!r}; "
                          f"valid options: {', '.join(sorted(k for k in allowed if k != 'print_fn'))}")
    merged = {**allowed, **{k: v for k, v in options.items()}}
    for key in ("input_names", "output_names"):
        val = merged[key]
        if isinstance(val, str):
            merged[key] = [val]
        elif val is not None and not (isinstance(val, (list, tuple)) and all(isinstance(s, str) for s in val)):
            raise OptionError(f"{key} must be a string or a list of strings, got {val!r}")
    shapes = merged["input_name_shape_dict"]
    if shapes is not None and not isinstance(shapes, dict):
        raise OptionError(f"input_name_shape_dict must map input names to shapes, got {shapes!r}")
    return merged


def _boundary(target: Target, options: dict[str, Any]) -> str:
    layout = options.get("input_layout")
    if layout is None:
        return target.default_boundary
    table = {"nhwc": "channels_last", "nchw": "channels_first", "channels_last": "channels_last",
             "channels_first": "channels_first"}
    try:
        return table[str(layout).lower()]
    except KeyError:
        raise OptionError(f"input_layout={layout!r}: use 'nhwc' (Keras's layout) or 'nchw'") from None


def _rename_boundary(graph: Graph, options: dict[str, Any]) -> None:
    names = options["input_names"]
    if names is not None:
        if len(names) != len(graph.inputs):
            raise OptionError(f"input_names has {len(names)} names but the model has {len(graph.inputs)} inputs "
                              f"({', '.join(v.name for v in graph.inputs)})")
        for v, n in zip(graph.inputs, names):
            if graph.has_value(n) and graph.value(n) is not v:
                _swap_name(graph, v, n)
            else:
                graph.rename_value(v, n)
    names = options["output_names"]
    if names is not None:
        if len(names) != len(graph.outputs):
            raise OptionError(f"output_names has {len(names)} names but the model has {len(graph.outputs)} "
                              f"outputs ({', '.join(graph.output_names)})")
        graph.set_output_names(names)


def _swap_name(graph: Graph, v, name: str) -> None:
    other = graph.value(name)
    graph.rename_value(other, graph.fresh_name(f"{name}_inner"))
    graph.rename_value(v, name)


def load_graph(source: Any, *, boundary: str, options: dict[str, Any]) -> Graph:
    """Run the frontend that fits ``source`` and return its IR graph."""
    from kcc.frontends import frontend_for

    return frontend_for(source)(source, boundary=boundary, options=options)


def compile_model(source: Any, target: str = "onnx", *, serialized: bool = False, **options: Any) -> CompileResult:
    """Compile and return the model with its final graph and the pipeline report.

    With ``serialized=True`` the result's ``model`` is the model file's bytes
    (what ``kcc`` writes), made without building the target's model object.
    A KccError about a model file names the file (``kcc.errors.naming_files``).
    """
    with naming_files(source):
        return _compile_model(source, target, serialized=serialized, **options)


def compile_to_file(source: Any, path: str | os.PathLike, target: str = "onnx", **options: Any) -> CompileResult:
    """Compile and write the model file at ``path`` (plus an ONNX model's data file past 2 GB).

    The result's ``model`` is the list of paths written. A target with a ``write``
    hook streams the weights from the graph to the file; otherwise the model is
    emitted and saved (``save``). Nothing is left behind on failure.
    """
    tgt = get_target(target)
    if tgt.write is None:
        result = compile_model(source, target, serialized=tgt.serialize is not None, **options)
        progress.step(f"writing {path}")
        result.model = [save(result.model, path, keep_in_memory=False)]
        return result
    with naming_files(source):  # errors about the output name the output, not the source
        graph, report, opts = _optimized_graph(source, tgt, options)
    progress.step(f"emitting {tgt.name} ({len(graph)} nodes) and writing {path}")
    return CompileResult(tgt.write(graph, opts, Path(path)), graph, report, tgt)


def _compile_model(source: Any, target: str, *, serialized: bool, **options: Any) -> CompileResult:
    tgt = get_target(target)
    graph, report, opts = _optimized_graph(source, tgt, options)
    progress.step(f"emitting {tgt.name} ({len(graph)} nodes)")
    if serialized:
        model = tgt.serialize(graph, opts) if tgt.serialize else serialize(tgt.emit(graph, opts))
    else:
        model = tgt.emit(graph, opts)
    return CompileResult(model, graph, report, tgt)


def _optimized_graph(source: Any, tgt: Target, options: dict[str, Any]) -> tuple[Graph, PipelineReport, dict]:
    """The source's IR after the target's pipeline, its report, and the checked options."""
    opts = _check_options(tgt, options)
    progress.step("reading the model")
    graph = load_graph(source, boundary=_boundary(tgt, opts), options=opts)
    _rename_boundary(graph, opts)
    pipeline = Pipeline.from_spec(tgt.pipeline_spec(opts), name=tgt.name)
    run_opts = RunOptions(validate=True, verify_each=bool(opts["verify_each"]), dump_dir=opts["dump_ir"],
                          print_ir=bool(opts["print_ir"]), print_fn=opts["print_fn"],
                          dump_all=bool(opts["dump_all"]))
    report = pipeline.run(graph, run_opts)
    if opts["verify_each"]:
        if report.first_divergence:
            name, err = report.first_divergence
            opts["print_fn"](f"verify-each: pass {name} changed the outputs (max relative error {err:.3g})")
        else:
            opts["print_fn"](f"verify-each: all {len(pipeline.passes)} passes preserve the outputs")
    return graph, report, opts


def compile(model: Any, target: str = "onnx", **options: Any) -> Any:
    """Compile a Keras model (in memory or a path) for ``target``; return the target's model object.

    ``target="onnx"`` returns an ``onnx.ModelProto``; ``target="coreml"`` a
    ``coremltools.models.MLModel``. An ONNX model past the 2 GB protobuf limit is
    returned whole, tensors in memory; save it with ``kcc.save(model, "model.onnx")``,
    which writes its tensors to ``model.onnx.data`` beside it (the same as
    ``onnx.save_model(model, "model.onnx", save_as_external_data=True,
    location="model.onnx.data")``); plain ``onnx.save`` refuses it. See
    ``COMMON_OPTIONS`` and each target's options (``kcc.backends.get_target(name).options``).
    """
    return compile_model(model, target, **options).model


def save_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move it to ``path``; on failure no file is left behind."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ModelFileError(f"cannot write {path}: {e.strerror}") from None
    try:
        os.close(fd)
        write(tmp)
        fsync_file(tmp)
        os.chmod(tmp, output_mode())  # mkstemp makes it 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt too: never leave the temporary file behind
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ModelFileError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    return path


def serialize(model: Any) -> bytes:
    """The file bytes of a compiled model: an onnx.ModelProto or a Core ML MLModel."""
    if isinstance(model, bytes):
        return model
    if hasattr(model, "SerializeToString") and type(model).__name__ == "ModelProto":
        from kcc.backends.onnx.external_data import needs_external_data

        if needs_external_data(model):
            raise OptionError("this ONNX model is past the 2 GB protobuf limit, so it has no single-file "
                              "bytes; write it with kcc.save(model, 'model.onnx'), which puts its weights "
                              "in 'model.onnx.data' beside it")
        return model.SerializeToString()
    if hasattr(model, "get_spec"):  # a Core ML MLModel
        return model.get_spec().SerializeToString()
    raise OptionError(f"do not know how to save a {type(model).__name__}")


def save(model: Any, path: str | os.PathLike, *, keep_in_memory: bool = True) -> Path:
    """Write a compiled model (ONNX, Core ML, or its bytes) to ``path`` atomically.

    An ONNX model past the 2 GB protobuf limit is written with external data:
    ``path`` plus ``<path name>.data`` beside it (kcc.backends.onnx.external_data);
    ``keep_in_memory=False`` lets that writer leave the tensors out of ``model``
    afterwards instead of reading them back.
    """
    if hasattr(model, "write_directory"):  # a TensorFlow SavedModel (kcc.backends.keras.savedmodel)
        return model.write_directory(path)
    if type(model).__name__ == "ModelProto":
        from kcc.backends.onnx.external_data import needs_external_data, save_with_external_data

        if needs_external_data(model):
            return save_with_external_data(model, path, keep_in_memory=keep_in_memory)[0]
    data = serialize(model)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return save_atomic(path, write)
