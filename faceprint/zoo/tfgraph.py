"""Convert TensorFlow graphs to ONNX without TensorFlow.

Two front ends read a graph into one small intermediate form (a list of :class:`TFNode` plus
constant arrays); one back end maps TensorFlow ops onto ONNX ops:

* TF.js graph models: ``model.json`` holds a GraphDef spelled as JSON and a ``weightsManifest``
  that describes the constants as little-endian binary shards (float32, int32, or quantised
  uint8/uint16/float16 with ``scale``/``min`` metadata).
* Frozen GraphDef protobufs (``.pb``): decoded by a minimal protobuf wire-format reader that
  knows only the GraphDef, NodeDef, AttrValue, TensorProto and TensorShapeProto fields needed.

TensorFlow image ops are NHWC while ONNX convolutions are NCHW. Rather than wrapping every
convolution in a pair of transposes, the back end tracks each 4-d tensor's layout: convolutions
leave their result in NCHW, element-wise ops and per-channel constants follow it, and a tensor
is transposed back to NHWC only where an op depends on axis order (Reshape, MatMul, Softmax...).
The ONNX model keeps TensorFlow's NHWC input, so callers feed what the original model took.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError

OPSET = 17

# --------------------------------------------------------------------------------------------
# Intermediate form
# --------------------------------------------------------------------------------------------

#: TensorFlow's DataType enum values for the types these graphs use.
DT = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16,
}
_DT_NAMES = {
    "DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5, "DT_INT8": 6,
    "DT_STRING": 7, "DT_INT64": 9, "DT_BOOL": 10, "DT_UINT16": 17, "DT_HALF": 19,
}


@dataclass
class TFNode:
    """One TensorFlow node, attributes already decoded to Python values.

    Attribute values: ``bytes`` (s), ``int`` (i and type), ``float`` (f), ``bool`` (b),
    ``list`` (list), ``list[int]`` shape (in a ``("shape", dims)`` tuple) or ``np.ndarray`` (tensor).
    """

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Front end B: protobuf wire format
# --------------------------------------------------------------------------------------------


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ModelError("corrupt protobuf: varint too long")


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)`` for each field of one serialized message.

    Varints and fixed-width fields come back as ``int`` (fixed ones as raw unsigned bits);
    length-delimited fields as a ``memoryview`` so nested messages are not copied.
    """
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ModelError("corrupt protobuf: field runs past the end of its message")
            val = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            val = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise ModelError(f"unsupported protobuf wire type {wire} (field {num})")
        yield num, wire, val
    if pos != end:
        raise ModelError("corrupt protobuf: truncated message")


def _signed(v: int) -> int:
    """int32/int64 varints are two's complement in 64 bits."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(wire: int, val) -> list[int]:
    if wire == 0:
        return [_signed(val)]
    out, pos = [], 0
    while pos < len(val):
        v, pos = _varint(val, pos)
        out.append(_signed(v))
    return out


def _packed_fixed(wire: int, val, fmt: str) -> list:
    if wire == 2:
        return list(np.frombuffer(bytes(val), dtype=np.dtype(fmt)))
    size = np.dtype(fmt).itemsize
    return [np.frombuffer(val.to_bytes(size, "little"), dtype=np.dtype(fmt))[0]]


def _shape_proto(buf) -> list[int] | None:
    dims: list[int] = []
    for num, _, val in iter_fields(buf):
        if num == 2:
            size = -1
            for n2, _, v2 in iter_fields(val):
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
        elif num == 3 and val:
            return None  # unknown rank
    return dims


def _tensor_proto(buf) -> np.ndarray:
    """A TensorProto as a numpy array (tensor_content, or the typed *_val fields, broadcast)."""
    dtype_enum, shape, content = 1, [], None
    vals: list = []
    for num, wire, val in iter_fields(buf):
        if num == 1:
            dtype_enum = val
        elif num == 2:
            shape = _shape_proto(val) or []
        elif num == 4:
            content = bytes(val)
        elif num == 5:
            vals += _packed_fixed(wire, val, "<f4")
        elif num == 6:
            vals += _packed_fixed(wire, val, "<f8")
        elif num in (7, 10, 11):  # int_val, int64_val, bool_val
            vals += _packed_varints(wire, val)
        elif num == 13:  # half_val: float16 bits stored in int32 varints
            vals += [np.uint16(v & 0xFFFF).view(np.float16) for v in _packed_varints(wire, val)]
        elif num == 8:
            vals.append(bytes(val))
    if dtype_enum == 7:  # strings: kept as Python bytes, only usable by constant folding
        return np.array(vals, dtype=object).reshape(shape if vals else [0])
    if dtype_enum not in DT:
        return None  # a type no image model computes with; an error only if a converted op uses it
    dtype = np.dtype(DT[dtype_enum]).newbyteorder("<")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=dtype).astype(dtype.newbyteorder("="))
    elif vals:
        arr = np.asarray(vals).astype(dtype.newbyteorder("="))
        if arr.size != count:  # TF stores a repeated value once
            arr = np.concatenate([arr, np.full(count - arr.size, arr[-1], dtype=arr.dtype)])
    else:
        arr = np.zeros(count, dtype=dtype.newbyteorder("="))
    return arr.reshape(shape)


def _list_value(buf) -> list:
    out: list = []
    for num, wire, val in iter_fields(buf):
        if num == 2:
            out.append(bytes(val))
        elif num in (3, 5, 6):  # i, b, type
            vs = _packed_varints(wire, val)
            out += [bool(v) for v in vs] if num == 5 else vs
        elif num == 4:
            out += [float(v) for v in _packed_fixed(wire, val, "<f4")]
        elif num == 7:
            out.append(("shape", _shape_proto(val)))
        elif num == 8:
            out.append(_tensor_proto(val))
    return out


def _attr_value(buf):
    for num, wire, val in iter_fields(buf):
        if num == 1:
            return _list_value(val)
        if num == 2:
            return bytes(val)
        if num == 3:
            return _signed(val)
        if num == 4:
            return float(np.frombuffer(val.to_bytes(4, "little"), "<f4")[0])
        if num == 5:
            return bool(val)
        if num == 6:
            return int(val)
        if num == 7:
            return ("shape", _shape_proto(val))
        if num == 8:
            return _tensor_proto(val)
        if num == 9:
            return bytes(val).decode()
    return None


def _node_def(buf) -> TFNode:
    node = TFNode("", "")
    for num, _, val in iter_fields(buf):
        if num == 1:
            node.name = bytes(val).decode()
        elif num == 2:
            node.op = bytes(val).decode()
        elif num == 3:
            node.inputs.append(bytes(val).decode())
        elif num == 5:
            key, value = "", None
            for n2, _, v2 in iter_fields(val):
                if n2 == 1:
                    key = bytes(v2).decode()
                elif n2 == 2:
                    value = _attr_value(v2)
            node.attr[key] = value
    return node


def parse_graphdef(data: bytes) -> list[TFNode]:
    """The nodes of a serialized ``tensorflow.GraphDef``."""
    nodes = [_node_def(val) for num, _, val in iter_fields(data) if num == 1]
    if not nodes:
        raise ModelError("no nodes found: not a TensorFlow GraphDef")
    return nodes


# --------------------------------------------------------------------------------------------
# Front end A: TF.js graph model JSON + weight shards
# --------------------------------------------------------------------------------------------

_QUANT_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}
_PLAIN_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "int64": np.int64}


def decode_weights(manifest: list[dict], read_shard) -> dict[str, np.ndarray]:
    """Decode a TF.js ``weightsManifest`` into arrays.

    Each group's shard files are concatenated and its weights read back to back. A quantised
    weight stores ``quantization.dtype`` values: float16 is widened, uint8/uint16 map through
    ``q * scale + min`` (or a lookup ``table`` for uint8 with ``float16`` entries when present).
    ``read_shard(path)`` returns a shard's bytes.
    """
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join(read_shard(p) for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            shape = [int(s) for s in w.get("shape", [])]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if w["dtype"] == "string":
                raise ModelError(f"string weight {w['name']!r} is not supported")
            if q:
                qtype = np.dtype(_QUANT_DTYPES[q["dtype"]]).newbyteorder("<")
                raw = np.frombuffer(data, dtype=qtype, count=count, offset=pos)
                pos += count * qtype.itemsize
                target = _PLAIN_DTYPES.get(q.get("original_dtype", w["dtype"]), np.float32)
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:
                    arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
                arr = arr.astype(target) if target != np.float32 else arr
            else:
                dtype = np.dtype(_PLAIN_DTYPES[w["dtype"]]).newbyteorder("<")
                arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(dtype.newbyteorder("="))
                pos += count * dtype.itemsize
            out[w["name"]] = arr.reshape(shape)
        if pos != len(data):
            raise ModelError(f"weight shards {group['paths']} hold {len(data)} bytes, manifest describes {pos}")
    return out


def _json_attr(v: dict):
    if "list" in v:
        lst = v["list"]
        if "s" in lst:
            return [base64.b64decode(s) for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        if "b" in lst:
            return [bool(b) for b in lst["b"]]
        if "type" in lst:
            return [_DT_NAMES.get(t, 0) for t in lst["type"]]
        return []
    if "s" in v:
        return base64.b64decode(v["s"])
    if "i" in v:
        return int(v["i"])
    if "f" in v:
        return float(v["f"])
    if "b" in v:
        return bool(v["b"])
    if "type" in v:
        return _DT_NAMES.get(v["type"], 0)
    if "shape" in v:
        shp = v["shape"]
        return ("shape", None if shp.get("unknownRank") else [int(d.get("size", -1)) for d in shp.get("dim", [])])
    if "tensor" in v:
        return v["tensor"]  # resolved against the weights by the caller
    return None


def parse_tfjs(model_json: dict, read_shard) -> tuple[list[TFNode], dict]:
    """Nodes (Const values filled from the weights) and the signature of a TF.js graph model."""
    if model_json.get("format") not in (None, "graph-model"):
        raise ModelError(f"not a TF.js graph model (format {model_json.get('format')!r})")
    weights = decode_weights(model_json.get("weightsManifest", []), read_shard)
    nodes = []
    for n in model_json["modelTopology"]["node"]:
        node = TFNode(n["name"], n["op"], list(n.get("input", [])), {k: _json_attr(v) for k, v in n.get("attr", {}).items()})
        if node.op == "Const":
            if node.name not in weights:
                raise ModelError(f"constant {node.name!r} is missing from the weights manifest")
            node.attr["value"] = weights[node.name]
        nodes.append(node)
    if model_json["modelTopology"].get("library", {}).get("function"):
        raise ModelError("TF.js graphs with functions (control flow) are not supported")
    # converters put the signature at the top level or (older tfjs-converter) in userDefinedMetadata
    return nodes, model_json.get("signature") or model_json.get("userDefinedMetadata", {}).get("signature", {})


# --------------------------------------------------------------------------------------------
# Back end: TensorFlow ops -> ONNX
# --------------------------------------------------------------------------------------------

_NHWC_TO_NCHW = (0, 3, 1, 2)
_NCHW_TO_NHWC = (0, 2, 3, 1)
_AXIS_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}  # NHWC axis -> where it sits in NCHW


def _ref(inp: str) -> str:
    """A TF input reference ``node``, ``node:0`` or ``node:k`` -> our tensor name."""
    name, _, idx = inp.partition(":")
    return name if idx in ("", "0") else f"{name}:{idx}"


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Converter:
    def __init__(self, nodes: list[TFNode], input_shapes: dict[str, list] | None, free_batch: bool = False):
        self.tf = {n.name: n for n in nodes}
        self.consts: dict[str, np.ndarray] = {}
        self.onnx_nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.layout: dict[str, str] = {}  # tensor -> "nhwc" (TF order) or "nchw" (transposed)
        self.rank: dict[str, int | None] = {}
        self.alias: dict[str, str] = {}
        self.inputs: list[onnx.ValueInfoProto] = []
        self.input_shapes = input_shapes or {}
        self.free_batch = free_batch
        self._uid = 0
        self._cache: dict = {}

    # -- helpers -----------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def emit(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self.fresh(op)
        self.onnx_nodes.append(helper.make_node(op, inputs, [out], name=self.fresh(out), **attrs))
        return out

    def init(self, arr: np.ndarray, base: str = "const") -> str:
        name = self.fresh(base)
        self.inits[name] = np.ascontiguousarray(arr)
        return name

    def resolve(self, inp: str) -> str:
        t = _ref(inp)
        while t in self.alias:
            t = self.alias[t]
        return t

    def const(self, inp: str) -> np.ndarray | None:
        return self.consts.get(self.resolve(inp))

    def need_const(self, node: TFNode, i: int) -> np.ndarray:
        v = self.const(node.inputs[i])
        if v is None:
            raise ModelError(f"{node.op} {node.name!r}: input {i} must be a constant")
        return v

    def tensor(self, inp: str) -> str:
        """The ONNX name of an input; constants become initializers on first use."""
        t = self.resolve(inp)
        if t in self.consts and t not in self.inits:
            self.inits[t] = self.consts[t]
            self.layout[t] = "nhwc"
        return t

    def as_layout(self, inp: str, want: str) -> str:
        t = self.tensor(inp)
        have = self.layout.get(t, "nhwc")
        if have == want or self.rank.get(t) not in (4, None) and have == "nhwc":
            return t
        key = ("T", t, want)
        if key not in self._cache:
            perm = _NHWC_TO_NCHW if want == "nchw" else _NCHW_TO_NHWC
            out = self.emit("Transpose", [t], self.fresh(t + "_" + want), perm=list(perm))
            self.layout[out], self.rank[out] = want, 4
            self._cache[key] = out
        return self._cache[key]

    def set_out(self, node: TFNode, out: str, layout: str = "nhwc", rank: int | None = None) -> None:
        self.layout[out], self.rank[out] = layout, rank

    def follow_const(self, arr: np.ndarray, to_rank: int) -> np.ndarray:
        """A constant that broadcasts against an NHWC tensor, rearranged for its NCHW copy."""
        if arr.ndim == 0 or (arr.ndim < to_rank and arr.size == 1):
            return arr
        if to_rank == 4:
            full = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
            return np.ascontiguousarray(full.transpose(_NHWC_TO_NCHW))
        return arr

    # -- element-wise ------------------------------------------------------------------------

    def elementwise(self, node: TFNode, op: str) -> str:
        """A broadcasting binary op; follows NCHW when any operand is a transposed 4-d tensor."""
        names = [self.resolve(i) for i in node.inputs[:2]]
        nchw = any(self.layout.get(n) == "nchw" for n in names if n not in self.consts)
        args = []
        for inp, n in zip(node.inputs[:2], names):
            if n in self.consts:
                arr = self.consts[n]
                if nchw and arr.ndim > 0 and arr.size > 1:
                    key = ("C", n)
                    if key not in self._cache:
                        self._cache[key] = self.init(self.follow_const(arr, 4), n)
                    args.append(self._cache[key])
                else:
                    args.append(self.tensor(inp))
            else:
                args.append(self.as_layout(inp, "nchw") if nchw else self.as_layout(inp, "nhwc"))
        out = self.emit(op, args, node.name)
        ranks = [self.consts[n].ndim if n in self.consts else self.rank.get(n) for n in names]
        rank = None if None in ranks else max(ranks)
        self.set_out(node, out, "nchw" if nchw else "nhwc", 4 if nchw else rank)
        return out

    def unary(self, node: TFNode, op: str, **attrs) -> str:
        t = self.tensor(node.inputs[0])
        out = self.emit(op, [t], node.name, **attrs)
        self.set_out(node, out, self.layout.get(t, "nhwc"), self.rank.get(t))
        return out

    def per_channel(self, arr: np.ndarray, like: str, base: str) -> str:
        """A length-C vector shaped to broadcast over ``like``'s channel axis."""
        if self.layout.get(like) == "nchw":
            arr = arr.reshape(-1, 1, 1)
        return self.init(arr, base)

    # -- convolution family --------------------------------------------------------------------

    def _spatial(self, node: TFNode, key: str, default: int = 1) -> list[int]:
        v = node.attr.get(key) or [default] * 4
        if _s(node.attr.get("data_format", b"NHWC")) != "NHWC":
            raise ModelError(f"{node.op} {node.name!r}: only NHWC data_format is supported")
        return [int(v[1]), int(v[2])] if len(v) == 4 else [int(x) for x in v]

    def _padding(self, node: TFNode) -> dict:
        pad = _s(node.attr.get("padding", b"VALID"))
        if pad == "SAME":
            return {"auto_pad": "SAME_UPPER"}
        if pad == "EXPLICIT":
            p = [int(x) for x in node.attr.get("explicit_paddings", [])]
            if len(p) != 8:
                raise ModelError(f"{node.name!r}: bad explicit_paddings")
            return {"pads": [p[2], p[4], p[3], p[5]]}
        return {"pads": [0, 0, 0, 0]}

    def conv(self, node: TFNode, depthwise: bool) -> str:
        x = self.as_layout(node.inputs[0], "nchw")
        w = self.need_const(node, 1).astype(np.float32)
        kh, kw, cin, m = w.shape
        if depthwise:
            wt = w.transpose(2, 3, 0, 1).reshape(cin * m, 1, kh, kw)
            group = cin
        else:
            wt, group = w.transpose(3, 2, 0, 1), 1
        scale, bias, post = self._fused_args(node)
        if scale is not None:
            wt = wt * scale.reshape(-1, 1, 1, 1)
        args = [x, self.init(np.ascontiguousarray(wt), node.name + "_W")]
        if bias is not None:
            args.append(self.init(bias.astype(np.float32), node.name + "_B"))
        out = self.emit("Conv", args, node.name if not post else None, group=group,
                        strides=self._spatial(node, "strides"), dilations=self._spatial(node, "dilations"),
                        kernel_shape=[kh, kw], **self._padding(node))
        self.layout[out], self.rank[out] = "nchw", 4
        return self._activation(node, out, post)

    def _fused_args(self, node: TFNode) -> tuple[np.ndarray | None, np.ndarray | None, list]:
        """TF.js/Grappler fused ops -> (per-output-channel scale, bias, remaining post-ops with their args).

        A fused batch norm becomes a scale folded into the weights plus a bias.
        """
        ops = [_s(o) for o in node.attr.get("fused_ops", [])]
        if not ops:
            return None, None, []
        args = [self.need_const(node, i).astype(np.float32) for i in range(2, len(node.inputs))
                if not node.inputs[i].startswith("^")]
        scale = bias = None
        if ops[0] == "BiasAdd":
            bias, args, ops = args[0], args[1:], ops[1:]
        elif ops[0] == "FusedBatchNorm":
            gamma, beta, mean, var = args[:4]
            scale = gamma / np.sqrt(var + np.float32(node.attr.get("epsilon", 1e-3)))
            bias, args, ops = beta - mean * scale, args[4:], ops[1:]
        return scale, bias, [(op, args) for op in ops]

    def _activation(self, node: TFNode, x: str, post: list) -> str:
        """Apply a fused op's trailing activations; the last one takes the node's name."""
        layout, rank = self.layout.get(x, "nhwc"), self.rank.get(x)
        for i, (op, args) in enumerate(post):
            last = i == len(post) - 1
            name = node.name if last else None
            if op == "Relu":
                x = self.emit("Relu", [x], name)
            elif op == "Relu6":
                x = self.emit("Clip", [x, self.init(np.float32(0)), self.init(np.float32(6))], name)
            elif op == "Elu":
                x = self.emit("Elu", [x], name)
            elif op == "Sigmoid":
                x = self.emit("Sigmoid", [x], name)
            elif op == "LeakyRelu":
                x = self.emit("LeakyRelu", [x], name, alpha=float(node.attr.get("leakyrelu_alpha", 0.2)))
            elif op == "Prelu":
                x = self.emit("PRelu", [x, self.per_channel(args[0].astype(np.float32), x, "alpha")], name)
            else:
                raise ModelError(f"{node.name!r}: unsupported fused op {op}")
            self.layout[x], self.rank[x] = layout, rank
        return x

    def pool(self, node: TFNode, op: str) -> str:
        x = self.as_layout(node.inputs[0], "nchw")
        attrs = dict(kernel_shape=self._spatial(node, "ksize"), strides=self._spatial(node, "strides"), **self._padding(node))
        out = self.emit(op, [x], node.name, **attrs)
        self.layout[out], self.rank[out] = "nchw", 4
        return out

    # -- axis-dependent ops --------------------------------------------------------------------

    def _axes_for(self, t: str, axes: list[int]) -> tuple[str, list[int], str]:
        """Reduction/squeeze axes in TF terms -> (tensor to use, ONNX axes, layout of a kept-dims result)."""
        r = self.rank.get(t)
        if self.layout.get(t) == "nchw":
            axes = [a % 4 for a in axes]
            kept = [a for a in range(4) if a not in axes]
            if sorted(kept, key=lambda a: _AXIS_TO_NCHW[a]) == kept:
                return t, sorted(_AXIS_TO_NCHW[a] for a in axes), "nchw"
            t = self.as_layout(t, "nhwc")
        return t, [a % r if r else a for a in axes], "nhwc"

    def reduce(self, node: TFNode, op: str) -> str:
        t = self.tensor(node.inputs[0])
        axes = [int(a) for a in np.atleast_1d(self.need_const(node, 1))]
        keep = bool(node.attr.get("keep_dims", False))
        t, axes, layout = self._axes_for(t, axes)
        if op == "ReduceSum":
            out = self.emit(op, [t, self.init(np.array(axes, np.int64), "axes")], node.name, keepdims=int(keep))
        else:
            out = self.emit(op, [t], node.name, axes=axes, keepdims=int(keep))
        r = self.rank.get(t)
        # without keep_dims the surviving axes are in the same order in both layouts (_axes_for)
        self.set_out(node, out, layout if keep else "nhwc", r if keep or r is None else r - len(axes))
        return out

    def convert(self, outputs: list[str]) -> tuple[list[onnx.NodeProto], list[str]]:
        order = self._topo(outputs)
        for node in order:
            self.op(node)
        return self.onnx_nodes, [self.resolve(o) for o in outputs]

    def _topo(self, outputs: list[str]) -> list[TFNode]:
        """Nodes the outputs depend on, inputs first (iteratively: graphs can be deep)."""
        seen: set[str] = set()
        order: list[TFNode] = []
        stack = [(_ref(o).split(":")[0], False) for o in reversed(outputs)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(self.tf[name])
                continue
            if name in seen:
                continue
            if name not in self.tf:
                raise ModelError(f"graph has no node {name!r}")
            seen.add(name)
            stack.append((name, True))
            for inp in reversed(self.tf[name].inputs):
                if not inp.startswith("^"):
                    dep = inp.split(":")[0]
                    if dep not in seen:
                        stack.append((dep, False))
        return order

    # -- the op table --------------------------------------------------------------------------

    def op(self, node: TFNode) -> None:
        op, name = node.op, node.name
        if op == "Const":
            if node.attr.get("value") is None:
                raise ModelError(f"constant {name!r} has a dtype the converter does not read")
            self.consts[name] = np.asarray(node.attr["value"])
            return
        if op == "Placeholder":
            shape = self.input_shapes.get(name)
            if shape is None:
                shp = node.attr.get("shape")
                shape = shp[1] if isinstance(shp, tuple) and shp[1] is not None else None
            dims = None if shape is None else [
                d if isinstance(d, str) or d >= 0 else ("N" if i == 0 else f"{name}_d{i}") for i, d in enumerate(shape)]
            dtype = DT.get(node.attr.get("dtype", 1), np.float32)
            self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims))
            self.set_out(node, name, "nhwc", None if dims is None else len(dims))
            return
        if op in ("Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics", "EnsureShape"):
            src = self.resolve(node.inputs[0])
            if src in self.consts:
                self.consts[name] = self.consts[src]
            else:
                self.alias[name] = src
            return
        if self._fold(node):
            return
        binary = {"Add": "Add", "AddV2": "Add", "BiasAdd": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
                  "Div": "Div", "Maximum": "Max", "Minimum": "Min", "Pow": "Pow"}
        unary = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Abs": "Abs", "Neg": "Neg", "Sqrt": "Sqrt",
                 "Exp": "Exp", "Log": "Log", "Reciprocal": "Reciprocal", "Elu": "Elu", "Floor": "Floor", "Selu": "Selu"}
        if op in binary:
            if op == "BiasAdd" and _s(node.attr.get("data_format", b"NHWC")) != "NHWC":
                raise ModelError(f"{name!r}: only NHWC BiasAdd is supported")
            self.elementwise(node, binary[op])
        elif op in unary:
            self.unary(node, unary[op])
        elif op == "Relu6":
            t = self.tensor(node.inputs[0])
            out = self.emit("Clip", [t, self.init(np.float32(0)), self.init(np.float32(6))], name)
            self.set_out(node, out, self.layout.get(t, "nhwc"), self.rank.get(t))
        elif op == "LeakyRelu":
            self.unary(node, "LeakyRelu", alpha=float(node.attr.get("alpha", 0.2)))
        elif op == "Rsqrt":
            t = self.tensor(node.inputs[0])
            s = self.emit("Sqrt", [t])
            out = self.emit("Reciprocal", [s], name)
            self.set_out(node, out, self.layout.get(t, "nhwc"), self.rank.get(t))
        elif op == "Square":
            t = self.tensor(node.inputs[0])
            out = self.emit("Mul", [t, t], name)
            self.set_out(node, out, self.layout.get(t, "nhwc"), self.rank.get(t))
        elif op == "SquaredDifference":
            d = self.elementwise(TFNode(self.fresh(name), "Sub", node.inputs[:2]), "Sub")
            out = self.emit("Mul", [d, d], name)
            self.set_out(node, out, self.layout[d], self.rank.get(d))
        elif op == "Prelu":
            x = self.tensor(node.inputs[0])
            out = self.emit("PRelu", [x, self.per_channel(self.need_const(node, 1).astype(np.float32), x, "alpha")], name)
            self.set_out(node, out, self.layout.get(x, "nhwc"), self.rank.get(x))
        elif op in ("Conv2D", "_FusedConv2D"):
            self.conv(node, depthwise=False)
        elif op in ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            self.conv(node, depthwise=True)
        elif op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
            x = self.as_layout(node.inputs[0], "nchw")
            args = [x] + [self.init(self.need_const(node, i).astype(np.float32), name + f"_bn{i}") for i in range(1, 5)]
            out = self.emit("BatchNormalization", args, name, epsilon=float(node.attr.get("epsilon", 1e-3)))
            self.set_out(node, out, "nchw", 4)
        elif op == "MaxPool":
            self.pool(node, "MaxPool")
        elif op == "AvgPool":
            self.pool(node, "AveragePool")
        elif op in ("Pad", "PadV2", "MirrorPad"):
            x = self.tensor(node.inputs[0])
            pads = self.need_const(node, 1).astype(np.int64)
            if self.layout.get(x) == "nchw":
                pads = pads[list(_NHWC_TO_NCHW)]
            args = [x, self.init(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")]
            mode = "constant"
            if op == "PadV2":
                args.append(self.init(self.need_const(node, 2).astype(np.float32).reshape(()), "pad_value"))
            if op == "MirrorPad":
                if _s(node.attr.get("mode", b"REFLECT")) != "REFLECT":
                    raise ModelError(f"{name!r}: only REFLECT mirror padding maps onto ONNX")
                mode = "reflect"
            out = self.emit("Pad", args, name, mode=mode)
            self.set_out(node, out, self.layout.get(x, "nhwc"), len(pads))
        elif op == "Reshape":
            x = self.as_layout(node.inputs[0], "nhwc")
            shape = self.need_const(node, 1).astype(np.int64)
            if self.free_batch and len(shape) > 1 and shape[0] == 1:
                shape = shape.copy()
                shape[0] = 0  # ONNX: copy the batch dim from the input, which TF froze at 1
            out = self.emit("Reshape", [x, self.init(shape, "shape")], name)
            self.set_out(node, out, "nhwc", len(shape))
        elif op == "Squeeze":
            x = self.tensor(node.inputs[0])
            dims = [int(d) for d in node.attr.get("squeeze_dims", node.attr.get("axis", [])) or []]
            if not dims:
                raise ModelError(f"{name!r}: Squeeze without explicit axes is not supported")
            x, axes, _ = self._axes_for(x, dims)
            out = self.emit("Squeeze", [x, self.init(np.array(axes, np.int64), "axes")], name)
            r = self.rank.get(x)
            self.set_out(node, out, "nhwc", None if r is None else r - len(axes))
        elif op in ("MatMul", "_FusedMatMul"):
            a = self.as_layout(node.inputs[0], "nhwc")
            if node.attr.get("transpose_a"):
                a = self.emit("Transpose", [a], perm=[1, 0])
            b_const = self.const(node.inputs[1])
            scale, bias, post = self._fused_args(node)
            if b_const is not None:
                b_arr = b_const.T if node.attr.get("transpose_b") else b_const
                if scale is not None:
                    b_arr = b_arr * scale
                b = self.init(np.ascontiguousarray(b_arr.astype(np.float32)), name + "_W")
            else:
                b = self.as_layout(node.inputs[1], "nhwc")
                if node.attr.get("transpose_b"):
                    b = self.emit("Transpose", [b], perm=[1, 0])
                if scale is not None:
                    raise ModelError(f"{name!r}: fused batch norm on a non-constant matrix")
            out = self.emit("MatMul", [a, b], name if bias is None and not post else None)
            if bias is not None:
                out = self.emit("Add", [out, self.init(bias.astype(np.float32), name + "_B")], name if not post else None)
            self.set_out(node, out, "nhwc", 2)
            if post:
                out = self._activation(node, out, post)
                self.set_out(node, out, "nhwc", 2)
        elif op in ("ConcatV2", "Concat"):
            if op == "ConcatV2":
                parts, axis = node.inputs[:-1], int(self.need_const(node, len(node.inputs) - 1))
            else:
                parts, axis = node.inputs[1:], int(self.need_const(node, 0))
            parts = [p for p in parts if not p.startswith("^")]
            names = [self.resolve(p) for p in parts]
            nchw = all(self.layout.get(n) == "nchw" for n in names)
            if nchw:
                args, axis, layout = [self.tensor(p) for p in parts], _AXIS_TO_NCHW[axis % 4], "nchw"
            else:
                args, layout = [self.as_layout(p, "nhwc") for p in parts], "nhwc"
            out = self.emit("Concat", args, name, axis=axis)
            self.set_out(node, out, layout, self.rank.get(args[0]))
        elif op in ("Mean", "Sum", "Max", "Min", "Prod"):
            self.reduce(node, {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax",
                               "Min": "ReduceMin", "Prod": "ReduceProd"}[op])
        elif op == "Softmax":
            x = self.as_layout(node.inputs[0], "nhwc")
            out = self.emit("Softmax", [x], name, axis=-1)
            self.set_out(node, out, "nhwc", self.rank.get(x))
        elif op == "StridedSlice":
            self.strided_slice(node)
        elif op == "Shape":
            self.consts[name] = np.array(self.static_shape(node.inputs[0]), DT.get(node.attr.get("out_type", 3), np.int32))
        elif op == "ResizeNearestNeighbor":
            n, _, _, c = self.static_shape(node.inputs[0])
            h, w = (int(v) for v in self.need_const(node, 1))
            if node.attr.get("align_corners"):
                modes = {"coordinate_transformation_mode": "align_corners", "nearest_mode": "round_prefer_ceil"}
            elif node.attr.get("half_pixel_centers"):  # TF: floor((y + 0.5) / scale) = round-half-up of ONNX's
                modes = {"coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
            else:
                modes = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
            x = self.as_layout(node.inputs[0], "nchw")
            out = self.emit("Resize", [x, "", "", self.init(np.array([n, c, h, w], np.int64), "sizes")], name,
                            mode="nearest", **modes)
            self.set_out(node, out, "nchw", 4)
        elif op == "ExpandDims":
            x = self.as_layout(node.inputs[0], "nhwc")
            r = self.rank.get(x)
            if r is None:
                raise ModelError(f"{name!r}: ExpandDims on a tensor of unknown rank")
            d = int(self.need_const(node, 1).reshape(-1)[0])
            d = d + r + 1 if d < 0 else d
            out = self.emit("Unsqueeze", [x, self.init(np.array([d], np.int64), "axes")], name)
            self.set_out(node, out, "nhwc", r + 1)
        elif op == "Cast":
            x = self.tensor(node.inputs[0])
            to = helper.np_dtype_to_tensor_dtype(np.dtype(DT[node.attr["DstT"]]))
            out = self.emit("Cast", [x], name, to=to)
            self.set_out(node, out, self.layout.get(x, "nhwc"), self.rank.get(x))
        else:
            raise ModelError(f"unsupported TensorFlow op {op!r} (node {name!r})")

    @staticmethod
    def _slices(a: dict, begin: np.ndarray, end: np.ndarray, step: np.ndarray) -> tuple:
        """TF's StridedSlice on a constant as a numpy index (its masks: see ``strided_slice``)."""
        index = []
        for i, (b, e, st) in enumerate(zip(begin, end, step)):
            if a.get("shrink_axis_mask", 0) >> i & 1:
                index.append(int(b))
            else:
                index.append(slice(None if a.get("begin_mask", 0) >> i & 1 else int(b),
                                   None if a.get("end_mask", 0) >> i & 1 else int(e), int(st)))
        return tuple(index)

    def static_shape(self, inp: str) -> list[int]:
        """The fixed shape (TF's NHWC order) of a tensor computed so far, by ONNX shape inference on
        the graph built up to it; for graphs that read a shape (``Shape``) to size what follows,
        converted with fixed input shapes."""
        t = self.tensor(inp)
        graph = helper.make_graph(self.onnx_nodes, "probe", self.inputs,
                                  [helper.make_tensor_value_info(t, TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(a, n) for n, a in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model).graph
        found = next((v for v in [*inferred.value_info, *inferred.output] if v.name == t), None)
        dims = [] if found is None else [d.dim_value if d.HasField("dim_value") else None
                                         for d in found.type.tensor_type.shape.dim]
        if found is None or not dims or None in dims:
            raise ModelError(f"the shape of {inp!r} is not fixed: convert with fixed input shapes")
        return [dims[i] for i in _NCHW_TO_NHWC] if self.layout.get(t) == "nchw" else dims

    def strided_slice(self, node: TFNode) -> None:
        """``x[b:e:s, ...]`` with TF's bit masks: begin/end masks widen an axis to its whole
        length, shrink masks (``x[:, i]``) drop it after slicing (SSR-Net's heads need these)."""
        a = node.attr
        if a.get("ellipsis_mask", 0) or a.get("new_axis_mask", 0):
            raise ModelError(f"{node.name!r}: StridedSlice with an ellipsis or new axis is not supported")
        x = self.as_layout(node.inputs[0], "nhwc")
        begin, end, step = (self.need_const(node, i).astype(np.int64).reshape(-1) for i in (1, 2, 3))
        big = np.iinfo(np.int64).max
        starts, ends, shrink = [], [], []
        for i, (b, e) in enumerate(zip(begin, end)):
            if a.get("shrink_axis_mask", 0) >> i & 1:
                starts.append(b)
                ends.append(big if b == -1 else b + 1)
                shrink.append(i)
            else:
                starts.append(0 if a.get("begin_mask", 0) >> i & 1 else b)
                ends.append((big if step[i] > 0 else -big) if a.get("end_mask", 0) >> i & 1 else e)
                if a.get("begin_mask", 0) >> i & 1 and step[i] < 0:
                    starts[-1] = -1
        args = [x] + [self.init(np.array(v, np.int64), "slice") for v in (starts, ends, range(len(begin)), step)]
        out = self.emit("Slice", args, None if shrink else node.name)
        if shrink:
            out = self.emit("Squeeze", [out, self.init(np.array(shrink, np.int64), "axes")], node.name)
        r = self.rank.get(x)
        self.set_out(node, out, "nhwc", None if r is None else r - len(shrink))

    def _fold(self, node: TFNode) -> bool:
        """Evaluate ops whose inputs are all constants (shape arithmetic left in frozen graphs)."""
        ins = [i for i in node.inputs if not i.startswith("^")]
        if not ins or any(self.const(i) is None for i in ins):
            return False
        v = [self.const(i) for i in ins]
        np_ops = {"Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide,
                  "Maximum": np.maximum, "Minimum": np.minimum}
        if node.op in np_ops:
            res = np_ops[node.op](v[0], v[1]).astype(v[0].dtype)
        elif node.op == "Rsqrt":
            res = (1 / np.sqrt(v[0])).astype(v[0].dtype)
        elif node.op == "Sqrt":
            res = np.sqrt(v[0])
        elif node.op == "Reshape":
            res = v[0].reshape([int(s) for s in v[1]])
        elif node.op == "Pack":
            res = np.stack(v, axis=int(node.attr.get("axis", 0)))
        elif node.op == "Cast":
            res = v[0].astype(DT[node.attr["DstT"]])
        elif node.op == "StridedSlice" and not node.attr.get("ellipsis_mask", 0) and not node.attr.get("new_axis_mask", 0):
            res = v[0][self._slices(node.attr, *(np.asarray(x).reshape(-1) for x in v[1:4]))]
        else:
            return False
        self.consts[node.name] = np.asarray(res)
        return True


def to_onnx(nodes: list[TFNode], outputs: list[str], input_shapes: dict[str, list] | None = None,
            output_names: list[str] | None = None, doc: str = "", free_batch: bool = False) -> bytes:
    """Map a TensorFlow graph (already parsed) to a serialized ONNX model.

    ``outputs`` are TF tensor names (``node`` or ``node:0``); ``output_names`` renames them in
    the ONNX graph. ``input_shapes`` overrides Placeholder shapes (use a string for a free dim).
    ``free_batch`` frees a batch size frozen at 1: Reshape targets that start with 1 copy the
    input's batch dim instead (right for graphs whose reshapes all keep the batch first).
    """
    conv = _Converter(nodes, input_shapes, free_batch)
    onnx_nodes, outs = conv.convert(outputs)
    final = []
    for i, t in enumerate(outs):
        t = conv.as_layout(t, "nhwc")
        rank = conv.rank.get(t)
        want = output_names[i] if output_names and i < len(output_names) else t
        if want != t:
            t = conv.emit("Identity", [t], want)
        final.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, [None] * rank if rank else None))
    inits = [numpy_helper.from_array(a, n) for n, a in conv.inits.items()]
    graph = helper.make_graph(conv.onnx_nodes, "tfgraph", conv.inputs, final, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceprint.tfgraph",
                              doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def convert_tfjs(model_json: Path | str | dict, weights_dir: Path | None = None, outputs: list[str] | None = None,
                 output_names: list[str] | None = None) -> bytes:
    """Convert a TF.js graph model to ONNX bytes; shards are read from ``weights_dir`` (default: next to the JSON)."""
    if isinstance(model_json, dict):
        spec, base = model_json, Path(weights_dir or ".")
    else:
        spec = json.loads(Path(model_json).read_text())
        base = Path(weights_dir or Path(model_json).parent)
    nodes, sig = parse_tfjs(spec, lambda p: (base / p).read_bytes())
    declared = sig.get("outputs", {})
    if not outputs:
        # a signature maps output keys ("age_output") to tensors ({"name": "Identity:0"}): the
        # tensor is what the graph computes, the key names the ONNX output
        outputs = [v.get("name", k) for k, v in declared.items()]
        output_names = output_names or [k.replace(":", "_") for k in declared]
    if not outputs:
        raise ModelError("the model declares no outputs; name them")
    return to_onnx(nodes, outputs, output_names=output_names, doc="converted from a TF.js graph model")


def convert_graphdef(pb: Path | bytes, outputs: list[str], input_shapes: dict[str, list] | None = None,
                     output_names: list[str] | None = None, free_batch: bool = False) -> bytes:
    """Convert a frozen GraphDef (``.pb``) to ONNX bytes (see :func:`to_onnx` for the options)."""
    data = Path(pb).read_bytes() if isinstance(pb, (str, Path)) else pb
    return to_onnx(parse_graphdef(data), outputs, input_shapes, output_names, doc="converted from a frozen GraphDef",
                   free_batch=free_batch)


__all__ = ["TFNode", "iter_fields", "parse_graphdef", "decode_weights", "parse_tfjs", "to_onnx",
           "convert_tfjs", "convert_graphdef"]

