"""A faceprint bundle's runner: detect, align and embed faces with only a runtime, numpy and OpenCV.

    python runner.py embed IMAGE...          one JSON line per image: the largest face's box and vector
    python runner.py verify IMAGE_A IMAGE_B  the distance, and whether it is one person at the bundle's threshold

It reads ``bundle.json`` beside it (written by ``faceprint export``) and checks every model file's
SHA-256 before loading it. Each network runs in onnxruntime (``.onnx``) or in LiteRT
(``.tflite``, ``pip install ai-edge-litert``); only the one the bundle needs is imported. It does
what faceprint's pipeline does for these models, step by step,
so a port to a device (C++, a KPU toolchain) can follow it line by line. It is a deliberate
standalone copy of faceprint's decoding (faceprint/detection/blazeface.py, mtcnn.py,
retinaface.py, blazeface_mtcnn.py, alignment.py): a bundle must run without faceprint, and the
export test checks that the two give the same faceprints.

Detectors (``bundle.json``'s ``detector.kind``):

- ``blazeface``: one BlazeFace pass over the letterboxed image, its keypoints used for alignment.
- ``blazeface-mtcnn`` (the default pipeline): BlazeFace full range proposes faces (with extra
  passes over overlapping square tiles on large images, for small faces); MTCNN's output network
  ONet re-scores each proposal, tightens its box and places five precise landmarks. Where that
  leaves no face (BlazeFace misses some faces that fill the whole frame), the full MTCNN cascade
  (PNet over an image pyramid, RNet, ONet) runs instead, and where that finds none either,
  RetinaFace (one pass at 320 px: faces a mask hides half of).
"""

import hashlib
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

FORMAT = "faceprint.bundle/2"


class _Input:
    def __init__(self, name: str) -> None:
        self.name = name


class TFLite:
    """A ``.tflite`` network behind the two calls the runner makes of an onnxruntime session. The
    model's batch is fixed (expo MobileFaceNet's is 2), so inputs are fed in batches of that size,
    the last one padded with zeros."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model = Interpreter(model_path=str(path))
        self.model.allocate_tensors()
        self.input = self.model.get_input_details()[0]
        self.outputs = {o["name"]: o["index"] for o in self.model.get_output_details()}

    def get_inputs(self) -> list:
        return [_Input(self.input["name"])]

    def run(self, names, feeds: dict) -> list:
        x, batch = next(iter(feeds.values())), int(self.input["shape"][0])
        parts = []
        for i in range(0, len(x), batch):
            part = x[i:i + batch]
            pad = batch - len(part)
            self.model.set_tensor(self.input["index"], np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)]))
            self.model.invoke()
            parts.append([self.model.get_tensor(self.outputs[n])[:batch - pad] for n in names or self.outputs])
        return [np.concatenate(out) for out in zip(*parts)]


def open_network(path: Path):
    """An onnxruntime session for a ``.onnx`` file, LiteRT's interpreter for a ``.tflite`` one."""
    if path.suffix == ".tflite":
        return TFLite(path)
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# -- BlazeFace ------------------------------------------------------------------------------------

def anchors(d: dict) -> np.ndarray:
    """SSD anchor centres in [0, 1]: the centre of each feature map cell, maps in order."""
    n, centres = d["size"], []
    for stride, per_cell in d["anchors"]:
        c = (np.arange(n // stride, dtype=np.float32) + 0.5) / (n // stride)
        ys, xs = np.meshgrid(c, c, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(centres)


def blazeface_pass(session, d: dict, anchor: np.ndarray, rgb: np.ndarray, ox: float = 0.0, oy: float = 0.0):
    """One letterboxed pass: candidate boxes, scores and keypoints above the score threshold, in the
    pixels of the image the window (at ``ox``, ``oy``) was cut from, before suppression."""
    n = d["size"]
    h, w = rgb.shape[:2]
    s = n / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    px, py = (n - nw) // 2, (n - nh) // 2
    canvas = np.zeros((n, n, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
    x = x.transpose(2, 0, 1)[None] if d["nchw"] else x[None]
    reg, cls = session.run([d["outputs"]["regressor"], d["outputs"]["classifier"]],
                           {session.get_inputs()[0].name: np.ascontiguousarray(x)})
    logits = np.clip(cls[0, :, 0], -d["raw_score_clip"], d["raw_score_clip"]).astype(np.float64)
    scores = 1.0 / (1.0 + np.exp(-logits))  # in float64: float32 overflows at the clip
    keep = scores >= d["score_threshold"]
    reg, scores, anchor = reg[0, keep], scores[keep], anchor[keep]
    cx, cy = reg[:, 0] + anchor[:, 0] * n, reg[:, 1] + anchor[:, 1] * n  # offsets from 1x1 anchors
    boxes = np.stack([cx - reg[:, 2] / 2, cy - reg[:, 3] / 2, cx + reg[:, 2] / 2, cy + reg[:, 3] / 2], axis=1)
    points = reg[:, 4:16].reshape(-1, 6, 2) + anchor[:, None, :] * n
    scale, pad = np.array([nw / w, nh / h], np.float32), np.array([px, py], np.float32)
    offset = np.array([ox, oy], np.float32)
    return ((boxes.reshape(-1, 2, 2) - pad) / scale + offset).reshape(-1, 4), scores, (points - pad) / scale + offset


def windows(h: int, w: int, tiles: int, size: int, step: float) -> list[tuple[int, int, int]]:
    """Square windows (x, y, side), ``tiles`` across the long side and ``step`` of a side apart;
    never smaller than the network input (upsampling adds no detail, only false faces)."""
    n = min(tiles, int(1 + (max(h, w) / size - 1) / step))
    if n < 2:
        return []
    side = max(h, w) / (1 + step * (n - 1))

    def starts(dim: int) -> np.ndarray:
        count = 1 + max(0, int(np.ceil((dim - side) / (step * side) - 1e-6)))
        return np.linspace(0, max(dim - side, 0), count).round().astype(int)
    s = int(np.ceil(side))
    return [(int(x), int(y), s) for y in starts(h) for x in starts(w)]


def blazeface(session, d: dict, anchor: np.ndarray, rgb: np.ndarray, tiles: int = 0, step: float = 0.75) -> list:
    """Faces as (box x1 y1 x2 y2, score, keypoints by name), best first: the whole-image pass and any
    tiled ones, merged by MediaPipe's weighted suppression (each cluster of overlapping boxes
    becomes one face, its score-weighted mean, which is steadier than the single best anchor)."""
    h, w = rgb.shape[:2]
    parts = [blazeface_pass(session, d, anchor, rgb)]
    for x, y, side in windows(h, w, tiles, d["size"], step):
        parts.append(blazeface_pass(session, d, anchor, rgb[y:y + side, x:x + side], x, y))
    boxes, scores, points = (np.concatenate([p[i] for p in parts]) for i in range(3))
    faces, order = [], np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order.size:
        top = order[0]
        lo, hi = np.maximum(boxes[top, :2], boxes[order, :2]), np.minimum(boxes[top, 2:], boxes[order, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        member = inter / np.maximum(areas[top] + areas[order] - inter, 1e-12) > d["iou_threshold"]
        member[0] = True
        cluster, order = order[member], order[~member]
        wt = scores[cluster][:, None]
        box = (boxes[cluster] * wt).sum(0) / wt.sum()
        pts = (points[cluster] * wt[:, :, None]).sum(0) / wt.sum()
        box = np.array([max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(w)), min(box[3], float(h))])
        faces.append((box, float(scores[top]), dict(zip(d["keypoints"], pts.tolist()))))
    return faces


# -- MTCNN ----------------------------------------------------------------------------------------
# Boxes are continuous pixel coordinates: (0, 0) is the top-left pixel's top-left corner.

def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy suppression, best first; ``min`` measures overlap over the smaller box,
    which also drops a small box nested in a bigger one."""
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        denom = area[i] + area[rest] - inter if mode == "union" else np.minimum(area[i], area[rest])
        over = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[over <= threshold]
    return np.asarray(keep, dtype=np.intp)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 RGB -> N x 3 x H x W float32, (x - 127.5) / 128."""
    x = pixels.astype(np.float32)
    x -= 127.5
    x *= 1.0 / 128.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square about its centre: RNet and ONet see square crops."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """The networks' box offsets, fractions of the box's width and height."""
    return boxes + reg * np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)


def integer_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes rounded to whole pixels for cropping, at least one pixel a side."""
    b = np.rint(boxes).astype(np.int64)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    return b


def crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """size x size crops of integer boxes, black outside the image (as in MTCNN's training)."""
    h, w = rgb.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if sx2 <= sx1 or sy2 <= sy1:
            continue
        patch = rgb[sy1:sy2, sx1:sx2]
        if (sx1, sy1, sx2, sy2) != (x1, y1, x2, y2):
            patch = cv2.copyMakeBorder(patch, sy1 - y1, y2 - sy2, sx1 - x1, x2 - sx2, cv2.BORDER_CONSTANT, value=0)
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def pnet(session, m: dict, rgb: np.ndarray) -> np.ndarray:
    """Stage 1: PNet's 12 px window (stride 2) over an image pyramid whose first level maps
    ``min_face_size`` onto the window; candidate squares."""
    h, w = rgb.shape[:2]
    scale, found = 12.0 / m["min_face_size"], []
    side = min(h, w) * scale
    while side >= 12:
        level = cv2.resize(rgb, (math.ceil(w * scale), math.ceil(h * scale)), interpolation=cv2.INTER_AREA)
        prob, reg = session.run(None, {"image": normalise(level[None])})
        ys, xs = np.nonzero(prob[0, 1] >= m["thresholds"][0])
        if len(ys):
            # a cell's window in the image, rounded as MTCNN's reference (MATLAB) code does
            cells = np.stack([xs, ys], axis=1) * 2.0
            boxes = np.concatenate([np.floor((cells + 1) / scale) - 1, np.floor((cells + 12) / scale)], axis=1)
            scores = prob[0, 1, ys, xs]
            keep = nms(boxes, scores.astype(np.float64), m["nms_level"])
            found.append(np.concatenate([boxes, scores[:, None], reg[0][:, ys, xs].T], axis=1)[keep])
        scale *= m["factor"]
        side *= m["factor"]
    if not found:
        return np.empty((0, 4))
    found = np.concatenate(found)
    found = found[nms(found[:, :4], found[:, 4], m["nms_stage"])]
    boxes = found[:, :4]  # the reference scales PNet's offsets by one pixel less than the width
    return square(boxes + found[:, 5:9] * np.tile(boxes[:, 2:4] - boxes[:, 0:2] - 1, 2))


def rnet(session, m: dict, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Stage 2: RNet rejects most of PNet's candidates and tightens the rest."""
    boxes = integer_boxes(boxes)
    prob, reg = session.run(None, {"image": normalise(crops(rgb, boxes, 24))})
    ok = prob[:, 1] > m["thresholds"][1]
    boxes, scores, reg = boxes[ok].astype(np.float64), prob[ok, 1], reg[ok]
    keep = nms(boxes, scores.astype(np.float64), m["nms_stage"])
    return square(regress(boxes[keep], reg[keep]))


def onet(session, m: dict, rgb: np.ndarray, boxes: np.ndarray) -> list:
    """Stage 3: ONet scores each square, gives its final box and five landmarks; faces best first."""
    boxes = integer_boxes(boxes)
    prob, reg, marks = session.run(None, {"image": normalise(crops(rgb, boxes, 48))})
    ok = prob[:, 1] > m["thresholds"][2]
    boxes, scores, reg, marks = boxes[ok].astype(np.float64), prob[ok, 1], reg[ok], marks[ok]
    # landmarks are fractions of the crop ONet saw (the box before regression): 5 x, then 5 y
    w, h = boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]
    xs, ys = boxes[:, 0:1] + marks[:, :5] * w, boxes[:, 1:2] + marks[:, 5:] * h
    boxes = regress(boxes, reg)
    keep = nms(boxes, scores.astype(np.float64), m["nms_stage"], mode="min")
    return [(boxes[k], float(scores[k]), dict(zip(m["landmarks"], zip(xs[k].tolist(), ys[k].tolist())))) for k in keep]


def retinaface(session, r: dict, rgb: np.ndarray) -> list:
    """RetinaFace on the image scaled to fit ``size`` and padded below and right: its anchors (two
    sides per cell of each level), offsets decoded with the variances, then suppression."""
    n, h, w = r["size"], *rgb.shape[:2]
    k = n / max(h, w)
    x = np.zeros((1, n, n, 3), np.float32)
    small = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    x[0, :small.shape[0], :small.shape[1]] = small
    offsets, marks, probs = (o[0] for o in session.run(None, {session.get_inputs()[0].name: x}))
    parts = []
    for stride, sides in r["levels"]:
        c = (np.arange(n // stride, dtype=np.float32) + 0.5) * stride
        ys, xs = np.meshgrid(c, c, indexing="ij")
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), len(sides), axis=0)
        parts.append(np.hstack([centres, np.tile(np.repeat(sides, 2).reshape(-1, 2), (len(c) ** 2, 1))]))
    a = np.concatenate(parts).astype(np.float32)
    keep = probs[:, 1] >= r["score_threshold"]
    a, offsets, marks, scores = a[keep], offsets[keep], marks[keep], probs[keep, 1]
    v0, v1 = r["variances"]
    centres, sides = a[:, :2] + offsets[:, :2] * v0 * a[:, 2:], a[:, 2:] * np.exp(offsets[:, 2:] * v1)
    boxes = np.hstack([centres - sides / 2, centres + sides / 2]) / k
    points = (a[:, None, :2] + marks.reshape(-1, 5, 2) * v0 * a[:, None, 2:]) / k
    return [(np.clip(boxes[i], 0, [w, h, w, h]), float(scores[i]),
             {name: (float(px), float(py)) for name, (px, py) in zip(r["keypoints"], points[i])})
            for i in nms(boxes, scores, r["iou_threshold"])]


# -- the pipeline ---------------------------------------------------------------------------------

class Runner:
    def __init__(self, folder: Path = Path(__file__).resolve().parent) -> None:
        self.spec = json.loads((folder / "bundle.json").read_text())
        if self.spec.get("format") != FORMAT:
            raise SystemExit(f"bundle.json: format {self.spec.get('format')!r}, this runner reads {FORMAT}")
        for name, sha in self.spec["files"].items():
            if hashlib.sha256((folder / name).read_bytes()).hexdigest() != sha:
                raise SystemExit(f"{name}: its SHA-256 is not the one bundle.json gives (damaged or replaced)")
        self.det, self.emb = self.spec["detector"], self.spec["embedder"]
        self.sessions = {role: open_network(folder / name) for role, name in self.det["models"].items()}
        self.emb_session = open_network(folder / self.emb["model"])
        self.anchors = anchors(self.det["blazeface"])

    def detect(self, rgb: np.ndarray) -> list:
        """Faces as (box x1 y1 x2 y2, score, landmarks by name), by the bundle's detector."""
        d, s = self.det, self.sessions
        if d["kind"] == "blazeface":
            return blazeface(s["blazeface"], d["blazeface"], self.anchors, rgb)
        t, m = d["tiles"], d["mtcnn"]  # blazeface-mtcnn
        tiles = min(t["max_tiles"], math.ceil(max(rgb.shape[:2]) / (t["reach"] * t["min_face_size"])))
        proposals = blazeface(s["blazeface"], d["blazeface"], self.anchors, rgb, tiles, t["step"])
        faces = onet(s["onet"], m, rgb, square(np.array([f[0] for f in proposals]))) if proposals else []
        return faces or self.fallback(rgb)

    def fallback(self, rgb: np.ndarray) -> list:
        """The full MTCNN cascade, on the image shrunk to ``fallback_side`` at most: it is for faces
        filling the frame, which survive shrinking (a big photo's pyramid would cost seconds). Where
        it finds nothing either, RetinaFace (faces a mask hides half of)."""
        s, m = self.sessions, self.det["mtcnn"]
        k = self.det["fallback_side"] / max(rgb.shape[:2])
        small = cv2.resize(rgb, (round(rgb.shape[1] * k), round(rgb.shape[0] * k)), interpolation=cv2.INTER_AREA) if k < 1 else rgb
        boxes = pnet(s["pnet"], m, small)
        if len(boxes):
            boxes = rnet(s["rnet"], m, small, boxes)
        faces = onet(s["onet"], m, small, boxes) if len(boxes) else []
        if faces and k < 1:
            faces = [(box / k, score, {n: (x / k, y / k) for n, (x, y) in points.items()}) for box, score, points in faces]
        return faces or retinaface(s["retinaface"], self.det["retinaface"], rgb)

    def align(self, rgb: np.ndarray, landmarks: dict) -> np.ndarray:
        """The face's landmarks onto the embedder's template by a least-squares similarity (Umeyama)."""
        template = self.emb["template"]
        common = [k for k in template if k in landmarks]
        src, dst = np.array([landmarks[k] for k in common], np.float64), np.array([template[k] for k in common])
        mu_s, mu_d = src.mean(0), dst.mean(0)
        s, t = src - mu_s, dst - mu_d
        u, sig, vt = np.linalg.svd(t.T @ s / len(src))
        sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
        scale = (sig * np.diag(sign)).sum() / ((s ** 2).sum() / len(src))
        rot = u @ sign @ vt
        m = np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])
        size = self.emb["size"]
        return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """A unit-length faceprint of one aligned RGB crop, fed in the channel order it was trained on."""
        e = self.emb
        crop = crop[..., ::-1] if e["channels"] == "BGR" else crop
        x = (crop.astype(np.float32)[None] - e["mean"]) * e["scale"]
        x = x.transpose(0, 3, 1, 2) if e["nchw"] else x
        y = self.emb_session.run(None, {self.emb_session.get_inputs()[0].name: np.ascontiguousarray(x)})[0][0]
        return y / max(float(np.linalg.norm(y)), 1e-12)

    def embed_image(self, path: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The largest face's box and faceprint, or None where no face is found."""
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"{path}: not an image OpenCV can read")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces = self.detect(rgb)
        if not faces:
            return None
        box, _, landmarks = max(faces, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
        return box, self.embed(self.align(rgb, landmarks))


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in ("embed", "verify") or (argv[0] == "verify" and len(argv) != 3):
        raise SystemExit(__doc__.split("\n\n")[1])
    runner = Runner()
    found = {path: runner.embed_image(path) for path in argv[1:]}
    if argv[0] == "embed":
        for path, f in found.items():
            print(json.dumps({"image": path, "box": None if f is None else [round(float(v), 2) for v in f[0]],
                              "vector": None if f is None else [float(v) for v in f[1]]}))
        return
    (a, fa), (b, fb) = found.items()
    if fa is None or fb is None:
        raise SystemExit(f"{a if fa is None else b}: no face found")
    distance = 1.0 - float(fa[1] @ fb[1])
    same = distance <= runner.emb["threshold"]
    print(json.dumps({"distance": round(distance, 6), "same": same, "threshold": runner.emb["threshold"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
