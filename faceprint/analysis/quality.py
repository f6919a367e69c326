"""Face quality: how well a face is likely to be recognised.

``face_quality(image, face)`` (model ``learned``, the default) is gradient-boosted regression trees
over nine cues (``cues``): eight cheap measures of the face and the length of its raw faceprint by
the default embedder (one embedding: faces the model finds hard get short vectors). The trees are
fitted by ``benchmarks/quality.py`` to predict a face's mean cosine similarity to the same person's
other LFW photos (the faces of View 2's pairs, faceplugin on blazeface-mtcnn faces) and shipped as
``data/quality-learned.json``; the prediction is mapped to (0, 1) by a logistic curve that gives 0.5
at the 10th percentile of LFW faces' prediction. LFW holds almost no blurred or small faces, so the
fit cannot learn what those cost; two gates (each 1 across nearly all of LFW) supply it: sharpness
min(1, v / SHARPNESS_FULL) and size min(1, eye distance / 35 px). docs/benchmarks.md gives its
error-versus-reject curve on LFW.

The ``video`` model is what the video engine and ``capture`` judge each frame's faces by: it needs no
alignment and no embedding, and on real footage it ranks faces by how well they match far better
than ``learned``, whose LFW fit meets its limits there (docs/benchmarks.md, video quality).

The ``heuristic`` model multiplies four parts, each in [0, 1], so any one bad cue sinks it; its
parts also fill the ``learned`` model's record, as readable cues:

- ``sharpness``: variance v of the Laplacian of the face aligned onto the 112x112 ArcFace crop
  (grey), as v / (v + SHARPNESS_HALF): 0.5 at SHARPNESS_HALF, the 10th percentile of LFW faces.
- ``size``: the distance between the eyes over the 35 px the ArcFace crop places them apart,
  capped at 1: a smaller face is upsampled, its detail made up.
- ``pose``: cos(yaw) x cos(pitch), clipped at 0: a turned face shows less of itself.
- ``detector``: the detector's confidence.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..alignment import ARCFACE_112, align
from ..embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from ..errors import FaceprintError
from ..types import Face, Image
from . import AttributeModel
from .pose import eye_distance, nose_offset, tilt
from .record import Quality

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor


#: Laplacian variance giving sharpness 0.5: the 10th percentile (69.4) of 500 LFW faces
#: (benchmarks/analysis.py --only quality)
SHARPNESS_HALF = 70.0
#: Laplacian variance from which the learned score's sharpness gate is 1: the 5th percentile (57.2)
#: of the same 500 LFW faces, so the gate acts only on faces blurrier than the fit has seen
SHARPNESS_FULL = 57.0
_EYE_SPAN = float(np.linalg.norm(np.subtract(ARCFACE_112["right_eye"], ARCFACE_112["left_eye"])))


#: Nose offset (in eye distances, ``pose.nose_offset``) of about 25 degrees of yaw on a real head:
#: the ``video`` score falls from full here to 0 at twice it, and ``capture`` takes no face beyond it.
TURNED_AWAY = 0.3


def _has_eyes(face: Face) -> bool:
    return "left_eye" in face.landmarks and "right_eye" in face.landmarks


def _box_crop(image: Image, face: Face, size: int) -> np.ndarray:
    """The face's box, clipped to the image (at least one pixel, even for a box wholly outside it),
    stretched to ``size`` x ``size``."""
    H, W = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    x1, y1 = min(max(x1, 0), W - 1), min(max(y1, 0), H - 1)
    x2, y2 = min(max(x2, x1 + 1), W), min(max(y2, y1 + 1), H)
    return cv2.resize(image[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)


def _crop(image: Image, face: Face, template: dict = ARCFACE_112, size: int = 112) -> np.ndarray:
    """The face aligned on ``template`` (default the 112x112 ArcFace crop), RGB; its box, stretched,
    when it has no eye landmarks."""
    return align(image, face, template, size).pixels if _has_eyes(face) else _box_crop(image, face, size)


def _grey_crop(image: Image, face: Face) -> np.ndarray:
    return cv2.cvtColor(_crop(image, face), cv2.COLOR_RGB2GRAY)


def _eye_distance(face: Face) -> float:
    """In px; without eye landmarks, 0.4 box widths (where the eyes sit for the detectors faceprint has)."""
    eyes = eye_distance(face)
    return 0.4 * face.width if eyes is None else eyes


def laplacian_variance(image: Image, face: Face) -> float:
    """Sharpness of the face on the ArcFace crop (its box, stretched, when it has no eye landmarks)."""
    return float(cv2.Laplacian(_grey_crop(image, face), cv2.CV_64F).var())


#: The cues the learned score reads, in the order of ``cues``' output.
CUES = ("detector", "eyes", "turn", "tilt", "roll", "sharpness", "contrast", "brightness", "norm")


def cues(image: Image, face: Face, embedder: Embedder | None = None) -> np.ndarray:
    """Measures of one face (order: ``CUES``):

    detector: logit of the detector's confidence (scores crowd near 1; the logit spreads them);
    eyes: log2 of the eye distance in px; turn: the nose's offset from the eyes' midpoint along
    the eye line, in eye distances; tilt: the nose's height between the eyes and the mouth, off
    its frontal 0.53; roll: the eye line's angle in degrees; sharpness: log(1 + the Laplacian
    variance on the ArcFace crop); contrast and brightness: std and mean of that crop's grey
    levels over 255; norm: log of the length of the face's raw faceprint by ``embedder`` (default:
    the one the shipped model was fitted with), on the crop that embedder is fed. Without
    landmarks, turn, tilt and roll are 0, the eyes 0.4 box widths apart and the crop the box
    stretched.
    """
    s = float(np.clip(face.score, 1e-4, 1 - 1e-6))
    lm = face.landmarks
    turn = tilt = roll = 0.0
    eyes = max(_eye_distance(face), 1e-3)
    if _has_eyes(face):
        le, re = np.asarray(lm["left_eye"], float), np.asarray(lm["right_eye"], float)
        axis = re - le
        roll = abs(float(np.degrees(np.arctan2(axis[1], axis[0]))))
        mid = (le + re) / 2
        if "nose" in lm:
            turn = abs(float((np.asarray(lm["nose"]) - mid) @ axis)) / eyes ** 2
            if "mouth_left" in lm and "mouth_right" in lm:
                mouth = (np.asarray(lm["mouth_left"]) + np.asarray(lm["mouth_right"])) / 2
                normal = np.array([-axis[1], axis[0]]) / eyes
                down = float((mouth - mid) @ normal)
                tilt = abs(float((np.asarray(lm["nose"]) - mid) @ normal) / down - 0.53) if down > 1e-3 else 1.0
    crop = _crop(image, face)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    lap = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    embedder = embedder or get_embedder(shipped_model()["embedder"])
    if embedder.size != 112 or embedder.template != ARCFACE_112:  # the crop this embedder is fed
        crop = _crop(image, face, embedder.template, embedder.size)
    norm = float(embedder.raw_norms(crop[None])[0])
    return np.array([np.log(s / (1 - s)), np.log2(eyes), turn, tilt, roll, np.log1p(lap),
                     grey.std() / 255.0, grey.mean() / 255.0, np.log(max(norm, 1e-6))])


class HeuristicQuality(AttributeModel):
    name = "heuristic"
    attribute = "quality"
    needs = ("pose",)

    def predict(self, image: Image, face: Face, found: dict) -> Quality:
        return self._parts(face, found, laplacian_variance(image, face))

    def _parts(self, face: Face, found: dict, variance: float, score: float | None = None) -> Quality:
        """The four parts from the crop's Laplacian ``variance``; ``score`` None: their product."""
        sharp = variance / (variance + SHARPNESS_HALF)
        size = min(1.0, _eye_distance(face) / _EYE_SPAN)
        pose = found["pose"]
        turn = max(0.0, float(np.cos(np.radians(pose.yaw)) * np.cos(np.radians(pose.pitch))))
        det = float(np.clip(face.score, 0, 1))
        return Quality(sharp * size * turn * det if score is None else score, sharp, size, turn, det, self.name)


#: The learned model's file in ``faceprint/analysis/data``, written by ``python benchmarks/quality.py``
#: (fitted on all 10 folds of LFW View 2; benchmarks/results/quality.json): the embedder whose norm
#: it reads, the trees (one row per tree, its nodes padded to the longest: split cue, threshold,
#: children, leaf flag, value), their baseline and depth, and the logistic's half (the prediction at
#: score 0.5, its 10th percentile over LFW faces) and spread (the predictions' standard deviation).
MODEL_FILE = "quality-learned.json"


@functools.cache
def shipped_model() -> dict:
    """The learned model ``face_quality`` scores with, read once, its trees as arrays."""
    model = json.loads(resources.files(__package__).joinpath("data", MODEL_FILE).read_text())
    if model["cues"] != list(CUES):
        raise FaceprintError(f"{MODEL_FILE} reads the cues {model['cues']}, not this version's {list(CUES)}: "
                             "refit it with benchmarks/quality.py --write-model")
    return {**model, "trees": {k: np.asarray(v) for k, v in model["trees"].items()}}


def predict_similarity(model: dict, c: np.ndarray) -> np.ndarray:
    """The trees' predicted similarity for rows of ``cues``: every row walks every tree at once,
    one level a step (numpy, no per-node Python)."""
    c = np.atleast_2d(c)
    trees = model["trees"]
    feature, threshold, left, right, leaf, value = (np.asarray(trees[k]) for k in
                                                    ("feature", "threshold", "left", "right", "leaf", "value"))
    t = np.arange(len(feature))
    rows = np.arange(len(c))[:, None]
    node = np.zeros((len(c), len(feature)), int)
    for _ in range(model["depth"]):
        below = c[rows, feature[t, node]] <= threshold[t, node]
        node = np.where(leaf[t, node], node, np.where(below, left[t, node], right[t, node]))
    return model["baseline"] + value[t, node].sum(1)


def tree_regressor() -> HistGradientBoostingRegressor:
    """The unfitted trees ``fit_model`` fits: scikit-learn's HistGradientBoostingRegressor at its
    defaults, seeded, with no held-out early stop (every face is used, and a refit is identical)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(early_stopping=False, random_state=0)


def fit_model(x: np.ndarray, y: np.ndarray, every: np.ndarray, embedder: str = DEFAULT_EMBEDDER) -> dict:
    """A learned model: trees of ``y`` (a face's mean similarity to its person's other photos) on rows
    ``x`` of ``cues`` (``embedder``'s norm), ``tree_regressor``; the logistic's half and spread from
    the predictions over ``every`` face.

    scikit-learn has no public reader of boosted trees, so their arrays are read from its private
    ``_predictors``, and checked against its own predictions: a scikit-learn that stores them
    differently fails here, not in ``face_quality``."""
    m = tree_regressor().fit(x, y)
    nodes = [p.nodes for (p,) in m._predictors]
    width = max(len(n) for n in nodes)

    def padded(field: str) -> list:
        return [n[field].tolist() + [0] * (width - len(n)) for n in nodes]
    model = {"embedder": embedder, "cues": list(CUES), "baseline": float(m._baseline_prediction.ravel()[0]),
             "depth": int(max(n["depth"].max() for n in nodes)),
             "trees": {"feature": padded("feature_idx"), "threshold": padded("num_threshold"), "left": padded("left"),
                       "right": padded("right"), "leaf": [[bool(v) for v in row] for row in padded("is_leaf")],
                       "value": padded("value")}}
    predicted = predict_similarity(model, every)
    if not np.allclose(predicted, m.predict(every), rtol=0, atol=1e-9):
        raise FaceprintError("the exported quality trees do not reproduce scikit-learn's predictions")
    return {**model, "half": float(np.quantile(predicted, 0.1)), "spread": float(predicted.std())}


def score_cues(c: np.ndarray, model: dict | None = None) -> np.ndarray:
    """``face_quality`` from rows of ``cues``; a ``model`` other than the shipped one lets the benchmark
    score held-out folds."""
    model = model or shipped_model()
    c = np.atleast_2d(c)
    learned = 1.0 / (1.0 + np.exp(-(predict_similarity(model, c) - model["half"]) / model["spread"]))
    sharp = np.minimum(1.0, np.expm1(c[:, CUES.index("sharpness")]) / SHARPNESS_FULL)
    size = np.minimum(1.0, np.exp2(c[:, CUES.index("eyes")]) / _EYE_SPAN)
    return learned * sharp * size


def face_quality(image: Image, face: Face) -> float:
    """How well this face is likely to be recognised, in [0, 1]: 0.5 at the 10th percentile of LFW
    faces. Runs the default embedder once on the face (loading it on first use)."""
    return float(score_cues(cues(image, face))[0])


class LearnedQuality(HeuristicQuality):
    """``face_quality`` as the score; the heuristic's four parts alongside, as readable cues."""

    name = "learned"

    def __init__(self) -> None:
        self._embedder = get_embedder(shipped_model()["embedder"])  # fetched now: a failure fails the attribute

    def predict(self, image: Image, face: Face, found: dict) -> Quality:
        c = cues(image, face, self._embedder)  # the crop is aligned and measured once, for the score and the parts
        variance = float(np.expm1(c[CUES.index("sharpness")]))
        return self._parts(face, found, variance, float(score_cues(c)[0]))


def turn(face: Face) -> float | None:
    """How far the nose sits from the eyes' midpoint, in eye distances (0: frontal); None without landmarks."""
    offset = nose_offset(face)
    return None if offset is None else abs(offset)


def box_sharpness(image: Image, face: Face) -> float:
    """Variance of the Laplacian over the face's box scaled to 112 px (no alignment: cheap enough for
    every face of every frame), so big faces are not favoured."""
    grey = cv2.cvtColor(_box_crop(image, face, 112), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _video_parts(image: Image, face: Face) -> tuple[float, float, float, float]:
    """The ``video`` score's parts, each in [0, 1]: sharpness, size, pose (turn and tilt), detector."""
    side = min(face.width, face.height)
    size = np.clip((side - 20.0) / 40.0, 0, 1)  # < 20 px: nothing; from 60 px: full
    score = np.clip((float(face.score) - 0.7) / 0.25, 0, 1)
    t = turn(face)
    frontal = 1.0 if t is None else np.clip((2 * TURNED_AWAY - t) / TURNED_AWAY, 0, 1)
    p = tilt(face)
    level = 1.0 if p is None else np.clip((0.3 - p) / 0.15, 0, 1)
    # on generated clips, faces with a sharpness of 20-30 were still named as often as sharper ones;
    # identification falls apart below about 15
    sharp = np.clip((box_sharpness(image, face) - 10.0) / 15.0, 0, 1)
    return float(sharp), float(size), float(frontal * level), float(score)


def video_quality(image: Image, face: Face) -> float:
    """How much a single look at this face in a video frame can be trusted, 0-1: size, detector
    confidence, head turn, head tilt and sharpness, each mapped to 0-1 and multiplied (any one bad
    spoils it). Well under a millisecond a face."""
    return float(np.prod(_video_parts(image, face)))


class VideoQuality(AttributeModel):
    """``video_quality`` as the score, its parts alongside."""

    name = "video"
    attribute = "quality"

    def predict(self, image: Image, face: Face, found: dict) -> Quality:
        parts = _video_parts(image, face)
        return Quality(float(np.prod(parts)), *parts, self.name)
