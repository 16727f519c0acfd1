"""kcc.formats: facts about model formats that a frontend and a backend of that format share.

A frontend and a backend never import each other; what both must agree on (the
ONNX op names and attributes each IR op maps to, element types, opsets) lives
here, once. Modules here import only the IR and its op registry.
"""
