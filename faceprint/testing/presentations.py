"""Generated clips for video liveness: a photo held up to the camera, and a face that moves like a head.

No video attack data set is on the registries, so the video liveness tests and benchmark make their
own from one LFW photo, seeded (640x480, 25 fps):

* ``print`` / ``screen``: the photo as a printed sheet or on a display (``attacks.print_sheet``,
  ``attacks.screen_card``) moved rigidly in 3D in front of a still background: it turns (yaw up to
  25 degrees, pitch 15, roll 8), drifts and comes nearer and farther, seen through a pinhole camera,
  so every frame is one perspective warp of the whole sheet; then a lighting gradient, sensor noise, JPEG.
* ``live``: the photo's head (an elliptical cut-out) moved piecewise-affinely from a toy depth model:
  its five landmarks and an outline each get a depth (the nose tip 0.45 eye distances in front of
  the eyes, the outline behind), the model turns (yaw up to 18 degrees, pitch 10) and the mouth
  corners move as in speech, while the whole head drifts and rescales; then noise and JPEG.
* ``still``: the same head held still (only the camera's noise changes): a person who does not
  move, whom a judge must not take for a photo.

``acts`` make a face do a challenge's steps on cue (``video.challenge``): ``blink`` fills each eye's
almond (around the detector's eye landmark) with the skin below it, mirrored, and draws a dark
lash line, closing and opening over 0.3 s; ``turn-left`` / ``turn-right`` add 45 degrees of yaw
(the person's own side) over 0.5 s, hold it 0.5 s and come back. A print or screen can turn but not blink.

What they cannot tell: the live clip is a 2D warp built on the very cue the video judge measures
(the nose moving off the plane of the eyes and mouth), so it shows that the judge sees parallax when
there is some, not that real heads give enough of it, nor that real prints stay flat (a bent sheet
is not a plane), nor anything about masks or a replayed *video* of the person (its face moves like a head
inside the screen: only the screen turning as a whole shows the plane).
The blink is a painted-over eye, not an eyelid: the eye model reads it as shut on most LFW faces
but not all (on some one eye stays "open"), and it says nothing of real blinks' speed, of glasses,
of lighting on a real eyelid, nor of a webcam's blur at 30 fps; a real turn also shows the ear and the
cheek's outline change, which the toy head does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..video.source import Writer
from .attacks import photographed, print_sheet, screen_card
from .footage import smooth
from .synth import _CROP, _background, _cut_out

KINDS = ("print", "screen", "live", "still")
#: The kinds that are a face in front of the camera (the rest are attacks).
LIVE_KINDS = ("live", "still")
SIZE, FPS = (640, 480), 25.0
#: What a face can be made to do on cue (``make_presentation``'s ``acts``): the person's own left.
ACTS = ("blink", "turn-left", "turn-right")
#: Seconds a blink takes (closing, closed, opening), a turn takes (there, held, back), and the turn's yaw.
_BLINK_S, _TURN_S, _TURN_DEG = 0.3, 1.5, 45.0
#: Depths (towards the camera, in eye distances from the eyes' plane) of the toy head's points.
_NOSE_DEPTH, _MOUTH_DEPTH, _OUTLINE_DEPTH = 0.45, -0.05, -0.5


@dataclass(frozen=True)
class PresentationClip:
    """A written clip: its file, what it shows (``KINDS``), the photo it was made from, its frame count."""

    video: Path
    kind: str
    photo: Path
    frames: int


def make_presentation(photo: Path, out: Path, kind: str, *, seconds: float = 4.0, seed: int = 0,
                      size: tuple[int, int] = SIZE, fps: float = FPS,
                      acts: Sequence[tuple[float, str]] = ()) -> PresentationClip:
    """Write a ``kind`` clip (``KINDS``) of the LFW ``photo`` to ``out`` (.mp4 or .avi); ``acts``:
    (second, ``ACTS`` item) pairs, what the face does then, on top of its kind's motion."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    for _, act in acts:
        if act not in ACTS or (act == "blink" and kind not in LIVE_KINDS):
            raise ValueError(f"a {kind} clip cannot act {act!r} (acts: {', '.join(ACTS)}; a print does not blink)")
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * fps))
    times = np.arange(frames) / fps
    background = _background(size, rng)
    picture = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    film = _live_head if kind in LIVE_KINDS else _held_card
    writer = Writer(out, fps)
    try:
        for frame in film(picture, kind, background, times, rng, _Acts(acts, times)):
            writer.write(frame)
    finally:
        writer.close()
    return PresentationClip(Path(out), kind, Path(photo), frames)


class _Acts:
    """The acts of a clip as per-frame curves: eye closure and extra yaw (radians, positive: the person's left)."""

    def __init__(self, acts: Sequence[tuple[float, str]], times: np.ndarray) -> None:
        self.closed = np.zeros(len(times))
        self.yaw = np.zeros(len(times))
        for start, act in acts:
            t = times - start
            if act == "blink":  # a triangle: shut at mid-blink
                self.closed = np.maximum(self.closed, np.clip(1 - np.abs(t / (_BLINK_S / 2) - 1), 0, 1))
            else:  # a trapezoid: a third of the time turning, a third held, a third back
                level = np.clip(np.minimum(t, _TURN_S - t) / (_TURN_S / 3), 0, 1)
                self.yaw += (1 if act == "turn-left" else -1) * np.radians(_TURN_DEG) * level


def _held_card(photo: np.ndarray, kind: str, background: np.ndarray, times: np.ndarray, rng: np.random.Generator,
               acts: _Acts):
    """Frames of the photo as a sheet or screen turning rigidly in 3D (see the module docstring)."""
    card = print_sheet(photo, rng) if kind == "print" else screen_card(photo, rng)
    h, w = background.shape[:2]
    ch, cw = card.shape[:2]
    focal = 1.2 * w
    scale = 0.6 * h / ch  # the card spans about 60% of the frame's height at the mean distance
    corners = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    plane = np.column_stack([(corners - [cw / 2, ch / 2]) * scale, np.zeros(4)])
    yaw, pitch, roll = (np.radians(a) * smooth(rng, times, (1.5, 4.0)) for a in (25, 15, 8))
    yaw = yaw + acts.yaw
    shift = np.stack([0.12 * w * smooth(rng, times, (2.0, 5.0)), 0.08 * h * smooth(rng, times, (2.0, 5.0))], axis=1)
    distance = focal * (1 + 0.15 * smooth(rng, times, (2.0, 5.0)))
    blurred = cv2.GaussianBlur(background.astype(np.float32), (0, 0), 4)
    light = np.linspace(0.85, 1.05, w, dtype=np.float32)[None, :, None]
    for f in range(len(times)):
        points = plane @ _rotation(yaw[f], pitch[f], roll[f]).T
        seen = focal * points[:, :2] / (points[:, 2:] + distance[f]) + np.array([w / 2, h / 2]) + shift[f]
        warp = cv2.getPerspectiveTransform(corners, seen.astype(np.float32))
        sheet = cv2.warpPerspective(card, warp, (w, h), borderValue=-1)
        frame = np.where(sheet >= 0, sheet, blurred)
        yield photographed(frame * light, rng)


def _live_head(photo: np.ndarray, kind: str, background: np.ndarray, times: np.ndarray, rng: np.random.Generator,
               acts: _Acts):
    """Frames of the photo's head turning, talking and drifting (see the module docstring)."""
    from ..detection import DEFAULT_DETECTOR, get_detector

    faces = get_detector(DEFAULT_DETECTOR).detect(photo)
    if not faces:
        raise ValueError("no face found in the photo to animate")
    head = _cut_out(photo)  # RGBA
    x0, y0 = _CROP[0], _CROP[1]
    marks = np.array([faces[0].landmarks[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")],
                     np.float64) - [x0, y0]
    eyes = float(np.linalg.norm(marks[1] - marks[0]))
    hh, hw = head.shape[:2]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    outline = np.column_stack([hw / 2 + 0.5 * hw * np.cos(angles), hh / 2 + 0.5 * hh * np.sin(angles)])
    border = np.array([[0, 0], [hw, 0], [hw, hh], [0, hh]], np.float64)
    source = np.vstack([marks, outline, border])
    depth = np.concatenate([[0, 0, _NOSE_DEPTH, _MOUTH_DEPTH, _MOUTH_DEPTH], np.full(20, _OUTLINE_DEPTH)]) * eyes
    centre = np.array([marks[[0, 1, 3, 4]].mean(axis=0)[0], marks[[0, 1, 3, 4]].mean(axis=0)[1], -0.6 * eyes])
    moves = 0.0 if kind == "still" else 1.0
    yaw, pitch = (moves * np.radians(a) * smooth(rng, times, (1.5, 4.0)) for a in (18, 10))
    yaw = yaw + acts.yaw
    talk = moves * np.clip(smooth(rng, times, (0.3, 0.8)), 0, 1)  # the mouth's corners move as words come
    h, w = background.shape[:2]
    size = 0.55 * h / hh * np.exp(moves * 0.15 * smooth(rng, times, (2.0, 5.0)))
    place = np.stack([w / 2 + moves * 0.15 * w * smooth(rng, times, (2.0, 5.0)),
                      h / 2 + moves * 0.1 * h * smooth(rng, times, (2.0, 5.0))], axis=1)
    roll = moves * np.radians(8) * smooth(rng, times, (1.5, 4.0))
    canvas = background.astype(np.float32)
    for f in range(len(times)):
        points = np.column_stack([source, depth]) - centre
        points = points @ _rotation(yaw[f], pitch[f], 0.0).T + centre
        moved = points[:, :2].copy()
        mouth = moved[4] - moved[3]
        moved[3] -= 0.06 * talk[f] * mouth - [0, 0.03 * talk[f] * eyes]
        moved[4] += 0.06 * talk[f] * mouth + [0, 0.03 * talk[f] * eyes]
        moved[-4:] = border  # the cut-out's corners stay: its transparent margin absorbs the warp
        shown = _shut_eyes(head, marks[:2], eyes, acts.closed[f]) if acts.closed[f] > 0 else head
        turned = _piecewise_affine(shown, source, moved)
        c, s = math.cos(roll[f]) * size[f], math.sin(roll[f]) * size[f]
        m = np.array([[c, -s, 0], [s, c, 0]])
        m[:, 2] = place[f] - m[:, :2] @ [hw / 2, hh / 2]
        layer = cv2.warpAffine(turned, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = layer[..., 3:] / 255
        yield photographed(layer[..., :3] * alpha + canvas * (1 - alpha), rng)


def _shut_eyes(head: np.ndarray, eyes_at: np.ndarray, eyes: float, closed: float) -> np.ndarray:
    """``head`` with both eyes ``closed`` (0 open .. 1 shut): each eye's almond filled with the skin below
    it (mirrored about the almond's lower edge) and, once mostly shut, a dark lash line along it."""
    out = head.astype(np.float32)
    yy, xx = np.mgrid[0:head.shape[0], 0:head.shape[1]].astype(np.float32)
    rx, ry = 0.3 * eyes, 0.14 * eyes
    for cx, cy in eyes_at:
        inside = np.clip(1.2 - np.hypot((xx - cx) / rx, (yy - cy) / ry), 0, 1) / 0.2 * closed  # soft-edged almond
        inside = np.minimum(inside, 1)[..., None]
        skin = cv2.remap(out, xx, np.float32(2 * (cy + ry)) - yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = out * (1 - inside) + skin * inside
        if closed > 0.6:
            lash = (np.abs(yy - cy - 0.3 * ry * (1 - ((xx - cx) / rx) ** 2)) < max(0.03 * eyes, 0.8)) & \
                (np.abs(xx - cx) < 0.9 * rx)
            out[lash, :3] *= 1 - 0.6 * (closed - 0.6) / 0.4
    return out


def _piecewise_affine(image: np.ndarray, source: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """``image`` warped so that each ``source`` point lands on its ``moved`` point, affinely inside each
    triangle of the moved points (their hull must cover the image)."""
    from scipy.spatial import Delaunay

    h, w = image.shape[:2]
    grid = np.stack(np.mgrid[0:h, 0:w][::-1], axis=-1).reshape(-1, 2).astype(np.float64) + 0.5
    mesh = Delaunay(moved)
    owner = np.full((h, w), -1, np.int32)  # each pixel's triangle, drawn: far faster than SciPy's find_simplex
    for k, corners in enumerate(moved[mesh.simplices]):
        cv2.fillConvexPoly(owner, np.round(corners * 16).astype(np.int32), k, cv2.LINE_8, 4)
    simplex = owner.ravel()
    inside = simplex >= 0
    back = np.stack([cv2.getAffineTransform(moved[t].astype(np.float32), source[t].astype(np.float32))
                     for t in mesh.simplices])  # each triangle's map from moved to source
    m = back[simplex[inside]]
    maps = np.full((h * w, 2), -1.0)
    maps[inside] = np.einsum("nij,nj->ni", m[:, :, :2], grid[inside]) + m[:, :, 2] - 0.5
    maps = maps.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(image.astype(np.float32), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The rotation turning by ``yaw`` about the vertical axis, ``pitch`` the horizontal, ``roll`` the view's."""
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll),
                              math.sin(roll))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry
