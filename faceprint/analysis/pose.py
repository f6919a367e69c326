"""Head pose in degrees (conventions on ``record.Pose``): from the 68 landmarks with ``cv2.solvePnP``
(the default: a fraction of a millisecond once the landmarks are there) or faceplugin's Hopenet ``fr_pose``.

Also the proxies read off the detector's five points for free (``nose_offset``, ``tilt``): the video
engine, enrolment from a camera and the liveness challenge read them on every frame."""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Face, Image
from . import AttributeModel, OnnxAttribute
from ._crops import box_like, imagenet, softmax
from .record import Pose

#: A generic head (arbitrary units, about 0.1 mm) in camera axes for a frontal face: x to the image's
#: right, y down, z away from the camera; the nose tip at the origin. Points: nose tip (iBUG 30),
#: chin (8), outer eye corners (36, 45), mouth corners (48, 54): the usual six-point model.
_HEAD = np.array([[0, 0, 0], [0, 330, 65], [-225, -170, 135], [225, -170, 135], [-150, 150, 125], [150, 150, 125]],
                 np.float64)
#: The usual model's depths read 1.65x Hopenet's (fr-pose) yaw on LFW; x1.6 they match it: slope 1.05,
#: mean absolute difference 3.0 degrees, r = 0.97 on 120 faces (benchmarks/analysis.py --only posefit).
DEPTH = 1.6
_POINTS = [30, 8, 36, 45, 48, 54]


def _angles(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of R = Rz(roll) Ry(yaw) Rx(-pitch), signs as ``Pose`` defines them."""
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1, 1)))
    pitch = -np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


class LandmarkPose(AttributeModel):
    """The rotation that best maps a generic 3-D head's six points onto the face's 68-point ones.

    The camera looks straight at the face (principal point on it), so the angles are relative to the
    line of sight, as a crop-based model sees them; focal length = the image's long side.
    """

    name = "pnp68"
    attribute = "pose"
    needs = ("landmarks68",)

    def __init__(self, depth: float = DEPTH) -> None:
        self._head = _HEAD * [1, 1, depth]

    def predict(self, image: Image, face: Face, found: dict) -> Pose:
        p = found["landmarks68"].points[_POINTS].astype(np.float64)
        f = float(max(image.shape[:2]))
        centre = p.mean(0)
        camera = np.array([[f, 0, centre[0]], [0, f, centre[1]], [0, 0, 1]])
        eyes = max(np.linalg.norm(p[3] - p[2]), 1.0)
        z = f * 450 / eyes  # distance at which the head's 450-unit eye span looks this wide
        t = np.array([[(p[0, 0] - centre[0]) * z / f], [(p[0, 1] - centre[1]) * z / f], [z]])
        ok, rvec, tvec = cv2.solvePnP(self._head, p, camera, None, np.zeros((3, 1)), t, useExtrinsicGuess=True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
        return Pose(*_angles(cv2.Rodrigues(rvec)[0]), self.name)


class FacepluginPose(OnnxAttribute):
    """Hopenet (66 bins of 3 degrees per angle, expectation over the softmax) on the detector box grown
    by a quarter each side, 224x224, ImageNet-normalised RGB (more self-consistent under mirroring than
    the BGR its JS feeds: docs/analysis-models.md). 20-70 ms here."""

    name = "fr-pose"
    attribute = "pose"

    def predict(self, image: Image, face: Face, found: dict) -> Pose:
        H, W = image.shape[:2]
        x1, y1, x2, y2 = box_like(face, "fr_detect")
        w, h = x2 - x1, y2 - y1
        left, top = int(min(max(x1 - w / 4, 0), W - 2)), int(min(max(y1 - h / 4, 0), H - 2))
        right, bottom = max(int(min(x2 + w / 4, W)), left + 1), max(int(min(y2 + h / 4, H)), top + 1)
        roi = cv2.resize(image[top:bottom, left:right], (224, 224), interpolation=cv2.INTER_LINEAR)
        bins = np.arange(66)
        yaw, pitch, roll = (float((softmax(o[0]) * bins).sum() * 3 - 99) for o in self.run(imagenet(roi)))
        return Pose(yaw, pitch, roll, self.name)


def eye_distance(face: Face) -> float | None:
    """Pixels between the eye centres; None without eye landmarks."""
    lm = face.landmarks
    if not {"left_eye", "right_eye"} <= lm.keys():
        return None
    return float(np.linalg.norm(np.subtract(lm["right_eye"], lm["left_eye"])))


def nose_offset(face: Face) -> float | None:
    """The nose's offset from the eyes' midpoint towards the image's right, in eye distances: positive
    when the person turned to their own left (unmirrored camera); None without the landmarks."""
    lm = face.landmarks
    eyes = eye_distance(face)
    if eyes is None or "nose" not in lm or eyes <= 1.0:
        return None
    return float(lm["nose"][0] - (lm["left_eye"][0] + lm["right_eye"][0]) / 2) / eyes


def tilt(face: Face) -> float | None:
    """How far the head is tilted up or down: the nose's height between the eyes and the mouth, off
    its frontal 0.53 (the median over LFW, where 90% of faces lie within 0.15 of it)."""
    lm = face.landmarks
    if not {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"} <= lm.keys():
        return None
    eyes = (lm["left_eye"][1] + lm["right_eye"][1]) / 2
    mouth = (lm["mouth_left"][1] + lm["mouth_right"][1]) / 2
    return abs((lm["nose"][1] - eyes) / (mouth - eyes) - 0.53) if mouth - eyes > 0 else None
