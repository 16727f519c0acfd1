"""Import an ML Program (a MIL program inside a Core ML spec) into the IR.

MIL is channels-first (conv and pooling are NCHW), like the IR, so tensors keep
their layout: a Keras model converted by coremltools carries its own NHWC<->NCHW
transposes in the MIL, and kcc's passes cancel what cancels. The function's
operations are lowered in order through the handler table (mil_registry.py).
Values live in ``env`` as IR values or, while known at conversion time, as numpy
arrays (``const`` ops, decompressed ``constexpr_*`` weights, and every op whose
operands are all constant, folded by running its handler on a scratch graph):
a constant becomes an IR constant only where a real node reads it.

Unknown dims (flexible input shapes) become symbols: ``N`` on axis 0, else
``<input>_d<axis>``. A classifier's ``classify`` op is not a tensor op: its
probabilities become the graph output of that name, and the label table is
recorded in ``graph.classifier`` for the runtime (``kcc.coreml.predict``) and the backends.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcc.errors import ConversionError, KccError, ModelFileError, ShapeError, UnsupportedOpError
from kcc.frontends.coreml.mil_registry import BLOCK_OPS, MIL_OPS, ClassLabel, MilOpContext
from kcc.frontends.coreml.mil_values import ValueReader, tensor_type
from kcc.interpreter import run as run_graph
from kcc.ir import Graph, TensorType, Value
from kcc.training import Classifier

# MIL opset names -> the OS release that introduced them; kcc reads these.
OPSETS = {"CoreML5": "iOS15", "CoreML6": "iOS16", "CoreML7": "iOS17", "CoreML8": "iOS18"}


def program_function(spec: Any, where: str, function_name: str | None) -> tuple[Any, Any, str]:
    """(function, block, opset) of the chosen function of an mlProgram spec."""
    if spec.WhichOneof("Type") != "mlProgram":
        raise ModelFileError(f"{where} is a {spec.WhichOneof('Type')} model, not an ML Program")
    program = spec.mlProgram
    if program.version != 1:
        raise ModelFileError(f"{where}: MIL program version {program.version} is not supported (kcc reads version 1)")
    names = list(program.functions)
    name = function_name or spec.description.defaultFunctionName or "main"
    if not names:
        raise ModelFileError(f"{where}: the ML Program has no functions (an empty or truncated model); "
                             "re-export it with coremltools")
    if name not in program.functions:
        raise ModelFileError(f"{where} has no function {name!r}; its functions are {', '.join(sorted(names))} "
                             f"(choose one with function_name=...)")
    fn = program.functions[name]
    if fn.opset not in OPSETS:
        raise ModelFileError(f"{where}: function {name!r} uses MIL opset {fn.opset!r}; kcc reads "
                             f"{', '.join(f'{k} ({v})' for k, v in OPSETS.items())}. Convert the model with "
                             f"coremltools' minimum_deployment_target at iOS18 or lower")
    if fn.opset not in fn.block_specializations:
        raise ModelFileError(f"{where}: function {name!r} has no block for its opset {fn.opset}")
    return fn, fn.block_specializations[fn.opset], fn.opset


class MilImporter:
    """Lowers one MIL function into a new IR graph."""

    def __init__(self, spec: Any, weights_dir: Path | None, where: str, options: dict[str, Any] | None = None):
        self.spec = spec
        self.where = where
        self.options = options or {}
        self.reader = ValueReader(weights_dir, where)
        self.env: dict[str, Any] = {}
        self.graph = Graph("model")
        self.classifier: Classifier | None = None

    def run(self) -> Graph:
        fn, block, opset = program_function(self.spec, self.where, self.options.get("function_name"))
        self.opset = opset
        self._inputs(fn)
        for operation in block.operations:
            self._lower(operation)
        self._outputs(list(block.outputs))
        self.graph.meta["boundary"] = "channels_first"
        self.graph.meta["input_layout"] = {v.name: "native" for v in self.graph.inputs}
        self.graph.meta["source"] = {"format": "mlprogram", "opset": opset}
        self.graph.classifier = self.classifier
        return self.graph

    # ------------------------------------------------------------ boundary
    def _inputs(self, fn: Any) -> None:
        shapes = dict(self.options.get("input_name_shape_dict") or {})
        for nvt in fn.inputs:
            t = tensor_type(nvt.type, f"{self.where}: input {nvt.name!r}", nvt.name)
            override = shapes.pop(nvt.name, None)
            if override is not None:
                t = _override(t, override, nvt.name)
            self.env[nvt.name] = self.graph.add_input(nvt.name, t)
        if shapes:
            raise ShapeError(f"input_name_shape_dict names {sorted(shapes)}, but the model's inputs are "
                             f"{[i.name for i in fn.inputs]}")

    def _outputs(self, names: list[str]) -> None:
        values, out_names = [], []
        for name in names:
            if name not in self.env:
                raise ModelFileError(f"{self.where}: the program output {name!r} is never computed")
            x = self.env[name]
            if isinstance(x, ClassLabel):
                assert self.classifier is not None
                self.classifier.label_output = name
                continue
            v = x if isinstance(x, Value) else self.graph.add_const(np.asarray(x), name=f"{name}_const")
            if v in values or v in self.graph.inputs or v.is_const:
                v = self.graph.add_node("identity", [v], {}, name=name, origin=name).output
            values.append(v)
            out_names.append(name)
        if not values:
            raise ModelFileError(f"{self.where}: the program has no tensor outputs")
        self.graph.set_outputs(values, out_names)

    # ------------------------------------------------------------ lowering
    def _operands(self, operation: Any, where: str) -> dict[str, list[Any]]:
        operands: dict[str, list[Any]] = {}
        for param, argument in operation.inputs.items():
            args = []
            for binding in argument.arguments:
                kind = binding.WhichOneof("binding")
                if kind == "name":
                    if binding.name not in self.env:
                        raise ModelFileError(f"{where}: operand {param!r} reads {binding.name!r}, which no earlier "
                                             f"operation or input defines")
                    args.append(self.env[binding.name])
                elif kind == "value":
                    args.append(self.reader.read(binding.value, f"{where} operand {param!r}"))
                else:
                    raise ModelFileError(f"{where}: operand {param!r} has an empty binding")
            operands[param] = args
        # iOS16 constexpr ops (and a few others) hold their operands as attributes.
        for key, value in operation.attributes.items():
            if key != "name" and key not in operands:
                operands[key] = [self.reader.read(value, f"{where} attribute {key!r}")]
        return operands

    def _lower(self, operation: Any) -> None:
        outs = list(operation.outputs)
        label = outs[0].name if outs else operation.type
        where = f"{self.where}: operation {label!r} ({operation.type})"
        if operation.type == "const":
            if "val" not in operation.attributes:
                raise ModelFileError(f"{where} has no value")
            self.env[outs[0].name] = self.reader.read(operation.attributes["val"], f"const {label!r}")
            return
        handler = MIL_OPS.get(operation.type)
        if handler is None:
            raise UnsupportedOpError(
                f"{where}: kcc has no lowering for the MIL op {operation.type!r}. Supported MIL ops: "
                f"{', '.join(MIL_OPS.names())}. Rewrite the model without it, or convert it from its "
                f"source framework with kcc")
        has_blocks = operation.type in BLOCK_OPS
        if operation.blocks and not has_blocks:
            raise UnsupportedOpError(f"{where}: MIL control flow ({operation.type} with nested blocks) is not "
                                     f"supported by kcc")
        operands = self._operands(operation, where)
        out_types = []
        for o in outs:
            try:
                out_types.append(tensor_type(o.type, where, o.name))
            except ModelFileError:
                out_types.append(None)
        known = all(isinstance(a, np.ndarray) or isinstance(a, str) or (isinstance(a, Value) and a.is_const)
                    for args in operands.values() for a in args)
        name = _node_name(label)
        try:
            # Ops with nested blocks lower them into this graph themselves (their inner ops fold one by one).
            if known and operation.type != "classify" and not has_blocks:
                results = self._fold(handler, operation, operands, out_types, where, name)
            else:
                ctx = MilOpContext(self.graph, operation, operands, out_types, where, name, self)
                results = handler(ctx)
        except KccError:
            raise
        except Exception as e:  # an IR shape/attribute check: say which operation caused it
            raise ConversionError(f"{where}: cannot lower it: {type(e).__name__}: {e}") from e
        results = list(results) if isinstance(results, (tuple, list)) else [results]
        if len(results) != len(outs):
            raise ConversionError(f"{where}: lowered to {len(results)} results, the program names {len(outs)}")
        for o, r, t in zip(outs, results, out_types):
            _check_shape(where, o.name, r, t)
            self.env[o.name] = r

    def lower_block(self, block: Any, bound: list[Any], where: str) -> list[Any]:
        """Lower a nested block (a loop body, a branch) into this graph: its inputs bound to ``bound``.

        MIL names are unique across a program, so the block's values share ``env``
        with the function's; lowering a block again (the next loop iteration)
        rebinds its names to the new values.
        """
        if len(block.inputs) != len(bound):
            raise ConversionError(f"{where}: a nested block takes {len(block.inputs)} values, it is given {len(bound)}")
        for nvt, value in zip(block.inputs, bound):
            self.env[nvt.name] = value
        for operation in block.operations:
            self._lower(operation)
        missing = [name for name in block.outputs if name not in self.env]
        if missing:
            raise ModelFileError(f"{where}: a nested block's output {missing[0]!r} is never computed")
        return [self.env[name] for name in block.outputs]

    def _fold(self, handler: Any, operation: Any, operands: dict[str, list[Any]],
              out_types: list[TensorType | None], where: str, name: str) -> list[Any]:
        """Run the handler on a scratch graph and evaluate it: the op's results as numpy arrays."""
        scratch = Graph("fold")
        plain = {p: [a.const if isinstance(a, Value) else a for a in args] for p, args in operands.items()}
        results = handler(MilOpContext(scratch, operation, plain, out_types, where, name, self))
        results = list(results) if isinstance(results, (tuple, list)) else [results]
        pending = [r for r in results if isinstance(r, Value) and not r.is_const]
        if pending:
            scratch.set_outputs(pending, [f"o{i}" for i in range(len(pending))])
            got = run_graph(scratch, {})
            computed = {id(v): got[f"o{i}"] for i, v in enumerate(pending)}
        out = []
        for r in results:
            if isinstance(r, Value):
                out.append(r.const if r.is_const else computed[id(r)])
            else:
                out.append(r)
        return out


def _check_shape(where: str, name: str, result: Any, declared: TensorType | None) -> None:
    """The lowered result must have the static shape the program declares (a handler bug otherwise).

    Only same-rank shapes are compared: coremltools declares some broadcasting
    results with a lower rank (``select`` of a tensor condition and scalar
    branches is typed as a scalar), which Core ML itself ignores.
    """
    if declared is None or not all(isinstance(d, int) for d in declared.shape):
        return
    shape = result.shape if isinstance(result, (Value, np.ndarray)) else None
    if shape is not None and len(shape) == len(declared.shape) and all(isinstance(d, int) for d in shape) \
            and tuple(shape) != declared.shape:
        raise ConversionError(f"{where}: kcc lowered {name!r} to shape {list(shape)}, the program declares "
                              f"{list(declared.shape)} (a kcc bug; please report it with the model)")


def _node_name(label: str) -> str:
    return label.replace("/", "_") or "op"


def _override(t: TensorType, shape: Any, name: str) -> TensorType:
    shape = tuple(shape)
    if len(shape) == t.rank - 1:
        shape = (None,) + shape
    if len(shape) != t.rank:
        raise ShapeError(f"input shape {shape} for {name!r} has rank {len(shape)}, the model's input has rank {t.rank}")
    for d, o in zip(t.shape, shape):
        if o is not None and isinstance(d, int) and d != int(o):
            raise ShapeError(f"input {name!r} has the fixed shape {list(t.shape)}; {list(shape)} does not fit it")
    return TensorType(tuple(d if o is None else int(o) for d, o in zip(t.shape, shape)), t.dtype)


def import_mlprogram(spec: Any, weights_dir: Path | None, where: str, options: dict[str, Any] | None = None) -> Graph:
    """The IR graph of an mlProgram spec's chosen function (see the module docstring)."""
    return MilImporter(spec, weights_dir, where, options).run()
