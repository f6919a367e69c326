"""dlib's face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``) converted to ONNX.

dlib stores a network as its own serialisation of the C++ layer objects, with no graph in the
file: the structure lives in the ``anet_type`` template of dlib's face recognition example and
Python binding (a ResNet-29: a 7x7 stem, 14 residual blocks in five levels, global average
pooling, a 128-d projection). This module rebuilds that structure, reads each layer's record
from the file in the order dlib wrote it (checking every layer's type, shape and version as it
goes, so a different network fails loudly) and emits the same computation as ONNX, with the
input normalisation of ``input_rgb_image_sized`` inside the graph: the model takes float32 RGB
crops ``(N, 150, 150, 3)`` in 0..255 and returns dlib's raw 128-d descriptor.

How dlib computes each part (read from dlib's ``dnn`` sources, which this reproduces):

- input: ``(pixel - channel mean) / 256``, means stored in the file (122.782, 117.001, 104.298);
- ``con``: cross-correlation with a bias; a strided 3x3 has no padding, a stride-1 3x3 pads 1;
- ``affine``: per-channel ``x * gamma + beta`` (batch norm frozen at training's end), folded
  here into the convolution before it;
- ``add_prev``: the sum of two tensors of different shapes is taken over the larger shape with
  the smaller one zero-padded at the end of each axis (channels, rows, columns). A downsampling
  block's 2x2 average pool of its input can be one pixel larger than its strided 3x3 branch (8x8
  input: 4x4 against 3x3), so the branch is padded with zeros at the bottom and right;
- ``fc_no_bias``: ``x @ W`` with ``W`` stored inputs x outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError

SIZE = 150


class _Reader:
    """dlib's serialisation primitives (dlib/serialize.h) over a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelError("dlib model file ends early: truncated or not a dlib network")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        """A control byte (low 4 bits: byte count, 0x80: negative), then the magnitude, little-endian."""
        control = self._take(1)[0]
        size = control & 0x0F
        if not 1 <= size <= 8:
            raise ModelError(f"dlib model file: bad integer at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def float(self) -> float:
        """dlib's portable float: an integer mantissa and a power-of-two exponent."""
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise ModelError(f"dlib model file: bad bool at byte {self.pos - 1}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        """A resizable_tensor, version 2: n, k, nr, nc, then little-endian float32 values."""
        self.expect(self.int(), (2,), "tensor")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), "<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        self.expect(self.int(), (1,), "alias_tensor")
        return tuple(self.int() for _ in range(4))

    def expect(self, got, allowed: tuple, what: str):
        if got not in allowed:
            raise ModelError(f"dlib model file: {what} is {got!r}, expected one of {allowed!r}; "
                             f"not dlib's ResNet face descriptor")
        return got


# -- the network's structure (anet_type), bottom-up -----------------------------------------------

@dataclass(frozen=True)
class _Op:
    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc", "tag", "skip"
    arg: tuple = ()


def _block(n: int, down: bool) -> list[_Op]:
    """``ares`` / ``ares_down``: two 3x3 convolutions with affine, plus the shortcut, then relu."""
    body = [_Op("tag", (1,)), _Op("con", (n, 3, 2 if down else 1)), _Op("affine"), _Op("relu"),
            _Op("con", (n, 3, 1)), _Op("affine")]
    if down:  # the shortcut: the block's input average-pooled 2x2, added to the branch (tag2)
        return body + [_Op("tag", (2,)), _Op("skip", (1,)), _Op("avg_pool", (2, 2)), _Op("add_prev", (2,)),
                       _Op("relu")]
    return body + [_Op("add_prev", (1,)), _Op("relu")]


def _levels() -> list[_Op]:
    ops = [_Op("con", (32, 7, 2)), _Op("affine"), _Op("relu"), _Op("max_pool", (3, 2))]
    for n, repeats, down in ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)):
        ops += _block(n, down)
        for _ in range(repeats - 1):
            ops += _block(n, False)
    return ops + [_Op("avg_pool", (0, 1)), _Op("fc", (128,))]


_ANET = _levels()


def _read_layer(r: _Reader, op: _Op) -> dict:
    """One layer's details record, checked against what ``op`` says it must be."""
    name = r.string()
    if op.kind == "con":
        r.expect(name, ("con_4", "con_5"), "layer type")
        params = r.tensor()
        filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
        n, k, s = op.arg
        r.expect((filters, nr, nc, stride_y, stride_x), ((n, k, k, s, s),), "convolution")
        fshape, _ = r.alias(), r.alias()  # filters, biases
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if name == "con_5" else True
        flat = params.ravel()
        size = int(np.prod(fshape))
        return {"w": flat[:size].reshape(fshape),
                "b": flat[size:size + fshape[0]] if use_bias else np.zeros(fshape[0], np.float32),
                "pads": [pad_y, pad_x, pad_y, pad_x]}
    if op.kind == "affine":
        r.expect(name, ("affine_",), "layer type")
        params = r.tensor().ravel()
        gshape, _ = r.alias(), r.alias()
        r.expect(r.int(), (0,), "affine mode (0: per channel)")
        k = int(np.prod(gshape))
        return {"gamma": params[:k], "beta": params[k:2 * k]}
    if op.kind in ("relu", "add_prev"):
        r.expect(name, (f"{op.kind}_",), "layer type")
        return {}
    if op.kind in ("max_pool", "avg_pool"):
        r.expect(name, (f"{op.kind}_2",), "layer type")
        window, stride = op.arg
        got = tuple(r.int() for _ in range(6))  # nr, nc, stride_y, stride_x, padding_y, padding_x
        pad = 0 if stride != 1 else window // 2
        r.expect(got, ((window, window, stride, stride, pad, pad),), op.kind)
        return {}
    if op.kind == "fc":
        r.expect(name, ("fc_2",), "layer type")
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        r.alias(), r.alias()
        r.expect(r.int(), (1,), "fc bias mode (1: no bias)")
        for _ in range(4):
            r.float()
        r.expect(outputs, op.arg, "descriptor size")
        return {"w": params[:inputs * outputs].reshape(inputs, outputs)}
    raise AssertionError(op.kind)


def parse(data: bytes) -> tuple[np.ndarray, list[tuple[_Op, dict]]]:
    """The input means and each layer's parameters, bottom-up, from a ``.dat`` file's bytes."""
    r = _Reader(data)
    r.expect(r.int(), (1,), "add_loss_layer version")
    r.expect(r.string(), ("loss_metric_2",), "loss layer")
    r.float(), r.float()  # margin, distance threshold: training only
    # every wrapper writes its version before its subnetwork: top-down to the layer on the input
    versions = []
    for op in reversed(_ANET[1:]):
        v = r.expect(r.int(), (1,) if op.kind in ("tag", "skip") else (1, 2), f"{op.kind} layer version")
        if op.kind not in ("tag", "skip"):
            versions.append(v)
    versions.append(r.expect(r.int(), (2, 3), "version of the layer on the input"))
    r.expect(r.string(), ("input_rgb_image_sized",), "input layer")
    means = np.array([r.float() for _ in range(3)], np.float32)
    r.expect((r.int(), r.int()), ((SIZE, SIZE),), "input size")
    # then each layer's record, bottom-up: details, three flags, its (empty) cached tensors
    layers = []
    for i, (op, version) in enumerate(zip((op for op in _ANET if op.kind not in ("tag", "skip")),
                                          reversed(versions))):
        layers.append((op, _read_layer(r, op)))
        for _ in range(3):
            r.bool()
        for _ in range(2 + (i == 0 or version == 2)):  # x_grad, cached_output, grad_final / params_grad
            r.tensor()
        if i == 0 and version == 3:
            r.int()  # sample expansion factor
    if r.pos != len(data):
        raise ModelError(f"dlib model file: {len(data) - r.pos} bytes left after the network")
    return means, layers


class _Graph:
    """The ONNX nodes and weights being built, with each tensor's static (C, H, W)."""

    def __init__(self) -> None:
        self.nodes, self.inits, self.shapes = [], [], {}

    def const(self, value: np.ndarray) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add(self, op: str, inputs: list[str], shape: tuple[int, int, int], **attrs) -> str:
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}{len(self.nodes)}", **attrs))
        self.shapes[out] = shape
        return out

    def pad_to(self, x: str, shape: tuple[int, int, int]) -> str:
        """``x`` zero-padded at the end of each axis up to ``shape`` (dlib's add of unequal tensors)."""
        extra = [t - s for t, s in zip(shape, self.shapes[x])]
        if not any(extra):
            return x
        return self.add("Pad", [x, self.const(np.array([0, 0, 0, 0, 0, *extra], np.int64))], shape)


def _pooled(size: int, window: int, stride: int) -> int:
    return (size - window) // stride + 1


def to_onnx(path: Path) -> bytes:
    """The ONNX model of the dlib face descriptor in ``path`` (see the module docstring)."""
    means, layers = parse(path.read_bytes())
    g = _Graph()
    g.shapes["crops"] = (3, SIZE, SIZE)
    x = g.add("Transpose", ["crops"], (3, SIZE, SIZE), perm=[0, 3, 1, 2])
    x = g.add("Sub", [x, g.const(means.reshape(1, 3, 1, 1))], g.shapes[x])
    x = g.add("Mul", [x, g.const(np.array(1 / 256, np.float32))], g.shapes[x])
    tags: dict[int, str] = {}
    params = iter(layers)
    for op in _ANET:
        c, h, w = g.shapes[x]
        if op.kind == "tag":
            tags[op.arg[0]] = x
            continue
        if op.kind == "skip":
            x = tags[op.arg[0]]
            continue
        if op.kind == "affine":  # folded into the convolution below it
            continue
        _, p = next(params)
        if op.kind == "con":
            _, affine = next(params)  # every convolution here is followed by its frozen batch norm
            gamma, beta = affine["gamma"], affine["beta"]
            n, k, s = op.arg
            pad = p["pads"][0]
            weight = p["w"] * gamma[:, None, None, None]
            x = g.add("Conv", [x, g.const(weight), g.const(p["b"] * gamma + beta)],
                      (n, _pooled(h + 2 * pad, k, s), _pooled(w + 2 * pad, k, s)),
                      kernel_shape=[k, k], strides=[s, s], pads=p["pads"])
        elif op.kind == "relu":
            x = g.add("Relu", [x], (c, h, w))
        elif op.kind == "max_pool":
            k, s = op.arg
            x = g.add("MaxPool", [x], (c, _pooled(h, k, s), _pooled(w, k, s)), kernel_shape=[k, k], strides=[s, s])
        elif op.kind == "avg_pool" and op.arg[0] == 0:  # avg_pool_everything
            x = g.add("GlobalAveragePool", [x], (c, 1, 1))
        elif op.kind == "avg_pool":
            k, s = op.arg
            x = g.add("AveragePool", [x], (c, _pooled(h, k, s), _pooled(w, k, s)), kernel_shape=[k, k],
                      strides=[s, s])
        elif op.kind == "add_prev":
            other = tags[op.arg[0]]
            shape = tuple(max(a, b) for a, b in zip(g.shapes[x], g.shapes[other]))
            x = g.add("Add", [g.pad_to(x, shape), g.pad_to(other, shape)], shape)
        elif op.kind == "fc":
            flat = g.add("Flatten", [x], (c * h * w, 1, 1), axis=1)
            x = g.add("MatMul", [flat, g.const(p["w"])], (op.arg[0], 1, 1))
    g.nodes[-1].output[0] = "descriptor"
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", 128])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="faceprint.zoo.dlib_dnn")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
