"""Every model input that Keras's layers read must reach an output of the converted graph.

A layer lowered by a route that drops one of its tensors (a traced layer given
its positional input but not its ``padding_mask=`` keyword, a handler that does
not read an ``attention_mask``) would leave that model input with no effect on
the outputs: a GPT-2-style model would convert and silently ignore its padding
mask, wrong wherever the mask is 0 and right whenever a test feeds all ones.
After lowering, this check walks the IR back from the outputs; a model input that
some Keras layer call reads but that no output depends on is an error naming the
input and the layers that read it. (An input no Keras layer reads is unused in
Keras too and is left alone.)
"""
from __future__ import annotations

from kcc.errors import ConversionError
from kcc.ir import Graph, Value

from .spec import KerasModelSpec


def readers(spec: KerasModelSpec) -> dict[str, list[str]]:
    """Model input name -> the layers whose calls read it (model outputs count as readers)."""
    names = {r.layer for r in spec.inputs}
    out: dict[str, list[str]] = {name: [] for name in names}
    for layer in spec.layers:
        for call in layer.calls:
            for ref in call.input_refs():
                if ref.layer in names and layer.name not in out[ref.layer]:
                    out[ref.layer].append(layer.name)
    for ref in spec.outputs:
        if ref.layer in names:
            out[ref.layer].append("(model output)")
    return out


def reaching_outputs(graph: Graph) -> set[str]:
    """Names of the values some graph output depends on."""
    seen: set[str] = set()
    stack: list[Value] = list(graph.outputs)
    while stack:
        v = stack.pop()
        if v.name in seen:
            continue
        seen.add(v.name)
        node = graph.producer(v)
        if node is not None:
            stack.extend(x for x in node.inputs if x is not None)
    return seen


def check_inputs_used(spec: KerasModelSpec, graph: Graph) -> None:
    """Raise ConversionError for a model input Keras reads that no IR output depends on."""
    read = readers(spec)
    live = reaching_outputs(graph)
    for v in graph.inputs:
        layers = read.get(v.name)
        if layers and v.name not in live:
            raise ConversionError(
                f"model input {v.name!r} is read by layer(s) {', '.join(map(repr, layers))} in Keras, "
                "but no output of the converted graph depends on it: the conversion of those layers "
                "dropped it (a padding or attention mask ignored this way gives wrong outputs wherever "
                "it is 0). Convert the layer that reads it with a handler or custom_conversion_functions "
                "entry that uses it.")


__all__ = ["check_inputs_used", "readers", "reaching_outputs"]
