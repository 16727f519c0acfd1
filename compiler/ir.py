"""kcc's intermediate representation: a dataflow graph of typed values and op nodes.

The graph is bipartite: ``Value`` objects and ``Node`` objects are the
vertices, an edge ``value -> node`` (at an input slot) is a use and an edge
``node -> value`` is a definition. Everybody outside ``kcc.ir`` works through
``Graph``'s methods and the typed ``Node``/``Value`` objects. The edges live in
two private dicts (each value's producer, each value's uses) rather than in a
networkx ``MultiDiGraph``: networkx's per-edge bookkeeping and its generic
topological sort were most of the compile time of a large model
(bench/graph_scaling.py); ``to_networkx()`` still builds one, for drawing.

Layout (the one decision, made here and nowhere else -- see docs/design.md):
every tensor with a channel axis is **channels-first**. A Keras tensor of rank
r >= 3 (batch, d1, ..., d(r-2), channels) is held in the IR as
(batch, channels, d1, ..., d(r-2)); rank <= 2 tensors are unchanged. Ops are
defined on that layout (conv is NCHW, ``dense`` and ``softmax`` work on axis 1,
...). The Keras frontend applies the axis mapping once, at import; the model
boundary keeps the Keras (channels-last) layout only when the user asks for it,
through explicit ``transpose`` nodes at the inputs and outputs. The permutations
and the axis mapping are in ``kcc.layout``.

Shapes are tuples of dims; a dim is an ``int`` or a ``str`` symbol (``"N"`` for
the batch dim, ``"?"`` for a dim derived from symbols). Constants are numpy
arrays owned by the graph (``Value.const``), never Python lists.

Order is deterministic: ``Graph.nodes()`` is the lexicographic topological sort
(of values and nodes, keyed by creation order), so printing or emitting the same
graph twice gives the same text.

Every change goes through ``Graph``'s methods, which keep the graph consistent
and record what they touched: ``validate_changes()`` re-checks only that (the
pipeline calls it after every pass), ``validate()`` checks everything.
"""
from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from kcc.errors import IRError
from kcc.ops.registry import get_op
from kcc.ops.shape_values import const_value
from kcc.tensor_type import DTYPES, Dim, Shape, TensorType, dtype_of, is_static
from kcc.training import Classifier, TrainingConfig

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["DTYPES", "Dim", "Shape", "TensorType", "dtype_of", "is_static", "Value", "Node", "Graph"]

_seq = itertools.count()


class Value:
    """A tensor in the graph: a graph input, a constant, or a node's output."""

    __slots__ = ("name", "type", "const", "_seq")

    def __init__(self, name: str, type: TensorType, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.const = const
        self._seq = next(_seq)

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One op application. ``inputs`` may hold ``None`` for omitted optional inputs."""

    __slots__ = ("name", "op", "attrs", "inputs", "outputs", "origin", "_seq")

    def __init__(self, name: str, op: str, attrs: dict[str, Any], inputs: list[Value | None],
                 outputs: list[Value], origin: str | None):
        self.name = name
        self.op = op
        self.attrs = attrs
        self.inputs = inputs
        self.outputs = outputs
        # Where the node came from (a Keras layer name, an ONNX node name, ...):
        # error messages name it.
        self.origin = origin
        self._seq = next(_seq)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRError(f"node {self.name} ({self.op}) has {len(self.outputs)} outputs")
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op})"


class Graph:
    """A model: inputs, constants, nodes and outputs, kept consistent by its methods."""

    def __init__(self, name: str = "model"):
        self.name = name
        self._values: dict[str, Value] = {}
        self._nodes: dict[str, Node] = {}
        # The edges: each node-defined value's producer, and each value's uses as
        # an insertion-ordered set of (node, input slot).
        self._producer: dict[Value, Node] = {}
        self._uses: dict[Value, dict[tuple[Node, int], None]] = {}
        # How many nodes of each op (a rewrite pass whose ops are absent skips the graph).
        self._op_count: dict[str, int] = {}
        # What changed since the last validation (validate_changes()): nodes whose
        # output types must be inferred again, values whose constant must match its type.
        self._dirty_nodes: dict[Node, None] = {}
        self._dirty_values: dict[Value, None] = {}
        self._inputs: list[Value] = []
        self._outputs: list[Value] = []
        # Graph outputs have names of their own (the model's output names), so a
        # pass may replace the value behind an output without renaming anything.
        self._output_names: list[str] = []
        self._order: list[Node] | None = None
        self._names: dict[str, itertools.count] = {}
        # Free-form facts a frontend records for backends (e.g. the Keras layout
        # of each boundary value); copied with the graph.
        self.meta: dict[str, Any] = {}
        # The source model's loss, optimizer and trainable layers (a compiled Keras
        # model); read by backends that emit trainable models. Copied with the graph.
        self.training: TrainingConfig | None = None
        # A classifier's labels and label/probability outputs (Core ML sources).
        self.classifier: Classifier | None = None
        # The source model's descriptive metadata (author, license, description,
        # version, user-defined keys); backends that can carry it do.
        self.metadata: dict[str, str] = {}

    # ---------------------------------------------------------------- naming
    def fresh_name(self, hint: str, *, node: bool = False) -> str:
        """A value name (or with ``node=True`` a node name) not yet used, derived from ``hint``.

        Values and nodes have separate namespaces: a node and its output usually
        share a name.
        """
        hint = hint or "t"
        taken = self._nodes if node else self._values
        if hint not in taken:
            return hint
        counter = self._names.setdefault(("n:" if node else "v:") + hint, itertools.count(1))
        while True:
            name = f"{hint}_{next(counter)}"
            if name not in taken:
                return name

    # ---------------------------------------------------------- construction
    def add_input(self, name: str, type: TensorType) -> Value:
        if name in self._values:
            raise IRError(f"value name {name!r} is taken")
        v = Value(name, type)
        self._add_value(v)
        self._inputs.append(v)
        return v

    def add_const(self, array: np.ndarray, name: str = "c") -> Value:
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        v = Value(self.fresh_name(name), TensorType(array.shape, dtype_of(array), const_value(array)), array)
        self._add_value(v)
        return v

    def add_node(self, op: str, inputs: Sequence[Value | None], attrs: dict[str, Any] | None = None,
                 *, name: str | None = None, output_names: Sequence[str] | None = None,
                 origin: str | None = None) -> Node:
        """Add a node; its output types come from the op's shape function."""

        opdef = get_op(op)
        attrs = opdef.normalize_attrs(attrs or {}, where=name or op)
        inputs = list(inputs)
        if not opdef.variadic and len(inputs) < len(opdef.inputs):
            # Omitted optional inputs are explicit Nones: every node of an op has
            # the same number of slots, so patterns and emitters can index them.
            inputs += [None] * (len(opdef.inputs) - len(inputs))
        values = self._values
        for v in inputs:
            if v is not None and values.get(v.name) is not v:
                raise IRError(f"input {v.name!r} of new {op} node is not in graph {self.name!r}")
        types = opdef.infer_types(attrs, [None if v is None else v.type for v in inputs], where=name or op)
        node_name = self.fresh_name(name or op, node=True)
        if output_names is None:
            output_names = [node_name] if len(types) == 1 else [f"{node_name}:{i}" for i in range(len(types))]
        if len(output_names) != len(types):
            raise IRError(f"{op} produces {len(types)} outputs, {len(output_names)} names given")
        outputs = [Value(self.fresh_name(n), t) for n, t in zip(output_names, types)]
        node = Node(node_name, op, attrs, inputs, outputs, origin)
        self._insert_node(node)
        return node

    def _insert_node(self, node: Node) -> None:
        """Record ``node`` (inputs in the graph, fresh outputs) and its edges."""
        self._nodes[node.name] = node
        self._op_count[node.op] = self._op_count.get(node.op, 0) + 1
        uses = self._uses
        for i, v in enumerate(node.inputs):
            if v is not None:
                uses[v][(node, i)] = None
        for v in node.outputs:
            self._add_value(v)
            self._producer[v] = node
        self._order = None

    def _add_value(self, v: Value) -> None:
        if v.name in self._values:
            raise IRError(f"value name {v.name!r} is taken")
        self._values[v.name] = v
        self._uses[v] = {}
        self._order = None

    def set_outputs(self, outputs: Iterable[Value], names: Iterable[str] | None = None) -> None:
        outputs = list(outputs)
        names = [v.name for v in outputs] if names is None else list(names)
        if len(names) != len(outputs) or len(set(names)) != len(names):
            raise IRError(f"output names {names} must be unique, one per output")
        for v in outputs:
            if self._values.get(v.name) is not v:
                raise IRError(f"output {v.name!r} is not in the graph")
        self._outputs = outputs
        self._output_names = names

    # -------------------------------------------------------------- queries
    @property
    def inputs(self) -> list[Value]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[Value]:
        return list(self._outputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def set_output_names(self, names: Iterable[str]) -> None:
        self.set_outputs(self._outputs, names)

    def value(self, name: str) -> Value:
        return self._values[name]

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def has_value(self, name: str) -> bool:
        return name in self._values

    def values(self) -> list[Value]:
        return sorted(self._values.values(), key=lambda v: v._seq)

    def constants(self) -> list[Value]:
        return [v for v in self.values() if v.is_const]

    def nodes(self) -> list[Node]:
        """All nodes in deterministic topological order (creation order breaks ties)."""
        if self._order is None:
            self._order = self._sorted_nodes()
        return list(self._order)

    def _sorted_nodes(self) -> list[Node]:
        """The lexicographic topological sort of the bipartite graph, nodes only.

        Kahn's algorithm with a heap keyed by creation order (``_seq``, unique),
        over values and nodes: a value is ready when its producer has been
        taken, a node when all its input edges have (a value read at two slots
        is two edges). This is the order networkx's
        ``lexicographical_topological_sort`` gives for the same graph.
        """
        producer, uses = self._producer, self._uses
        heap: list[tuple[int, Any]] = [(v._seq, v) for v in self._values.values() if v not in producer]
        waiting: dict[Node, int] = {}
        for n in self._nodes.values():
            d = sum(1 for v in n.inputs if v is not None)
            if d:
                waiting[n] = d
            else:
                heap.append((n._seq, n))
        heapq.heapify(heap)
        order: list[Node] = []
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            _, item = pop(heap)
            if type(item) is Node:
                order.append(item)
                outs = item.outputs
                if len(outs) != 1:
                    for v in outs:
                        push(heap, (v._seq, v))
                    continue
                # A node's one output was created just before it, so it sorts below
                # everything still waiting: it is taken next.
                item = outs[0]
            for n, _ in uses[item]:
                left = waiting[n] - 1
                if left:
                    waiting[n] = left
                else:
                    del waiting[n]
                    push(heap, (n._seq, n))
        if waiting:
            raise IRError(f"graph {self.name!r} has a cycle")
        return order

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __len__(self) -> int:
        return len(self._nodes)

    def op_types(self) -> list[str]:
        return [n.op for n in self.nodes()]

    def has_op(self, *ops: str) -> bool:
        """Whether any node of the graph applies one of ``ops``."""
        count = self._op_count
        return any(count.get(op) for op in ops)

    def producer(self, v: Value) -> Node | None:
        return self._producer.get(v)

    def uses(self, v: Value) -> list[tuple[Node, int]]:
        """(node, input slot) pairs reading ``v``, in node order."""
        found = self._uses.get(v)
        if not found:
            return []
        if len(found) == 1:
            return list(found)
        return sorted(found, key=lambda nk: (nk[0]._seq, nk[1]))

    def users(self, v: Value) -> list[Node]:
        found = self._uses.get(v)
        if not found:
            return []
        if len(found) == 1:
            return [next(iter(found))[0]]
        seen: dict[str, Node] = {}
        for n, _ in self.uses(v):
            seen.setdefault(n.name, n)
        return list(seen.values())

    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self._outputs)

    def single_user(self, v: Value) -> Node | None:
        """The one node reading ``v`` when ``v`` has exactly one user and is no graph output."""
        users = self.users(v)
        return users[0] if len(users) == 1 and not self.is_output(v) else None

    # ------------------------------------------------------------- mutation
    def set_input(self, node: Node, slot: int, v: Value | None) -> None:
        old = node.inputs[slot]
        if old is not None:
            del self._uses[old][(node, slot)]
        node.inputs[slot] = v
        if v is not None:
            if self._values.get(v.name) is not v:
                raise IRError(f"{v.name!r} is not in the graph")
            self._uses[v][(node, slot)] = None
        self._dirty_nodes[node] = None
        self._order = None

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every reader of ``old`` (and the graph outputs) read ``new``."""
        if old is new:
            return
        for node, slot in self.uses(old):
            self.set_input(node, slot, new)
        self._outputs = [new if o is old else o for o in self._outputs]

    def remove_node(self, node: Node) -> None:
        """Remove a node whose outputs are no longer read."""
        for v in node.outputs:
            if self._uses[v] or self.is_output(v):
                raise IRError(f"cannot remove {node.name}: {v.name} is still used")
        for v in node.outputs:
            del self._uses[v]
            del self._producer[v]
            del self._values[v.name]
            self._dirty_values.pop(v, None)
        for i, v in enumerate(node.inputs):
            if v is not None:
                del self._uses[v][(node, i)]
        del self._nodes[node.name]
        self._op_count[node.op] -= 1
        self._dirty_nodes.pop(node, None)
        self._order = None

    def remove_value(self, v: Value) -> None:
        """Remove an unused constant or graph input."""
        if self.uses(v) or self.is_output(v) or self.producer(v) is not None:
            raise IRError(f"cannot remove {v.name}: still used or produced")
        del self._uses[v]
        del self._values[v.name]
        self._dirty_values.pop(v, None)
        self._inputs = [i for i in self._inputs if i is not v]
        self._order = None

    def set_attr(self, node: Node, key: str, value: Any) -> None:
        """Change an attribute; re-checks it against the op's declaration."""

        attrs = dict(node.attrs)
        attrs[key] = value
        node.attrs = get_op(node.op).normalize_attrs(attrs, where=node.name)
        self._dirty_nodes[node] = None

    def retype(self, v: Value, type: TensorType) -> None:
        """Change a value's type (for a pass that rewrites a producer's meaning)."""
        v.type = type
        # Its producer and readers must agree with the new type again.
        dirty = self._dirty_nodes
        prod = self._producer.get(v)
        if prod is not None:
            dirty[prod] = None
        for n, _ in self._uses.get(v, ()):
            dirty[n] = None
        self._dirty_values[v] = None

    def rename_value(self, v: Value, name: str) -> None:
        if name == v.name:
            return
        if name in self._values:
            raise IRError(f"value name {name!r} is taken")
        del self._values[v.name]
        v.name = name
        self._values[name] = v

    # ---------------------------------------------------------- whole graph
    def copy(self) -> "Graph":
        """A deep copy (constants are shared: they are never mutated in place)."""
        g = Graph(self.name)
        g.meta = dict(self.meta)
        g.training = self.training
        g.classifier = self.classifier
        g.metadata = dict(self.metadata)
        vmap: dict[int, Value] = {}

        def clone(v: Value) -> Value:
            if id(v) not in vmap:
                c = Value(v.name, v.type, v.const)
                c._seq = v._seq
                vmap[id(v)] = c
                g._add_value(c)
            return vmap[id(v)]

        for v in self._inputs:
            g._inputs.append(clone(v))
        for v in self.values():
            if v.is_const:
                clone(v)
        for n in self.nodes():
            ins = [None if v is None else clone(v) for v in n.inputs]
            outs = []
            for v in n.outputs:
                c = Value(v.name, v.type, v.const)
                c._seq = v._seq
                vmap[id(v)] = c
                outs.append(c)
            m = Node(n.name, n.op, dict(n.attrs), ins, outs, n.origin)
            m._seq = n._seq
            g._insert_node(m)
        g._outputs = [vmap[id(v)] for v in self._outputs]
        g._output_names = list(self._output_names)
        # What this graph had not validated yet, the copy has not either.
        g._dirty_nodes = {g._nodes[n.name]: None for n in self._dirty_nodes}
        g._dirty_values = {g._values[v.name]: None for v in self._dirty_values}
        return g

    def validate(self) -> None:
        """Check the invariants; raise IRError naming the first broken one.

        Topological order (no cycle), no dangling use (every input is in the graph
        and is produced, a constant or a graph input), unique names, one producer
        per value, outputs present, attributes typed per the op's declaration, and
        every node's output types equal to what its op's shape function gives.
        """

        order = self.nodes()
        seen_names: set[str] = set()
        inputs = set(self._inputs)
        for v in self._values.values():
            if v.name in seen_names:
                raise IRError(f"duplicate value name {v.name!r}")
            seen_names.add(v.name)
            if v not in self._producer and not v.is_const and v not in inputs:
                raise IRError(f"value {v.name} has no producer and is neither input nor constant")
            self._check_const(v)
        node_names: set[str] = set()
        for n in order:
            if n.name in node_names:
                raise IRError(f"duplicate node name {n.name!r}")
            node_names.add(n.name)
            get_op(n.op).normalize_attrs(n.attrs, where=n.name)
            self._check_node(n)
        self._check_outputs()
        self._dirty_nodes.clear()
        self._dirty_values.clear()

    def validate_changes(self) -> None:
        """``validate()`` for what changed since the last validation, in time proportional to it.

        Every change goes through this class's methods, and all but these keep
        the invariants by construction: a node added gets the types its op's
        shape function gives and normalized attributes; names stay unique;
        values are removed only when unused. What a change can break is
        checked here: the order (a rewired input can close a cycle), the
        output types of the nodes whose inputs, attributes or types changed,
        the constants that were retyped, and the graph outputs.
        """
        if self._order is None:
            self._order = self._sorted_nodes()
        for v in self._dirty_values:
            self._check_const(v)
        for n in sorted(self._dirty_nodes, key=lambda n: n._seq):
            self._check_node(n)
        self._check_outputs()
        self._dirty_nodes.clear()
        self._dirty_values.clear()

    def _check_const(self, v: Value) -> None:
        if v.is_const and (tuple(v.const.shape) != v.shape or dtype_of(v.const) != v.dtype):
            raise IRError(f"constant {v.name} holds {v.const.dtype}{list(v.const.shape)} but is typed {v.type}")

    def _check_node(self, n: Node) -> None:
        """``n``'s inputs are in the graph and its outputs typed as its op's shape function says."""
        for i, v in enumerate(n.inputs):
            if v is not None and self._values.get(v.name) is not v:
                raise IRError(f"{n.name} input {i} ({v.name}) is not in the graph")
        expected = get_op(n.op).infer_types(n.attrs, [None if v is None else v.type for v in n.inputs],
                                            where=n.name)
        actual = [v.type for v in n.outputs]
        if expected != actual:
            raise IRError(
                f"{n.name} ({n.op}) outputs are typed {[str(t) for t in actual]} but its shape "
                f"function gives {[str(t) for t in expected]}")

    def _check_outputs(self) -> None:
        for v in self._outputs:
            if self._values.get(v.name) is not v:
                raise IRError(f"graph output {v.name} is not in the graph")
        if not self._outputs:
            raise IRError("graph has no outputs")

    def to_networkx(self) -> "nx.MultiDiGraph":
        """The graph as a networkx ``MultiDiGraph`` of Value and Node vertices, for drawing.

        Built on each call (the IR does not keep one): an edge ``value -> node``
        keyed by the input slot is a use, ``node -> value`` keyed by the output
        index a definition.
        """
        import networkx as nx

        g = nx.MultiDiGraph()
        g.add_nodes_from(self.values())
        for n in sorted(self._nodes.values(), key=lambda n: n._seq):
            g.add_node(n)
            for i, v in enumerate(n.inputs):
                if v is not None:
                    g.add_edge(v, n, key=i)
            for i, v in enumerate(n.outputs):
                g.add_edge(n, v, key=i)
        return g
