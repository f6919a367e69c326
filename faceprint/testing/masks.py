"""Face masks drawn onto real photos, for tests and for training a mask attribute (generated data).

The mask is placed from the face's five landmarks: from just below the eyes over the nose, down
past the chin, as wide as the cheeks; its shape (surgical, cloth, N95-like), colour, pleats, shading
and ear loops vary with the seed. What this cannot tell you: a drawn mask has no real folds,
fabric texture or the shadows a real one casts, and it never slips; a classifier that learns these
may still miss real masks. Say so wherever numbers made with it are quoted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceprintError
from ..types import Face, Image

#: (name, RGB colour) of the masks drawn
_LOOKS = (("surgical", (150, 200, 230)), ("white", (235, 235, 235)), ("black", (35, 35, 40)),
          ("cloth", (60, 90, 160)), ("n95", (225, 225, 215)), ("pink", (225, 160, 180)))


def put_mask(image: Image, face: Face, seed: int = 0) -> Image:
    """``image`` with a mask drawn over ``face``'s nose and mouth (a new array)."""
    lm = face.landmarks
    need = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    if not all(k in lm for k in need):
        raise FaceprintError(f"a mask is placed from {', '.join(need)}; the detector gave {sorted(lm)}")
    rng = np.random.default_rng(seed)
    kind, colour = _LOOKS[rng.integers(len(_LOOKS))]
    le, re_, nose = (np.array(lm[k], np.float64) for k in ("left_eye", "right_eye", "nose"))
    mouth = (np.array(lm["mouth_left"]) + np.array(lm["mouth_right"])) / 2
    e = float(np.linalg.norm(re_ - le))
    across = (re_ - le) / max(e, 1e-6)  # the face's own axes, so a tilted face gets a tilted mask
    down = np.array([-across[1], across[0]])
    top = nose - down * e * rng.uniform(0.3, 0.45)  # over the nose bridge
    middle = mouth - down * e * 0.1
    chin = mouth + down * e * rng.uniform(0.45, 0.6)
    half_top, half_middle, half_chin = e * rng.uniform(0.7, 0.8), e * rng.uniform(0.95, 1.05), e * rng.uniform(0.5, 0.6)
    lift = e * (0.15 if kind == "n95" else 0.06)  # the top edge rises over the nose
    arc = np.linspace(np.pi, 0, 16)
    outline = np.concatenate([
        [top - across * half_top, top - across * half_top * 0.3 - down * lift, top + across * half_top * 0.3 - down * lift,
         top + across * half_top, middle + across * half_middle],
        [chin + across * half_chin * np.cos(a) + down * e * 0.2 * np.sin(a) for a in reversed(arc)],
        [middle - across * half_middle],
    ])
    body = image.copy()
    canvas = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(canvas, [np.round(outline).astype(np.int32)], 255)
    shade = np.clip(np.array(colour, np.float64) * rng.uniform(0.85, 1.1), 0, 255)
    ys, xs = np.nonzero(canvas)
    if not len(ys):
        return body
    # light from above: darker towards the bottom edge; and fabric grain
    depth = ((np.stack([xs, ys], 1) - top) @ down) / max(float(np.linalg.norm(chin - top)), 1.0)
    pixels = shade[None] * (1.0 - 0.25 * np.clip(depth, 0, 1))[:, None] + rng.normal(0, 6, (len(ys), 3))
    body[ys, xs] = np.clip(pixels, 0, 255).astype(np.uint8)
    if kind in ("surgical", "white", "pink"):  # pleats
        for k in (0.3, 0.5, 0.7):
            a, b = top + (chin - top) * k - across * half_top * 0.9, top + (chin - top) * k + across * half_top * 0.9
            cv2.line(body, _pt(a), _pt(b), tuple(int(c) for c in shade * 0.8), max(1, round(e / 30)))
    edge = cv2.GaussianBlur(canvas, (0, 0), max(e / 40, 0.8)).astype(np.float32)[..., None] / 255.0
    out = (body * edge + image * (1 - edge)).astype(np.uint8)
    for side in (-1, 1):  # ear loops
        start = top + across * half_top * side
        end = (le if side < 0 else re_) + across * e * 0.55 * side
        cv2.line(out, _pt(start), _pt(end), tuple(int(c) for c in shade * 0.9), max(1, round(e / 25)))
    return out


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def lfw_people_with_two(lfw: Path, count: int, start: int) -> list[str]:
    """LFW people with two photos or more, every 7th in name order from ``start``: sets made with
    different starts never share a person."""
    names = sorted(d.name for d in (Path(lfw) / "images").iterdir() if len(list(d.glob("*.jpg"))) >= 2)
    return names[start::7][:count]


def masked_and_plain(lfw: Path, people: list[str], folder: Path) -> Path:
    """A two-class photo folder for ``faceprint attribute train``: ``folder/mask/`` holds each
    person's first photo with a drawn mask (seeded by position), ``folder/no_mask/`` their second.

    The mask goes on the photo's subject (its central face, as LFW is cut), and each photo is cut
    to a square 1.5 times the subject box's long side, about its centre: in the whole photo the
    largest face, which ``train`` takes, is now and then a bystander's (when the detector misses the
    masked subject), and a bare bystander filed under ``mask`` is a wrong label. Both classes are
    saved the same way (decoded, re-encoded), so no trace of the editing tells them apart.
    A person in whose photos the default detector finds no face is left out.
    """
    from ..imageio import load_image, save_image
    from ..lfw import central
    from ..pipeline import get_pipeline

    pipe = get_pipeline()
    for kind in ("mask", "no_mask"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(people):
        photos = [load_image(Path(lfw) / "images" / name / f"{name}_000{k}.jpg") for k in (1, 2)]
        found = [pipe.detect(photo) for photo in photos]
        if not all(found):
            continue
        (first, second), (masked, plain) = photos, (central(f, p.shape) for f, p in zip(found, photos))
        save_image(folder / "mask" / f"{name}.jpg", _around(put_mask(first, masked, seed=i), masked, 1.5))
        save_image(folder / "no_mask" / f"{name}.jpg", _around(second, plain, 1.5))
    return folder


def _around(image: Image, face: Face, scale: float) -> Image:
    """The part of ``image`` inside ``face``'s box scaled by ``scale`` about its centre."""
    x1, y1, x2, y2 = face.box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * scale / 2
    h, w = image.shape[:2]
    top, left = max(0, round(cy - half)), max(0, round(cx - half))
    return image[top:min(h, round(cy + half)), left:min(w, round(cx + half))].copy()
