"""The TensorFlow -> ONNX converter: its pieces on hand-built inputs, and whole models against
independent runtimes (TensorFlow.js' pure-JS CPU backend under node; OpenCV's TF importer)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from faceprint import zoo
from faceprint.errors import ModelError
from faceprint.zoo.tfgraph import TFNode, decode_weights, iter_fields, parse_graphdef, to_onnx

from .reference_models import human_graph

REFERENCE = Path(__file__).parent / "reference"


# -- a tiny protobuf encoder, written independently of the decoder under test ----------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value) -> bytes:
    if isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        return _varint(num << 3 | 2) + _varint(len(data)) + data
    if isinstance(value, float):
        return _varint(num << 3 | 5) + struct.pack("<f", value)
    return _varint(num << 3 | 0) + _varint(int(value))


def _shape(dims) -> bytes:
    return b"".join(_field(2, _field(1, d)) for d in dims)


def _node(name, op, inputs=(), **attrs) -> bytes:
    msg = _field(1, name) + _field(2, op) + b"".join(_field(3, i) for i in inputs)
    for k, v in attrs.items():
        msg += _field(5, _field(1, k) + _field(2, v))
    return msg


def test_wire_format_basics():
    # the protobuf documentation's example: field 1, varint 150
    assert list(iter_fields(b"\x08\x96\x01")) == [(1, 0, 150)]
    (num, wire, val), = iter_fields(b"\x12\x07testing")
    assert (num, wire, bytes(val)) == (2, 2, b"testing")


def test_graphdef_decoder_on_hand_built_message():
    weights = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    tensor = _field(1, 1) + _field(2, _shape([2, 3])) + _field(4, weights.tobytes())
    packed_ints = _varint(1) + _varint(2) + _varint(2) + _varint(1)
    ints_tensor = _field(1, 3) + _field(2, _shape([2])) + _field(7, _varint(7) + _varint((1 << 64) - 4))
    graph = (
        _field(1, _node("w", "Const", value=_field(8, tensor), dtype=_field(6, 1)))
        + _field(1, _node("k", "Const", value=_field(8, ints_tensor)))
        + _field(1, _node("conv", "Conv2D", ["x:0", "w", "^ctrl"],
                          strides=_field(1, _field(3, packed_ints)), padding=_field(2, b"SAME"),
                          neg=_field(3, (1 << 64) - 5), eps=_field(4, 0.25), flag=_field(5, 1),
                          shape=_field(7, _shape([-1, 112, 112, 3]))))
        + _field(4, _field(1, 27))  # versions: ignored
    )
    nodes = parse_graphdef(graph)
    assert [n.name for n in nodes] == ["w", "k", "conv"]
    np.testing.assert_array_equal(nodes[0].attr["value"], weights)
    assert nodes[0].attr["dtype"] == 1
    np.testing.assert_array_equal(nodes[1].attr["value"], np.array([7, -4], np.int32))
    conv = nodes[2]
    assert conv.inputs == ["x:0", "w", "^ctrl"]
    assert conv.attr["strides"] == [1, 2, 2, 1]
    assert conv.attr["padding"] == b"SAME"
    assert conv.attr["neg"] == -5
    assert conv.attr["eps"] == 0.25 and conv.attr["flag"] is True
    assert conv.attr["shape"] == ("shape", [-1, 112, 112, 3])


def test_weight_manifest_dequantisation():
    f32 = np.array([1.5, -2.0, 3.25], np.float32)
    q8 = np.array([0, 10, 255], np.uint8)
    f16 = np.array([[0.5, -1.0]], np.float16)
    i32 = np.array([4, -7], np.int32)
    shards = {"a.bin": f32.tobytes() + q8.tobytes()[:2], "b.bin": q8.tobytes()[2:] + f16.tobytes(), "c.bin": i32.tobytes()}
    manifest = [
        {"paths": ["a.bin", "b.bin"], "weights": [
            {"name": "f", "shape": [3], "dtype": "float32"},
            {"name": "q", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
            {"name": "h", "shape": [1, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        ]},
        {"paths": ["c.bin"], "weights": [{"name": "i", "shape": [2], "dtype": "int32"}]},
    ]
    w = decode_weights(manifest, shards.__getitem__)
    np.testing.assert_array_equal(w["f"], f32)
    np.testing.assert_allclose(w["q"], [-1.0, 4.0, 126.5])
    assert w["h"].dtype == np.float32 and w["h"].shape == (1, 2)
    np.testing.assert_array_equal(w["h"], [[0.5, -1.0]])
    np.testing.assert_array_equal(w["i"], i32)


# -- a small synthetic graph against a numpy reference ---------------------------------------

def _conv_nhwc(x, w, stride, same, depthwise=False):
    kh, kw = w.shape[:2]
    n, h, wd, c = x.shape
    if same:
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    cols = np.stack([x[:, i:i + stride * oh:stride, j:j + stride * ow:stride] for i in range(kh) for j in range(kw)], 3)
    wf = w.reshape(kh * kw, *w.shape[2:])
    if depthwise:  # (n, oh, ow, k, c) x (k, c, m) -> (n, oh, ow, c*m)
        return np.einsum("nhwkc,kcm->nhwcm", cols, wf).reshape(n, oh, ow, -1)
    return np.einsum("nhwkc,kco->nhwo", cols, wf)


def test_synthetic_graph_matches_numpy():
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    b1 = rng.normal(size=4).astype(np.float32)
    wd = rng.normal(size=(3, 3, 4, 2)).astype(np.float32)
    alpha = rng.uniform(0, 0.5, 8).astype(np.float32)
    fc = rng.normal(size=(8, 5)).astype(np.float32)
    c = lambda name, v: TFNode(name, "Const", attr={"value": np.asarray(v)})  # noqa: E731
    nodes = [
        TFNode("x", "Placeholder", attr={"dtype": 1, "shape": ("shape", [-1, 9, 9, 3])}),
        c("w1", w1), c("b1", b1), c("wd", wd), c("alpha", alpha), c("fc", fc), c("axes", np.array([1, 2], np.int32)),
        c("pads", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)), c("half", np.float32(0.5)),
        TFNode("conv", "Conv2D", ["x", "w1"], {"strides": [1, 2, 2, 1], "padding": b"SAME", "data_format": b"NHWC"}),
        TFNode("bias", "BiasAdd", ["conv", "b1"]),
        TFNode("relu", "Relu6", ["bias"]),
        TFNode("pad", "Pad", ["relu", "pads"]),
        TFNode("dw", "DepthwiseConv2dNative", ["pad", "wd"], {"strides": [1, 1, 1, 1], "padding": b"VALID"}),
        TFNode("prelu", "Prelu", ["dw", "alpha"]),
        TFNode("scaled", "Mul", ["half", "prelu:0"]),
        TFNode("mean", "Mean", ["scaled", "axes"], {"keep_dims": False}),
        TFNode("out", "MatMul", ["mean", "fc"]),
    ]
    model = to_onnx(nodes, ["out"], output_names=["y"])
    x = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    (got,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    h = np.clip(_conv_nhwc(x, w1, 2, True) + b1, 0, 6)
    h = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h = _conv_nhwc(h, wd, 1, False, depthwise=True)
    h = np.where(h > 0, h, h * alpha) * 0.5
    want = h.mean(axis=(1, 2)) @ fc
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# -- whole models ------------------------------------------------------------------------------

def _cached(name: str):
    spec = zoo.get(name)
    if not spec.cached:
        pytest.skip(f"model {name} is not in the cache (run `faceprint models fetch {name}`)")
    return spec


@pytest.fixture(scope="module")
def real_crops(lfw_dir, astronaut):
    """Aligned 112x112 crops of real faces: five LFW people and the scikit-image astronaut."""
    from PIL import Image

    from faceprint.alignment import ARCFACE_112, align
    from faceprint.detection import get_detector

    from .conftest import lfw_image

    det = get_detector("dlib-hog")
    images = [np.asarray(Image.open(lfw_image(lfw_dir, n, 1)).convert("RGB"))
              for n in ("Aaron_Peirsol", "George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair")]
    crops = []
    for img in images + [astronaut]:
        faces = det.detect(img)
        assert faces, "dlib found no face in a test image"
        crops.append(align(img, faces[0], ARCFACE_112, 112).pixels)
    return np.stack(crops)


def test_tfjs_mobilefacenet_matches_tensorflow_js(real_crops, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the TF.js reference check needs it")
    if not (REFERENCE / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        pytest.skip("tests/reference/node_modules is absent: run `npm ci --prefix tests/reference`")
    spec = _cached("mobilefacenet")
    from faceprint.embedding.mobilefacenet import convert_mobilefacenet

    x = real_crops.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    session = ort.InferenceSession(spec.converted("graph", convert_mobilefacenet), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"data": x})
    proc = subprocess.run(
        ["node", str(REFERENCE / "tfjs_embed.js"), str(spec.path("graph")), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["backend"] == "cpu"
    ref = np.load(tmp_path / "y.npy")
    assert ref.shape == ours.shape == (len(x), 256)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99999
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_graphdef_facenet_matches_opencv_dnn(real_crops):
    import cv2

    spec = _cached("facenet")
    from faceprint.embedding.facenet import convert_facenet, prewhiten

    crops = np.stack([cv2.resize(c, (160, 160)) for c in real_crops[:3]])
    x = prewhiten(crops)
    session = ort.InferenceSession(spec.converted("model", convert_facenet), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"input": x})  # the whole batch at once: the freed batch dim
    net = cv2.dnn.readNetFromTensorflow(str(spec.path("model")))
    ref = []
    for xi in x:  # OpenCV runs this graph at batch 1 only
        net.setInput(np.ascontiguousarray(xi.transpose(2, 0, 1)[None]))
        ref.append(net.forward().reshape(-1))
    ref = np.stack(ref)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_strided_slice_and_expand_dims_match_numpy():
    """SSR-Net's heads slice ``x[:, i]`` (a shrink mask) and add axes back; masks and steps as TF reads them."""
    rng = np.random.default_rng(2)
    c = lambda name, v: TFNode(name, "Const", attr={"value": np.asarray(v, np.int32)})  # noqa: E731
    nodes = [
        TFNode("x", "Placeholder", attr={"dtype": 1, "shape": ("shape", [-1, 6, 5])}),
        c("b0", [0, 2]), c("e0", [0, 0]), c("s0", [1, 1]),  # x[:, 2]: begin mask on 0, shrink on 1
        TFNode("col", "StridedSlice", ["x", "b0", "e0", "s0"], {"begin_mask": 1, "end_mask": 1, "shrink_axis_mask": 2}),
        c("b1", [0, 1, 4]), c("e1", [0, 5, 0]), c("s1", [1, 2, -1]),  # x[:, 1:5:2, ::-1]
        TFNode("strided", "StridedSlice", ["x", "b1", "e1", "s1"], {"begin_mask": 5, "end_mask": 5}),
        c("axis", -1),
        TFNode("expanded", "ExpandDims", ["col", "axis"]),
    ]
    model = to_onnx(nodes, ["expanded", "strided"])
    x = rng.normal(size=(3, 6, 5)).astype(np.float32)
    got_col, got_strided = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(got_col, x[:, 2][..., None])
    np.testing.assert_array_equal(got_strided, x[:, 1:5:2, ::-1])


def test_an_fpn_upsampling_sized_by_shape_matches_numpy():
    """RetinaFace's FPN: a coarse map upsampled (nearest, TF's half-pixel rule) to the size a finer
    map's ``Shape`` gives, then added: fixed input shapes make the shape a constant."""
    rng = np.random.default_rng(3)
    c = lambda name, v: TFNode(name, "Const", attr={"value": np.asarray(v)})  # noqa: E731
    nodes = [
        TFNode("x", "Placeholder", attr={"dtype": 1, "shape": ("shape", [-1, 8, 6, 4])}),
        c("w", rng.normal(size=(1, 1, 4, 4)).astype(np.float32)),
        TFNode("fine", "Conv2D", ["x", "w"], {"strides": [1, 1, 1, 1], "padding": b"SAME", "data_format": b"NHWC"}),
        TFNode("coarse", "MaxPool", ["fine"], {"ksize": [1, 2, 2, 1], "strides": [1, 2, 2, 1], "padding": b"VALID",
                                               "data_format": b"NHWC"}),
        TFNode("shape", "Shape", ["fine"], {"out_type": 3}),
        c("b", np.array([1], np.int32)), c("e", np.array([3], np.int32)), c("s", np.array([1], np.int32)),
        TFNode("size", "StridedSlice", ["shape", "b", "e", "s"]),
        TFNode("up", "ResizeNearestNeighbor", ["coarse", "size"], {"half_pixel_centers": True}),
        TFNode("out", "AddV2", ["fine", "up"]),
    ]
    x = rng.normal(size=(1, 8, 6, 4)).astype(np.float32)
    got = ort.InferenceSession(to_onnx(nodes, ["out"], {"x": [1, 8, 6, 4]}),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    fine = x @ nodes[1].attr["value"][0, 0]
    coarse = fine.reshape(1, 4, 2, 3, 2, 4).max(axis=(2, 4))
    rows, cols = np.floor((np.arange(8) + 0.5) / 2).astype(int), np.floor((np.arange(6) + 0.5) / 2).astype(int)
    np.testing.assert_allclose(got, fine + coarse[:, rows][:, :, cols], atol=1e-5)
    with pytest.raises(ModelError, match="not fixed"):  # a free batch: no fixed shape to read
        to_onnx(nodes, ["out"], {"x": ["N", 8, 6, 4]})


@pytest.mark.parametrize("name, grey", [
    ("emotion", True),  # signature in userDefinedMetadata; grey input in [-1, 1]
    ("age", False),  # SSR-Net: StridedSlice and ExpandDims in its heads; RGB 0..255
])
def test_tfjs_human_attribute_models_match_tensorflow_js(real_crops, tmp_path, name, grey):
    if shutil.which("node") is None or not (REFERENCE / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        pytest.skip("the TF.js reference needs node and `npm ci --prefix tests/reference`")
    import cv2

    from faceprint.zoo.tfgraph import convert_tfjs

    graph, _ = human_graph(name)
    x = np.stack([cv2.resize(c, (64, 64)) for c in real_crops]).astype(np.float32)
    if grey:
        x = (x @ np.float32([0.2989, 0.587, 0.114]))[..., None] / 127.5 - 1
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x))
    session = ort.InferenceSession(convert_tfjs(graph), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["Identity_0"]  # named after the signature's key
    (ours,) = session.run(None, {session.get_inputs()[0].name: x})
    proc = subprocess.run(["node", str(REFERENCE / "tfjs_embed.js"), str(graph), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy"), "Identity:0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = np.load(tmp_path / "y.npy").reshape(ours.shape)
    np.testing.assert_allclose(ours, ref, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    assert np.ptp(ref, axis=0).max() > 1e-3  # the faces give different answers: a real comparison
