"""MTCNN (Zhang et al. 2016): a three-stage cascade giving a box and five landmarks per face.

The weights are davidsandberg's numpy export of the original Caffe models. Rather than pull in a
deep-learning framework, the three small networks are rebuilt here as ONNX graphs (once, then
cached by the zoo) and run with onnxruntime.

The original Caffe models were trained in MATLAB on *transposed* images (x and y swapped), which
is why ports that reuse these weights transpose every input. Here that transpose is folded into
the weights at conversion time (each conv kernel is transposed spatially and the fully connected
weights are re-ordered to match), so the graphs take ordinary ``NCHW`` images and give ordinary
``(y, x)`` maps, while every output channel keeps its meaning: box offsets ``(dx1, dy1, dx2, dy2)``
and landmarks as five x values followed by five y values.

Boxes here are continuous pixel coordinates: ``(0, 0)`` is the top-left corner of the top-left
pixel and a box's width is ``x2 - x1``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .. import runtime, zoo
from ..errors import ImageError, ModelError
from ..types import Face, Image
from ..zoo.prelu import prelu_as_convs
from . import Detector
from ._nms import nms

#: MTCNN's five points, in the order ONet emits them.
_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

_OPSET = 17
_IR_VERSION = 8  # old enough for any onnxruntime faceprint supports

# Layer recipes: (op, layer name or None, args). The pooling padding mirrors the original
# networks (TensorFlow "SAME" pads at the end, which is ONNX's SAME_UPPER).
_PNET = [
    ("conv", "conv1"), ("prelu", "PReLU1"), ("pool", (2, 2, "SAME")),
    ("conv", "conv2"), ("prelu", "PReLU2"),
    ("conv", "conv3"), ("prelu", "PReLU3"),
]
_RNET = [
    ("conv", "conv1"), ("prelu", "prelu1"), ("pool", (3, 2, "SAME")),
    ("conv", "conv2"), ("prelu", "prelu2"), ("pool", (3, 2, "VALID")),
    ("conv", "conv3"), ("prelu", "prelu3"),
    ("fc", "conv4"), ("prelu", "prelu4"),
]
_ONET = [
    ("conv", "conv1"), ("prelu", "prelu1"), ("pool", (3, 2, "SAME")),
    ("conv", "conv2"), ("prelu", "prelu2"), ("pool", (3, 2, "VALID")),
    ("conv", "conv3"), ("prelu", "prelu3"), ("pool", (2, 2, "SAME")),
    ("conv", "conv4"), ("prelu", "prelu4"),
    ("fc", "conv5"), ("prelu", "prelu5"),
]
# key -> (trunk, input size (None = any), final feature map side before the first fc,
#         heads as (layer, output name, softmax?))
_NETS = {
    "pnet": (_PNET, None, None, [("conv4-1", "prob", True), ("conv4-2", "reg", False)]),
    "rnet": (_RNET, 24, 3, [("conv5-1", "prob", True), ("conv5-2", "reg", False)]),
    "onet": (_ONET, 48, 3, [("conv6-1", "prob", True), ("conv6-2", "reg", False),
                            ("conv6-3", "landmarks", False)]),
}


def _convert(key: str, path: Path) -> bytes:
    """One network's ONNX graph, its PReLUs rewritten into ops ONNX Runtime runs fast (same
    outputs, bit for bit: ``zoo.prelu``)."""
    return prelu_as_convs(_graph(key, path))


def _graph(key: str, path: Path) -> bytes:
    """Build one network's ONNX graph from davidsandberg's ``det{1,2,3}.npy``."""
    from onnx import TensorProto, checker, helper, numpy_helper

    try:
        layers = np.load(path, allow_pickle=True, encoding="latin1").item()
    except Exception as e:  # a corrupt pickle raises anything from ValueError to UnpicklingError
        raise ModelError(f"cannot read MTCNN weights {path}: {e}") from e
    trunk, size, fc_side, heads = _NETS[key]
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def conv_weight(w: np.ndarray) -> np.ndarray:
        # stored (kx, ky, in, out) for transposed images; ONNX wants (out, in, ky, kx)
        return w.transpose(3, 2, 1, 0)

    def fc_weight(w: np.ndarray, side: int | None) -> np.ndarray:
        # stored (in, out) with inputs flattened in (x, y, c) order; ours flatten as (c, y, x)
        if side is None:
            return w
        c = w.shape[0] // (side * side)
        return w.reshape(side, side, c, -1).transpose(2, 1, 0, 3).reshape(w.shape[0], -1)

    def conv(x: str, layer: str, out: str) -> None:
        w, b = layers[layer]["weights"], layers[layer]["biases"]
        nodes.append(helper.make_node("Conv", [x, const(f"{layer}.w", conv_weight(w)), const(f"{layer}.b", b)], [out]))

    def gemm(x: str, layer: str, out: str, side: int | None) -> None:
        w, b = layers[layer]["weights"], layers[layer]["biases"]
        nodes.append(helper.make_node("Gemm", [x, const(f"{layer}.w", fc_weight(w, side)), const(f"{layer}.b", b)], [out]))

    x, side, flat = "image", fc_side, False
    for i, (op, arg) in enumerate(trunk):
        out = f"t{i}"
        if op == "conv":
            conv(x, arg, out)
        elif op == "prelu":
            # per-channel slope: broadcast over (y, x) on a feature map, over the batch after an fc
            alpha = layers[arg]["alpha"].reshape(-1) if flat else layers[arg]["alpha"].reshape(-1, 1, 1)
            nodes.append(helper.make_node("PRelu", [x, const(f"{arg}.alpha", alpha)], [out]))
        elif op == "pool":
            k, s, pad = arg
            nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[k, k], strides=[s, s],
                                          auto_pad="SAME_UPPER" if pad == "SAME" else "VALID"))
        elif op == "fc":
            if side is not None:  # first fc: flatten the feature map
                nodes.append(helper.make_node("Flatten", [x], [out + "f"], axis=1))
                x = out + "f"
            gemm(x, arg, out, side)
            side, flat = None, True
        x = out

    outputs = []
    for layer, name, softmax in heads:
        w = layers[layer]["weights"]
        raw = name + "_raw" if softmax else name
        if w.ndim == 4:  # PNet's 1x1 convolutions keep it fully convolutional
            conv(x, layer, raw)
        else:
            gemm(x, layer, raw, None)
        if softmax:
            nodes.append(helper.make_node("Softmax", [raw], [name], axis=1))
        dims = ["n", w.shape[-1], "h", "w"] if w.ndim == 4 else ["n", w.shape[-1]]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))

    in_dims = ["n", 3, size or "height", size or "width"]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_dims)]
    graph = helper.make_graph(nodes, f"mtcnn_{key}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="faceprint")
    model.ir_version = _IR_VERSION
    checker.check_model(model)
    return model.SerializeToString()


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """``N x H x W x 3`` uint8 -> ``N x 3 x H x W`` float32 in MTCNN's ``(x - 127.5) / 128``."""
    x = pixels.astype(np.float32)
    x -= 127.5
    x *= 1.0 / 128.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square about its centre: RNet and ONet see square crops."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box offsets, which are fractions of the box's width and height."""
    wh = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    return boxes + reg * wh


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``size x size`` crops of integer boxes; parts outside the image are black, as in training."""
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if sx2 <= sx1 or sy2 <= sy1:
            continue  # wholly outside: an all-black crop, which no stage accepts
        patch = image[sy1:sy2, sx1:sx2]
        if (sx1, sy1, sx2, sy2) != (x1, y1, x2, y2):
            patch = cv2.copyMakeBorder(patch, sy1 - y1, y2 - sy2, sx1 - x1, x2 - sx2, cv2.BORDER_CONSTANT, value=0)
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _integer_boxes(boxes: np.ndarray) -> np.ndarray:
    """Round boxes to whole pixels for cropping, keeping at least one pixel per side."""
    b = np.rint(boxes).astype(np.int64)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    return b


class MTCNN(Detector):
    """Multi-task cascaded CNN: finds faces down to ``min_face_size`` px with five landmarks.

    ``min_face_size`` sets the finest pyramid level (it maps onto PNet's 12 px window), so smaller
    faces cost nothing to skip; it is a soft floor, as faces down to about half of it still turn up.

    ``thresholds`` are the face probabilities each stage (PNet, RNet, ONet) needs to pass a
    candidate on; the final ``score`` is ONet's. The defaults are the paper's. ``threads`` is
    onnxruntime's intra-op thread count (default: ``runtime.threads()``, i.e. ``FACEPRINT_THREADS``
    or the cores, at most 4).
    """

    name = "mtcnn"

    #: Scale step between pyramid levels: ~sqrt(1/2), so each level halves the pixel count.
    factor = 0.709
    #: IoU above which overlapping candidates merge: within one pyramid level, then per stage.
    nms_level, nms_stage = 0.5, 0.7

    def __init__(
        self,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        threads: int | None = None,
    ) -> None:
        if min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px (PNet's window)")
        if len(thresholds) != 3:
            raise ValueError("thresholds needs one value per stage (PNet, RNet, ONet)")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        spec = zoo.get(self.name)
        # revision 2: PReLUs rewritten for speed (same outputs)
        self.model_paths = {key: spec.converted(key, lambda p, key=key: _convert(key, p), 2)
                            for key in ("pnet", "rnet", "onet")}
        self._sessions = {key: runtime.onnx_session(path, threads) for key, path in self.model_paths.items()}

    def decoding(self) -> dict:
        """The networks' input and the cascade's settings, as a bundle's ``bundle.json`` gives them."""
        return {
            "input": "RGB crops (black outside the image) resized with INTER_AREA, (x - 127.5) / 128, NCHW",
            "min_face_size": self.min_face_size, "factor": self.factor, "thresholds": list(self.thresholds),
            "nms_level": self.nms_level, "nms_stage": self.nms_stage, "landmarks": list(_LANDMARKS),
        }

    # -- the cascade --------------------------------------------------------------------------

    def detect(self, image: Image) -> list[Face]:
        image = _check(image)
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        return self._output(image, boxes) if len(boxes) else []

    def place(self, image: Image, boxes: np.ndarray) -> list[Face]:
        """Run only the last stage on candidate boxes ``(N, 4)`` found some other way.

        ONet re-scores each candidate (dropping those below ``thresholds[2]``), tightens its box
        and places the five landmarks, so a faster proposer can borrow MTCNN's landmarks.
        """
        image = _check(image)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return self._output(image, _square(boxes)) if len(boxes) else []

    def refine(self, image: Image, boxes: np.ndarray) -> list[Face]:
        return self.place(image, boxes)

    def _scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face_size`` onto PNet's 12 px window."""
        scale = 12.0 / self.min_face_size
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.factor
            side *= self.factor
        return scales

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """Stage 1: PNet slides a 12 px window (stride 2) over every pyramid level."""
        h, w = image.shape[:2]
        pnet = self._sessions["pnet"]
        found = []
        for scale in self._scales(h, w):
            size = (math.ceil(w * scale), math.ceil(h * scale))
            level = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            prob, reg = pnet.run(None, {"image": _normalise(level[None])})
            ys, xs = np.nonzero(prob[0, 1] >= self.thresholds[0])
            if not len(ys):
                continue
            # A cell's window in the source image, rounded as the reference (MATLAB) code does: its
            # 1-based first and last pixels are floor((2i + 1) / s) and floor((2i + 12) / s). Matching
            # it keeps proposals, and so the later stages' scores, close to the published pipeline.
            cells = np.stack([xs, ys], axis=1) * 2.0
            first, last = np.floor((cells + 1) / scale), np.floor((cells + 12) / scale)
            boxes = np.concatenate([first - 1, last], axis=1)
            scores = prob[0, 1, ys, xs]
            keep = nms(boxes, scores, self.nms_level)
            found.append(np.concatenate([boxes, scores[:, None], reg[0][:, ys, xs].T], axis=1)[keep])
        if not found:
            return np.empty((0, 4))
        found = np.concatenate(found)
        found = found[nms(found[:, :4], found[:, 4], self.nms_stage)]
        # the reference scales PNet's offsets by (last - first), one pixel less than the width
        boxes = found[:, :4]
        return _square(boxes + found[:, 5:9] * np.tile(boxes[:, 2:4] - boxes[:, 0:2] - 1, 2))

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: RNet rejects most of PNet's proposals and tightens the rest."""
        boxes = _integer_boxes(boxes)
        prob, reg = self._sessions["rnet"].run(None, {"image": _normalise(_crops(image, boxes, 24))})
        ok = prob[:, 1] > self.thresholds[1]
        boxes, scores, reg = boxes[ok].astype(np.float64), prob[ok, 1], reg[ok]
        keep = nms(boxes, scores, self.nms_stage)
        return _square(_regress(boxes[keep], reg[keep]))

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> list[Face]:
        """Stage 3: ONet scores each face, gives its final box and five landmarks."""
        boxes = _integer_boxes(boxes)
        prob, reg, marks = self._sessions["onet"].run(None, {"image": _normalise(_crops(image, boxes, 48))})
        ok = prob[:, 1] > self.thresholds[2]
        boxes, scores, reg, marks = boxes[ok].astype(np.float64), prob[ok, 1], reg[ok], marks[ok]
        # landmarks are fractions of the crop that ONet saw, i.e. of the box before regression
        w, h = boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]
        points = np.concatenate([boxes[:, 0:1] + marks[:, :5] * w, boxes[:, 1:2] + marks[:, 5:] * h], axis=1)
        boxes = _regress(boxes, reg)
        # "min" overlap also drops a small box nested inside a bigger face's box
        keep = nms(boxes, scores, self.nms_stage, mode="min")
        return [  # in descending score order (NMS keeps them so)
            Face(
                box=tuple(float(v) for v in box),
                score=float(score),
                landmarks={n: (float(px), float(py)) for n, px, py in zip(_LANDMARKS, pts[:5], pts[5:])},
                detector=self.name,
            )
            for box, score, pts in zip(boxes[keep], scores[keep], points[keep])
        ]


def _check(image: Image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"MTCNN needs an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    return image


__all__ = ["MTCNN"]
