"""A faceprint bundle's runner: detect, align and embed faces with only onnxruntime, numpy and OpenCV.

    python runner.py embed IMAGE...          one JSON line per image: the largest face's box and vector
    python runner.py verify IMAGE_A IMAGE_B  the distance, and whether it is one person at the bundle's threshold

It reads ``bundle.json`` beside it (written by ``faceprint export``) and checks every model file's
SHA-256 before loading it. It does what faceprint's pipeline does for these models, step by step,
so a port to a device (C++, a KPU toolchain) can follow it line by line.
"""

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort


class Runner:
    def __init__(self, folder: Path = Path(__file__).resolve().parent) -> None:
        self.spec = json.loads((folder / "bundle.json").read_text())
        for name, sha in self.spec["files"].items():
            if hashlib.sha256((folder / name).read_bytes()).hexdigest() != sha:
                raise SystemExit(f"{name}: its SHA-256 is not the one bundle.json gives (damaged or replaced)")
        self.det, self.emb = self.spec["detector"], self.spec["embedder"]
        session = lambda name: ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])  # noqa: E731
        self.det_session, self.emb_session = session(self.det["model"]), session(self.emb["model"])
        n = self.det["size"]
        centres = []
        for stride, per_cell in self.det["anchors"]:  # SSD anchors: centres of each feature map's cells
            c = (np.arange(n // stride, dtype=np.float32) + 0.5) / (n // stride)
            ys, xs = np.meshgrid(c, c, indexing="ij")
            centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        self.anchors = np.concatenate(centres)

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float, dict]]:
        """Faces as (box x1 y1 x2 y2, score, keypoints by name), best first: BlazeFace's letterboxed
        pass, anchor decoding and MediaPipe's weighted suppression."""
        d, n = self.det, self.det["size"]
        h, w = rgb.shape[:2]
        s = n / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        px, py = (n - nw) // 2, (n - nh) // 2
        canvas = np.zeros((n, n, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        x = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
        x = x.transpose(2, 0, 1)[None] if d["nchw"] else x[None]
        reg, cls = self.det_session.run([d["outputs"]["regressor"], d["outputs"]["classifier"]],
                                        {self.det_session.get_inputs()[0].name: np.ascontiguousarray(x)})
        logits = np.clip(cls[0, :, 0], -d["raw_score_clip"], d["raw_score_clip"]).astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= d["score_threshold"]
        reg, scores, anchors = reg[0, keep], scores[keep], self.anchors[keep]
        cx, cy = reg[:, 0] + anchors[:, 0] * n, reg[:, 1] + anchors[:, 1] * n
        boxes = np.stack([cx - reg[:, 2] / 2, cy - reg[:, 3] / 2, cx + reg[:, 2] / 2, cy + reg[:, 3] / 2], axis=1)
        points = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * n
        scale, pad = np.array([nw / w, nh / h], np.float32), np.array([px, py], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) - pad) / scale).reshape(-1, 4)
        points = (points - pad) / scale
        faces, order = [], np.argsort(-scores, kind="stable")
        areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        while order.size:  # each cluster of overlapping boxes becomes one face, its score-weighted mean
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

    def align(self, rgb: np.ndarray, keypoints: dict) -> np.ndarray:
        """The face's keypoints onto the embedder's template by a least-squares similarity (Umeyama)."""
        template = self.emb["template"]
        common = [k for k in template if k in keypoints]
        src, dst = np.array([keypoints[k] for k in common], np.float64), np.array([template[k] for k in common])
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
        """A unit-length faceprint of one aligned crop."""
        e = self.emb
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
        box, _, keypoints = max(faces, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
        return box, self.embed(self.align(rgb, keypoints))


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
