"""Generated presentation attacks: a face photo as a print or on a screen, re-photographed.

No attack data set is on the registries, so the liveness benchmark and tests make their own from
LFW photos, seeded. They imitate what a single-image detector can see, not how real attacks look:

* ``print_attack``: the photo as a sheet with a white border, duller ink, paper grain and noise,
  held at a slight perspective on a blurred background, under a lighting gradient;
* ``screen_attack``: the photo on a display with a black bezel, moiré from the pixel grid (a
  grating near the sampling limit), refresh banding, a gamma and blue shift, a glare blob;

both end as a JPEG (quality 85), as a camera would save them. Ported from the survey's probe
(benchmarks/prototypes/analysis_probe.py); docs/analysis-models.md says how far from real they are.
"""

from __future__ import annotations

import cv2
import numpy as np

from .footage import compress

JPEG_QUALITY = 85


def print_attack(photo: np.ndarray, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``photo`` (RGB) printed and photographed in front of ``background`` (same size)."""
    h, w = photo.shape[:2]
    corners = [[0.08, 0.06], [0.95, 0.04], [0.97, 0.98], [0.05, 0.96]]
    out = _held_up(print_sheet(photo, rng), corners, 0.06, background, rng)
    light = np.linspace(rng.uniform(0.75, 0.95), rng.uniform(1.0, 1.15), w)[None, :, None]
    return photographed(out * light, rng)


def screen_attack(photo: np.ndarray, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``photo`` (RGB) shown on a phone or monitor and photographed in front of ``background``."""
    h, w = photo.shape[:2]
    corners = [[0.03, 0.03], [0.97, 0.02], [0.98, 0.97], [0.02, 0.98]]
    out = _held_up(screen_card(photo, rng), corners, 0.04, background, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.4) * h
    glare = np.exp(-(((xx - gx) / (0.25 * w)) ** 2 + ((yy - gy) / (0.12 * h)) ** 2))
    return photographed(out + 70 * glare[..., None], rng)


ATTACKS = {"print": print_attack, "screen": screen_attack}


def print_sheet(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``photo`` (RGB) as a printed sheet (float32): duller ink, a white margin, paper grain and noise."""
    ink = cv2.GaussianBlur(photo.astype(np.float32) * 0.85 + 25, (0, 0), 0.7)  # the paper's narrower gamut
    sheet = _framed(ink, 12, 240)
    grain = cv2.GaussianBlur(rng.normal(0, 1, sheet.shape[:2]).astype(np.float32), (0, 0), 1.2)
    return sheet * (1 + 0.05 * grain)[..., None] + rng.normal(0, 3, sheet.shape).astype(np.float32)


def screen_card(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``photo`` (RGB) on a display (float32): gamma and blue shift, moiré, refresh banding, a black bezel."""
    h, w = photo.shape[:2]
    x = (photo.astype(np.float32) / 255) ** rng.uniform(0.75, 0.9) * 255 * np.float32([0.95, 1.0, 1.08])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta, f = rng.uniform(0.05, 0.2), rng.uniform(0.42, 0.48)  # near the sampling limit: aliases into moiré
    u, v = xx * np.cos(theta) + yy * np.sin(theta), yy * np.cos(theta) - xx * np.sin(theta)
    x *= (1 + 0.12 * np.sin(2 * np.pi * f * u) * np.sin(2 * np.pi * f * v))[..., None]
    x *= (1 + 0.03 * np.sin(yy / rng.uniform(5, 9)))[..., None]  # refresh banding
    return _framed(x, 15, 15)


def _framed(picture: np.ndarray, border: int, value: float) -> np.ndarray:
    """``picture`` inside a ``border``-pixel frame of grey level ``value`` (paper's margin, a bezel)."""
    h, w = picture.shape[:2]
    out = np.full((h + 2 * border, w + 2 * border, 3), value, np.float32)
    out[border:border + h, border:border + w] = picture
    return out


def _held_up(card: np.ndarray, corners, jitter: float, background: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """``card`` warped to ``corners`` (fractions of the background's size, each moved by up to
    ``jitter``) over the blurred ``background``: a sheet or a phone held in front of the camera."""
    h, w = background.shape[:2]
    ch, cw = card.shape[:2]
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    dst = np.float32(np.array(corners) * [w, h] + rng.uniform(-jitter, jitter, (4, 2)) * [w, h])
    warped = cv2.warpPerspective(card, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=-1)
    return np.where(warped >= 0, warped, cv2.GaussianBlur(background.astype(np.float32), (0, 0), 4))


def photographed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise, then the camera's JPEG."""
    x = np.clip(x + rng.normal(0, 2.5, x.shape), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(compress(x[..., ::-1], JPEG_QUALITY)[..., ::-1])  # cv2 encodes BGR
