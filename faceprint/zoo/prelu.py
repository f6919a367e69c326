"""Rewrite per-channel PReLU so ONNX Runtime's CPU provider runs it at convolution speed.

ONNX Runtime's ``PRelu`` kernel broadcasts its slope element by element, and its blocked (NCHWc)
convolution layout does not cover it, so each one also costs a layout change each way: in
faceplugin's network the 33 PReLUs took 49% of the time and the layout changes 11% more. The same
holds for the form TensorFlow Lite exporters spell PReLU in, ``Relu(x) + k * (x - Abs(x))`` with
k = s / 2 (expo-mobilefacenet: 48% of its time). Both are written as

    Relu(x) + DepthwiseConv(Relu(DepthwiseConv(x, -1)), -s)

so every op stays in the blocked layout (the 1x1 depthwise convolutions scale each channel). The
result is bit for bit the same: (-s) * (-x) is exactly s * x, doubling and halving are exact, and
adding a zero changes nothing. Measured: docs/models.md.
"""

from __future__ import annotations


def prelu_as_convs(model: bytes) -> bytes:
    """The model with every PReLU on a feature map (one slope per channel) rewritten; others (after
    a fully connected layer, say) are left as they are. Run at conversion, like ``free_batch``: onnx
    is not imported by commands that only run the converted file."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_from_string(model)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    made = {n.output[0]: n for n in m.graph.node}
    readers: dict[str, int] = {o.name: 1 for o in m.graph.output}
    for n in m.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1

    def constant(name: str) -> np.ndarray | None:
        """An initializer, or a Reshape of one to another constant shape."""
        if name in inits:
            return inits[name]
        node = made.get(name)
        if node is not None and node.op_type == "Reshape" and all(i in inits for i in node.input):
            return inits[node.input[0]].reshape(inits[node.input[1]])
        return None

    def per_channel(slope: np.ndarray | None) -> np.ndarray | None:
        """The slope as one value per channel of an NCHW feature map, or None if it is not that (a
        single shared slope too: the depthwise weights need the channel count, which it does not give)."""
        if slope is None or slope.ndim not in (3, 4) or slope.size < 2:
            return None
        if slope.shape[-2:] != (1, 1) or slope.shape[:-3] not in ((), (1,)):
            return None
        return slope.reshape(-1).astype(np.float32)

    replaced: dict[str, tuple[str, np.ndarray]] = {}  # output -> (input, slope)
    dropped: set[int] = set()
    for node in m.graph.node:
        if node.op_type == "PRelu" and (s := per_channel(constant(node.input[1]))) is not None:
            replaced[node.output[0]] = (node.input[0], s)
            dropped.add(id(node))
        elif node.op_type == "Add":  # Relu(x) + k * (x - Abs(x))
            relu, mul = (made.get(i) for i in node.input)
            if relu is not None and relu.op_type == "Mul":
                relu, mul = mul, relu
            if relu is None or mul is None or relu.op_type != "Relu" or mul.op_type != "Mul":
                continue
            x = relu.input[0]
            k, other = constant(mul.input[0]), mul.input[1]
            if k is None:
                k, other = constant(mul.input[1]), mul.input[0]
            sub = made.get(other)
            absolute = made.get(sub.input[1]) if sub is not None and sub.op_type == "Sub" else None
            if absolute is None or (s := per_channel(k)) is None or sub.input[0] != x \
                    or absolute.op_type != "Abs" or absolute.input[0] != x \
                    or any(readers[p.output[0]] != 1 for p in (relu, mul, sub, absolute)):
                continue  # not the pattern, or a part of it that something else reads too
            replaced[node.output[0]] = (x, 2 * s)
            dropped |= {id(node), id(relu), id(mul), id(sub), id(absolute)}
    nodes = []
    for node in m.graph.node:
        if node.output[0] in replaced:
            x, s = replaced[node.output[0]]
            y, c = node.output[0], s.size
            k = f"{y}.prelu"
            m.graph.initializer.extend([numpy_helper.from_array(-np.ones((c, 1, 1, 1), np.float32), f"{k}.neg"),
                                        numpy_helper.from_array(-s.reshape(c, 1, 1, 1), f"{k}.slope")])
            nodes += [
                helper.make_node("Conv", [x, f"{k}.neg"], [f"{k}.negx"], group=c, kernel_shape=[1, 1]),
                helper.make_node("Relu", [f"{k}.negx"], [f"{k}.below"]),
                helper.make_node("Conv", [f"{k}.below", f"{k}.slope"], [f"{k}.scaled"], group=c, kernel_shape=[1, 1]),
                helper.make_node("Relu", [x], [f"{k}.above"]),
                helper.make_node("Add", [f"{k}.above", f"{k}.scaled"], [y]),
            ]
        elif id(node) not in dropped:
            nodes.append(node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    _drop_unused(m)
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _drop_unused(m) -> None:
    """Remove nodes whose outputs nothing reads (the slopes' Reshapes), then unread initializers
    (old models list initializers among the graph's inputs too: those go with them)."""
    while True:
        read = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
        dead = [n for n in m.graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            m.graph.node.remove(n)
    read = {i for n in m.graph.node for i in n.input}
    unread = {i.name for i in m.graph.initializer} - read
    for field in (m.graph.initializer, m.graph.input):
        kept = [v for v in field if v.name not in unread]
        del field[:]
        field.extend(kept)
