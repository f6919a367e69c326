"""Free an ONNX model's fixed batch dimension, so a whole batch of faces runs in one call.

Exported models often fix the batch (1, or 2 for a model made to compare a pair). The batch is
renamed ``N`` on inputs and outputs, stale inferred shapes are dropped, and every Reshape of an
activation whose target starts with the fixed batch gets 0 there (ONNX: copy that input dim).
Reshapes of constant tensors (weights broadcast to ``[1, C, 1, 1]``) are left alone.
"""

from __future__ import annotations


def free_batch(model: bytes) -> bytes:
    """Run once per model, at conversion: onnx (70 ms to import) is not loaded by commands that only
    run the converted file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(model)
    fixed = m.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    for value in (*m.graph.input, *m.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    inits = {i.name: i for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Reshape" and node.input[0] not in inits and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if fixed and shape[0] == fixed:
                shape[0] = 0
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    onnx.checker.check_model(m)
    return m.SerializeToString()
