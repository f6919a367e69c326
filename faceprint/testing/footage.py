"""What a real camera does to a picture, for generated clips: head turns, camera moves, motion blur,
exposure drift and compression.

Plain image functions and seeded smooth curves, with no knowledge of actors or truth files
(``synth`` composes them). Each stands in for one property of real footage that trips recognisers:

* ``turn``: a head yawed left or right, by wrapping the frontal photo round a vertical cylinder
  (the near cheek widens, the far one and the nose slide towards the far edge and compress).
* ``CameraPath``: a camera that pans and zooms smoothly over a scene larger than the frame.
* ``motion_blur``: a straight smear as long as the distance moved while the shutter was open.
* ``Exposure``: auto-exposure and white balance wandering over time.
* ``compress``: blocking and ringing of a low-bitrate stream (a JPEG round trip per frame; the
  OpenCV build here has no H.264 encoder, and its MPEG-4 writer takes no bitrate setting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Fraction of a frame's interval the shutter stays open (a 180-degree shutter, common in video).
SHUTTER = 0.5


def turn(head: np.ndarray, yaw: float, centre_x: float, radius: float) -> np.ndarray:
    """``head`` (any channels) turned by ``yaw`` degrees (positive: the face turns to the image's right).

    The face is taken to lie on a vertical cylinder of ``radius`` pixels round column ``centre_x``;
    each output column shows the surface point that the turn brings there. The side of the head
    the frontal photo never showed repeats its edge (hair, ear), smoothed from top to bottom, so
    it reads as a plain out-of-focus side of the head, with no face features.
    """
    if abs(yaw) < 0.5:
        return head
    h, w = head.shape[:2]
    raw = (np.arange(w, dtype=np.float32) + 0.5 - centre_x) / radius
    angle = np.arcsin(np.clip(raw, -1, 1)) - math.radians(yaw)
    unseen = (np.abs(raw) < 1) & (np.abs(angle) > math.pi / 2)
    source = np.where(np.abs(raw) >= 1, raw, np.sin(np.clip(angle, -math.pi / 2, math.pi / 2)))
    map_x = np.broadcast_to(centre_x + source * radius - 0.5, (h, w)).astype(np.float32)
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).astype(np.float32)
    out = cv2.remap(head, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if unseen.any():
        out[:, unseen] = cv2.GaussianBlur(out, (1, 0), sigmaX=0.1, sigmaY=h / 12)[:, unseen]
    return out


def turned_x(xs: np.ndarray, yaw: float, centre_x: float, radius: float) -> np.ndarray:
    """Where columns ``xs`` of the frontal head land after ``turn``: how a face box narrows and shifts."""
    u = np.clip((np.asarray(xs, float) - centre_x) / radius, -1, 1)
    return centre_x + radius * np.sin(np.clip(np.arcsin(u) + math.radians(yaw), -math.pi / 2, math.pi / 2))


def motion_blur(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` smeared along (dx, dy): the pixels something moved during one exposure."""
    length = math.hypot(dx, dy)
    if length < 1.0:
        return image
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    for s in np.linspace(-0.5, 0.5, 2 * size + 1):
        kernel[int(round(c + s * dy)), int(round(c + s * dx))] += 1
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)


def smooth(rng: np.random.Generator, times: np.ndarray, periods: tuple[float, float], waves: int = 3) -> np.ndarray:
    """A seeded smooth wobble in [-1, 1] over ``times``: a few sines of random period and phase."""
    p = rng.uniform(*periods, waves)
    phase = rng.uniform(0, 2 * np.pi, waves)
    weight = rng.uniform(0.5, 1.0, waves)
    total = (weight * np.sin(2 * np.pi * times[:, None] / p + phase)).sum(axis=1)
    return total / weight.sum()


def reframes(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """A level in [-1, 1] held for 2-5 s at a time, moving to one on the other side in 0.15-0.4 s (eased):
    an operator re-framing with a quick pan, the moves that smear a picture most."""
    level = rng.uniform(-1, 1)
    out = np.full(len(times), level)
    t = rng.uniform(1.0, 4.0)
    while len(times) and t < times[-1]:
        new, move = -math.copysign(rng.uniform(0.3, 1.0), level), rng.uniform(0.15, 0.4)
        q = np.clip((times - t) / move, 0, 1)
        out += (new - level) * q * q * (3 - 2 * q)
        level, t = new, t + move + rng.uniform(2.0, 5.0)
    return out


@dataclass(frozen=True)
class CameraPath:
    """Per frame, the camera's zoom and the stage point at the centre of its view: a slow wander plus
    quick re-framing pans (``reframes``), zooming slowly in and out.

    The stage is the frame-sized area where actors move; the camera sees ``size / zoom`` of it
    round ``centre``. ``margin`` is how far (x, y) the scene must extend past the stage on every
    side for the view never to leave it.
    """

    centres: np.ndarray  # (frames, 2), stage pixels
    zooms: np.ndarray  # (frames,)
    size: tuple[int, int]

    PAN = 0.18  # the view's centre wanders this fraction of the frame from the stage's
    ZOOM = (0.85, 1.25)

    @classmethod
    def random(cls, rng: np.random.Generator, frames: int, fps: float, size: tuple[int, int]) -> CameraPath:
        times = np.arange(frames) / fps
        w, h = size
        centres = np.stack([w / 2 + cls.PAN * w * (0.5 * smooth(rng, times, (2.5, 7.0)) + 0.5 * reframes(rng, times)),
                            h / 2 + cls.PAN * h * (0.5 * smooth(rng, times, (3.0, 8.0)) + 0.5 * reframes(rng, times))],
                           axis=1)
        lo, hi = cls.ZOOM
        zooms = lo * (hi / lo) ** ((smooth(rng, times, (3.0, 9.0)) + 1) / 2)
        return cls(centres, zooms, size)

    @classmethod
    def still(cls, frames: int, size: tuple[int, int]) -> CameraPath:
        return cls(np.tile(np.array(size, float) / 2, (frames, 1)), np.ones(frames), size)

    def windows(self, steady: float = 0.0) -> np.ndarray:
        """Per frame, the stage rectangle in view (x1, y1, x2, y2), smoothed over time by a Gaussian of
        ``steady`` frames: the slowly moving part of the scene the camera is about, which quick pans leave."""
        half = np.array(self.size) / (2 * self.zooms[:, None])
        windows = np.hstack([self.centres - half, self.centres + half])
        if steady > 0 and len(windows) > 1:
            windows = cv2.GaussianBlur(windows, (1, 0), sigmaX=1e-3, sigmaY=steady, borderType=cv2.BORDER_REPLICATE)
        return windows

    def held(self, frames: int) -> CameraPath:
        """A camera that stays where this one starts: a fixed view."""
        return CameraPath(np.repeat(self.centres[:1], frames, axis=0), np.repeat(self.zooms[:1], frames), self.size)

    @classmethod
    def margin(cls, size: tuple[int, int]) -> tuple[int, int]:
        return tuple(int(math.ceil(s * (0.5 / cls.ZOOM[0] - 0.5 + cls.PAN))) + 2 for s in size)

    def matrix(self, f: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The 2x3 affine map from scene pixels (stage shifted by ``offset``) to frame pixels at frame ``f``."""
        z = self.zooms[f]
        corner = self.centres[f] - np.array(self.size) / (2 * z) + np.array(offset)
        return np.array([[z, 0, -corner[0] * z], [0, z, -corner[1] * z]])

    def to_frame(self, f: int, points: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Scene points (..., 2) as frame pixels at frame ``f``."""
        m = self.matrix(f, offset)
        return points * m[0, 0] + m[:, 2]

    def to_stage(self, f: int, points: np.ndarray) -> np.ndarray:
        """Frame pixels (..., 2) as stage points at frame ``f``: where to put something seen there."""
        m = self.matrix(f)
        return (points - m[:, 2]) / m[0, 0]


@dataclass(frozen=True)
class Exposure:
    """Per frame, the gain, contrast, offset and colour balance a drifting auto-exposure applies."""

    gains: np.ndarray  # (frames,)
    contrasts: np.ndarray
    offsets: np.ndarray
    balance: np.ndarray  # (frames, 3): BGR multipliers

    @classmethod
    def random(cls, rng: np.random.Generator, frames: int, fps: float) -> Exposure:
        times = np.arange(frames) / fps
        gains = 0.95 * 1.35 ** smooth(rng, times, (3.0, 10.0))  # about 0.7x to 1.3x
        contrasts = 0.92 + 0.18 * smooth(rng, times, (4.0, 12.0))
        offsets = 18 * smooth(rng, times, (3.0, 10.0))
        balance = 1 + 0.06 * np.stack([smooth(rng, times, (5.0, 15.0)) for _ in range(3)], axis=1)
        return cls(gains, contrasts, offsets, balance)

    def apply(self, frame: np.ndarray, f: int) -> np.ndarray:
        levels = np.arange(256, dtype=np.float32)[:, None] * self.balance[f][None, :]
        table = 128 + (levels * self.gains[f] - 128) * self.contrasts[f] + self.offsets[f]
        return cv2.LUT(frame, np.clip(table, 0, 255).astype(np.uint8).reshape(256, 1, 3))


def compress(frame: np.ndarray, quality: int) -> np.ndarray:
    """``frame`` after a JPEG round trip at ``quality`` (1-100): 8x8 blocks, ringing, chroma loss."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else frame
