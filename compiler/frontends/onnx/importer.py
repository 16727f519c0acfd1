"""Walk an ONNX graph and lower each node through the handler table (registry.py).

The same importer serves two callers:

* the ONNX frontend (``import_onnx_model``): a whole ``.onnx`` model becomes an
  IR graph; ONNX is already channels-first, so nothing is transposed;
* the Keras Lambda/custom-layer route: a traced layer's ONNX graph is spliced
  into the Keras graph being built, its inputs bound to existing IR values.

Values live in ``env`` as IR values or, while they are still known at
conversion time, as numpy arrays: initializers, ``Constant`` nodes and every
node whose inputs are all known are folded (the handler runs on a scratch graph
and the reference interpreter evaluates it), so a constant becomes an IR
constant only where a real node reads it. ``Shape`` of a value with symbolic
dims and the arithmetic on it fold symbolically (symbolic.py).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from kcc.builder import GraphBuilder
from kcc.errors import ConversionError, KccError
from kcc.frontends.onnx import symbolic
from kcc.frontends.onnx.registry import OnnxNodeContext, UnsupportedOnnxOp, handler_for
from kcc.ir import DTYPES, Graph, Value

Known = Value | np.ndarray


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def constant_value(node: onnx.NodeProto) -> np.ndarray:
    """The array a ``Constant`` node holds, whichever attribute spells it."""
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if a.name == "value":
            return numpy_helper.to_array(v)
        if a.name in ("value_float", "value_floats"):
            return np.asarray(v, dtype=np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.asarray(v, dtype=np.int64)
    raise ConversionError(f"Constant node {node.name!r} holds no value kcc can read (sparse or string constants)")


def _has_subgraph(node: onnx.NodeProto) -> bool:
    """A node with a graph attribute (Loop, If, Scan): its body may read values of the enclosing
    scope that are not its inputs, so it is never folded on a scratch graph."""
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


class OnnxImporter:
    """Lowers ONNX nodes into ``graph``; ``origin`` (if given) is recorded on every node."""

    def __init__(self, graph: Graph, opset: int, *, origin: str | None = None, name_prefix: str = "",
                 exact_resize_sizes: bool = False):
        self.graph = graph
        # tf2onnx writes a Resize to a fixed size as float32 scales (9/5 -> 1.7999999); with this
        # set, an output size within 1e-4 of an integer is that integer (what TensorFlow computed).
        self.options = {"exact_resize_sizes": exact_resize_sizes}
        self.opset = opset
        self.origin = origin
        self.name_prefix = name_prefix
        self.env: dict[str, Known] = {}
        # id of a Shape(x) result with symbolic dims -> x (the arrays stay alive in env).
        self.shape_sources: dict[int, Value] = {}
        # symbol -> a value having that dim, to compute symbolic shapes at run time.
        self.dim_sources = symbolic.DimSources()

    # ------------------------------------------------------------------ API
    def import_graph(self, g: onnx.GraphProto, bound: dict[str, Value]) -> list[Known]:
        """Lower ``g`` with its inputs bound to ``bound``; return its outputs in order."""
        for init in g.initializer:
            self.env[init.name] = numpy_helper.to_array(init)
        self.env.update(bound)
        for v in bound.values():
            self.dim_sources.record(v)
        before = {n.name for n in self.graph.nodes()} | {v.name for v in self.graph.constants()}
        for node in g.node:
            self._lower(node)
        try:
            outs = [self.env[o.name] for o in g.output]
        except KeyError as e:
            raise ConversionError(f"ONNX graph output {e.args[0]!r} is never computed") from None
        self._prune(before, [x for x in outs if isinstance(x, Value)])
        return outs

    def materialize(self, x: Known, name: str) -> Value:
        """An IR value for an output that folded to a constant."""
        if isinstance(x, Value):
            return x
        if x.dtype == object:
            v = self.dim_sources.materialize(x, GraphBuilder(self.graph, origin=self.origin, name=name))
            if v is None:
                raise ConversionError(f"output {name!r} is a shape with symbolic dims {list(x.ravel())} that kcc "
                                      "cannot compute at run time; give the model static input shapes")
            return v
        return self.graph.add_const(x, name)

    # ------------------------------------------------------------ internals
    def _lower(self, node: onnx.NodeProto) -> None:
        where = node.name or node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOnnxOp(f"ONNX node {where!r} is op {node.op_type!r} of domain {node.domain!r}; "
                                    "kcc reads only the default ONNX domain", node.op_type, node.name)
        ins: list[Known | None] = []
        for n in node.input:
            if not n:
                ins.append(None)
            elif n in self.env:
                ins.append(self.env[n])
            else:
                raise ConversionError(f"ONNX node {where!r} reads {n!r}, which nothing produces before it")
        if node.op_type == "Constant":
            outs: list[Known] = [constant_value(node)]
        elif node.op_type == "Shape" and isinstance(ins[0], Value):
            outs = [self._shape(node, ins[0])]
        elif ins and all(isinstance(x, np.ndarray) or x is None for x in ins) and any(x is not None for x in ins) \
                and not _has_subgraph(node):
            outs = self._fold(node, ins)
        else:
            outs = self._call(node, ins, self.graph)
        for name, v in zip(node.output, outs):
            if name:
                self.env[name] = self._known(v)

    def _known(self, x: Known) -> Known:
        """An IR value whose entries the graph knows (kcc.ops.shape_values) is held as that array."""
        if not isinstance(x, Value) or x.is_const or x.type.value is None:
            return x
        value = x.type.value
        if symbolic.UNKNOWN in value:
            return x
        if all(isinstance(d, int) for d in value):
            arr = np.asarray(value, dtype=DTYPES[x.dtype])
        else:
            arr = np.empty(len(value), dtype=object)
            arr[:] = list(value)
        return arr.reshape(tuple(int(d) for d in x.shape))

    def _prune(self, before: set[str], keep: list[Value]) -> None:
        """Remove the nodes this import made that nothing reads (shape arithmetic folded after all)."""
        kept = {id(v) for v in keep}
        for n in reversed(self.graph.nodes()):
            if n.name in before:
                continue
            if all(not self.graph.uses(v) and not self.graph.is_output(v) and id(v) not in kept for v in n.outputs):
                self.graph.remove_node(n)
        for v in self.graph.constants():
            if v.name not in before and not self.graph.uses(v) and not self.graph.is_output(v) and id(v) not in kept:
                self.graph.remove_value(v)

    @staticmethod
    def unsupported_nodes(g: onnx.GraphProto) -> list[onnx.NodeProto]:
        """Nodes of ``g`` no handler knows (checked up front so the first such op is the one reported)."""
        special = ("Constant", "Shape")
        return [n for n in g.node if n.op_type not in special and (n.domain not in ("", "ai.onnx")
                                                                   or handler_for(n.op_type) is None)]

    def _handler(self, node: onnx.NodeProto):
        handler = handler_for(node.op_type)
        if handler is None:
            raise UnsupportedOnnxOp(f"ONNX node {node.name or node.op_type!r} has op {node.op_type!r}, which kcc's "
                                    "ONNX frontend cannot lower", node.op_type, node.name)
        return handler

    def _call(self, node: onnx.NodeProto, ins: list[Known | None], graph: Graph) -> list[Known]:
        handler = self._handler(node)
        name = self.name_prefix + (node.name or node.op_type)
        ctx = OnnxNodeContext(graph, node, ins, self.opset, self.origin or node.name or node.op_type, name,
                              self.shape_sources, self.options, self.dim_sources, importer=self)
        try:
            result = handler(ctx)
        except UnsupportedOnnxOp:
            raise
        except KccError as e:
            raise UnsupportedOnnxOp(str(e), node.op_type, node.name, reason=str(e)) from e
        except Exception as e:  # an IRError from a shape function: say which node
            err = ctx.fail(f"{type(e).__name__}: {e}")
            raise UnsupportedOnnxOp(str(err), node.op_type, node.name, reason=f"{type(e).__name__}: {e}") from e
        return list(result) if isinstance(result, (list, tuple)) else [result]

    def _fold(self, node: onnx.NodeProto, ins: list[Known | None]) -> list[Known]:
        """Evaluate a node whose inputs are all known at conversion time."""
        if any(x is not None and x.dtype == object for x in ins):
            attrs = OnnxNodeContext(self.graph, node, [], self.opset, "", "").attrs
            out = symbolic.evaluate(node.op_type, attrs, ins)
            if out is not None and not symbolic.has_unknown(out):
                return [out]
            # Not shape arithmetic: the handler builds real nodes (ConstantOfShape, Expand, ...)
            # from the symbolic shape, or says it cannot.
            return self._call(node, ins, self.graph)
        scratch = Graph("fold")
        results = self._call(node, ins, scratch)
        from kcc.interpreter import run

        env = run(scratch, {}, keep=True)
        return [r.const if r.is_const else env[r.name] for r in results]

    def _shape(self, node: onnx.NodeProto, x: Value) -> Known:
        dims = list(x.shape)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", None)
        dims = dims[start:end]
        if all(isinstance(d, int) for d in dims):
            return np.asarray(dims, dtype=np.int64)
        self.dim_sources.record(x)
        if symbolic.UNKNOWN in dims:
            # A dim no symbol names: read at run time (the IR shape op), not known now.
            return self._call(node, [x], self.graph)[0]
        out = np.asarray(dims, dtype=object)
        if start == 0 and end is None:
            self.shape_sources[id(out)] = x
        return out
