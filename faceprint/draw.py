"""Annotate an image with the faces found in it, for people to look at (CLI ``--draw``, debugging).

Line widths and text scale with the image's size, so a 300-pixel thumbnail and a 24-megapixel
photo both come out readable.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import cv2
import numpy as np

from .analysis.record import GROUPS_68, FaceAnalysis
from .imageio import load_image
from .types import Face, Image

BOX_COLOR = (0, 200, 0)
LANDMARK_COLOR = (255, 40, 40)
CONTOUR_COLOR = (255, 220, 0)
TEXT_COLOR = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_faces(
    image: Image,
    faces: Sequence[Face],
    labels: Sequence[str | None] | None = None,
    *,
    color: tuple[int, int, int] = BOX_COLOR,
    below: bool = False,
) -> Image:
    """Return a copy of ``image`` (RGB) with each face's box, landmark dots and optional label drawn.

    ``labels[i]`` (any string, e.g. ``"alice 0.42"`` or ``"unknown"``; ``None`` for none) is
    written on a filled band just above face ``i``'s box, or inside its top edge when the box
    touches the top of the image; with ``below``, just under it (inside its bottom edge at the
    image's bottom), so a second set of labels for the same faces can be drawn over the first
    without hiding it. The input is never modified.
    """
    faces = list(faces)
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(faces):
            raise ValueError(f"got {len(labels)} labels for {len(faces)} faces")
    out = load_image(image).copy()
    h, w = out.shape[:2]
    size = max(h, w)
    thickness = max(1, round(size / 400))
    radius = max(2, round(size / 300))
    font_scale = max(0.4, size / 1200)
    text_thickness = max(1, round(font_scale * 1.5))
    color = tuple(int(c) for c in color)

    for i, face in enumerate(faces):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
        for x, y in face.landmarks.values():
            cv2.circle(out, (int(round(x)), int(round(y))), radius, LANDMARK_COLOR, -1, cv2.LINE_AA)
        label = labels[i] if labels is not None else None
        if label:
            _draw_label(out, _ascii(label), x0, y1 if below else y0, color, font_scale, text_thickness, thickness,
                        below)
    return out


def draw_analysis(image: Image, analyses: Sequence[FaceAnalysis], *, labels: bool = True) -> Image:
    """A copy of ``image`` with each analysed face's box, a one-line summary of its attributes
    (``labels``) and its 68 landmarks as contours (eyes and lips closed), where computed."""
    analyses = list(analyses)
    out = draw_faces(image, [a.face for a in analyses], [summary(a, brief=True) for a in analyses] if labels else None)
    thickness = max(1, round(max(out.shape[:2]) / 500))
    for a in analyses:
        if a.landmarks68 is None:
            continue
        for group, (start, end) in GROUPS_68.items():
            pts = np.round(a.landmarks68.points[start:end]).astype(np.int32)
            closed = group in ("left_eye", "right_eye", "outer_lips", "inner_lips")
            cv2.polylines(out, [pts], closed, CONTOUR_COLOR, thickness, cv2.LINE_AA)
    return out


def summary(a: FaceAnalysis, brief: bool = False) -> str:
    """The attributes of one analysed face in a few words, e.g. ``female 0.98, 34 y, happy, yaw 12 ...``;
    ``brief``: gender, age and expression only, short enough to label a face in a picture."""
    parts = []
    if a.gender:
        parts.append(f"{a.gender.label} {a.gender.probability:.2f}")
    if a.age:
        parts.append(f"{a.age.years:.0f} y")
    if a.expression:
        parts.append(a.expression.label)
    parts += [f"{name}: {label.label} {label.probability:.2f}" for name, label in a.trained.items()]
    if brief:
        return ", ".join(parts)
    if a.pose:
        parts.append(f"yaw {a.pose.yaw:.0f} pitch {a.pose.pitch:.0f} roll {a.pose.roll:.0f}")
    if a.eyes:
        parts.append(f"eyes {a.eyes.left_open:.2f}/{a.eyes.right_open:.2f}")
    if a.quality:
        parts.append(f"quality {a.quality.score:.2f}")
    if a.liveness:
        parts.append(f"{'live' if a.liveness.live else 'spoof'} {a.liveness.probability:.3f}")
    return ", ".join(parts)


def _draw_label(out: np.ndarray, text: str, x0: int, y: int, color, scale: float, text_t: int, box_t: int,
                below: bool = False) -> None:
    """``text`` on a band of ``color`` above the box edge at ``y`` (its top), or under it (its bottom)."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, text_t)
    pad = max(2, round(th * 0.25))
    band_h = th + baseline + 2 * pad
    h, w = out.shape[:2]
    if below:  # under the box when there is room, else inside its bottom edge
        top = y + box_t // 2 if y + box_t // 2 + band_h <= h else max(0, min(y, h) - band_h)
    else:  # above the box when there is room, else inside its top edge
        top = y - box_t // 2 - band_h if y - box_t // 2 - band_h >= 0 else max(0, y)
    left = min(max(0, x0 - box_t // 2), max(0, w - tw - 2 * pad))
    cv2.rectangle(out, (left, top), (left + tw + 2 * pad, top + band_h), color, -1)
    cv2.putText(out, text, (left + pad, top + pad + th), _FONT, scale, TEXT_COLOR, text_t, cv2.LINE_AA)


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts only have ASCII: keep "José" readable as "Jose", not "Jos??"."""
    decomposed = unicodedata.normalize("NFKD", " ".join(str(text).split()))
    return "".join(c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c))
