"""Test clips for live recognition: LFW faces moving over a synthetic background, with per-frame truth.

The machines have no camera, so identity accuracy, identity switches and fps are measured on clips
made here. Each *actor* is one LFW person whose head (the centre of one of their photos, under a
soft elliptical mask) wanders over a seeded background:

* **Motion**: a smooth random walk (the heading turns a little every frame, the speed breathes)
  that bounces off the frame's edges and off the other faces, so faces never overlap much.
* **Scale**: each face grows and shrinks smoothly between 0.7x and 1.4x of a base width (about
  95 px at 640x480, proportionally larger in bigger frames, smaller when many faces must fit);
  bigger (nearer) faces are drawn in front.
* **Pose/lighting**: every 1.5-3 s an actor switches to another photo of the same person.
* **Entering/leaving**: in clips of 4 s or more the last actor enters late and (with 2 or more
  actors) the first leaves early, so trackers see tracks start and end.
* **Occlusion**: every few seconds a solid bar sweeps across each face for 0.3-0.6 s.

Beside ``clip.mp4`` goes ``clip.truth.jsonl``, one line per frame::

    {"frame": 0, "time": 0.0, "faces": [{"track": 0, "person": "Tony_Blair", "name": "Tony_Blair",
     "box": [x1, y1, x2, y2], "occluded": false}, ...]}

``track`` is the actor (one continuous appearance), ``name`` is null for strangers, ``box`` is the
whole face where a detector would put it (clipped to the frame; even while a bar covers it), and
``occluded`` is true while more than 40% of that box is hidden by a bar or a nearer head.
``Clip.photos_used`` lists the photos shown, so tests can enrol people from their *other* photos.

Command line: ``python -m faceprint.testing.synth --lfw DIR --out clip.mp4 [--size 640x480] ...``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..errors import FaceprintError

#: Well-photographed LFW people (50+ photos each): defaults for the command line.
DEFAULT_ENROLLED = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")
DEFAULT_STRANGERS = ("Ariel_Sharon", "Hugo_Chavez", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft")

#: Where the face detector finds the face in a 250x250 LFW photo (median box over many photos).
_FACE = np.array([77.0, 65.0, 170.0, 187.0])
#: The head with margin, cut from each photo and pasted (x1, y1, x2, y2): 160x190.
_CROP = (45, 30, 205, 220)
_CROP_W, _CROP_H = _CROP[2] - _CROP[0], _CROP[3] - _CROP[1]
_FACE_IN_CROP = _FACE - np.array([_CROP[0], _CROP[1]] * 2)
_FACE_W, _FACE_H = _FACE[2] - _FACE[0], _FACE[3] - _FACE[1]
_OCCLUDED = 0.4  # fraction of a face box hidden for it to count as occluded
_SCALE_RANGE = (0.7, 1.4)


@dataclass(frozen=True)
class Clip:
    """A rendered clip: the video, its ground truth, and the LFW photos shown per person."""

    video: Path
    truth: Path
    fps: float
    size: tuple[int, int]  # (width, height)
    frames: int
    photos_used: dict[str, list[Path]]


class _Bar(NamedTuple):
    """One occlusion: a solid bar sweeping across an actor's face."""

    start: float  # seconds
    duration: float
    vertical: bool  # an upright bar moving sideways, else a lying one moving down or up
    forward: bool  # left to right (top to bottom), else back
    thickness: float  # across the sweep, as a fraction of the face's size
    colour: tuple[int, int, int]  # BGR


@dataclass
class _Actor:
    person: str
    enrolled: bool
    photos: list[Path]  # in the order shown; cycled when the clip outlasts them
    switches: np.ndarray  # times (s) at which the next photo comes on
    start: float  # visible on [start, end)
    end: float
    occlusions: list[_Bar] = field(default_factory=list)


def truth_path(video: Path) -> Path:
    return Path(video).with_suffix(".truth.jsonl")


def load_truth(path: Path) -> list[dict]:
    """The per-frame truth records of a clip (pass the ``.truth.jsonl`` path or the video's)."""
    path = Path(path)
    path = path if path.name.endswith(".truth.jsonl") else truth_path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_clip(
    lfw: Path,
    out: Path,
    *,
    enrolled: Sequence[str],
    strangers: Sequence[str],
    size: tuple[int, int] = (640, 480),
    fps: float = 25,
    seconds: float = 8.0,
    faces: int = 3,
    seed: int = 0,
    occlusion: bool = True,
) -> Clip:
    """Render ``faces`` actors (enrolled and strangers alternately) into ``out`` (an .mp4) plus its truth.

    ``lfw`` is the LFW folder (holding ``images/NAME/NAME_000N.jpg``) or its ``images`` folder.
    The same arguments always give the same clip. Enrolled people keep at least one photo unshown.
    """
    images = Path(lfw) / "images" if (Path(lfw) / "images").is_dir() else Path(lfw)
    width, height = size
    n_frames = max(1, round(seconds * fps))
    duration = n_frames / fps
    rng = np.random.default_rng(seed)
    people = _cast(list(enrolled), list(strangers), faces)
    actors = [_actor(images, p, p in enrolled, i, len(people), duration, occlusion, rng) for i, p in enumerate(people)]
    crops = {p: _head(p) for a in actors for p in a.photos}
    background = _background(size, rng)
    base = min(95 * min(width / 640, height / 480), math.sqrt(width * height / max(faces, 1)) / 2.6)
    centers, scales, visible = _motion(actors, size, base, n_frames, fps, rng)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise FaceprintError(f"{out}: cannot write an mp4 video here")
    shown: dict[str, list[Path]] = {}
    with truth_path(out).open("w") as truth:
        for f in range(n_frames):
            t = f / fps
            on = [i for i in np.argsort(scales[f], kind="stable") if visible[f, i]]  # far to near
            frame = background.copy()
            placed = []
            for i in on:
                a = actors[i]
                photo = a.photos[int(np.searchsorted(a.switches, t, side="right")) % len(a.photos)]
                if photo not in shown.setdefault(a.person, []):
                    shown[a.person].append(photo)
                placed.append((i, *_place(crops[photo], centers[f, i], base * scales[f, i])))
            bars = _bars(actors, placed, t) if occlusion else []
            hidden = _hidden(placed, bars, size)
            for _, head, x, y, _ in placed:
                _paste(frame, head, x, y)
            for (x1, y1, x2, y2), colour in bars:
                cv2.rectangle(frame, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
            writer.write(frame)
            faces_out = [
                {"track": int(i), "person": actors[i].person, "name": actors[i].person if actors[i].enrolled else None,
                 "box": [round(float(v), 1) for v in np.clip(box, 0, [width, height] * 2)],
                 "occluded": bool(hidden[i] > _OCCLUDED)}
                for i, _, _, _, box in sorted(placed, key=lambda p: p[0])
            ]
            truth.write(json.dumps({"frame": f, "time": round(t, 4), "faces": faces_out}) + "\n")
    writer.release()

    check = cv2.VideoCapture(str(out))
    ok = check.isOpened() and int(check.get(cv2.CAP_PROP_FRAME_COUNT)) == n_frames
    check.release()
    if not ok:
        raise FaceprintError(f"{out}: the written video does not read back with {n_frames} frames")
    return Clip(out, truth_path(out), float(fps), (width, height), n_frames, shown)


def _cast(enrolled: list[str], strangers: list[str], faces: int) -> list[str]:
    """Enrolled and strangers alternately (enrolled first), then whichever list has people left."""
    order = [p for pair in zip(enrolled, strangers) for p in pair]
    shorter = min(len(enrolled), len(strangers))
    order += enrolled[shorter:] + strangers[shorter:]
    if len(set(order)) != len(order):
        raise FaceprintError("a person is listed twice (each actor is a different person)")
    if faces < 1 or faces > len(order):
        raise FaceprintError(f"{faces} faces asked for but {len(order)} people given")
    return order[:faces]


def _actor(images: Path, person: str, enrolled: bool, index: int, count: int, duration: float,
           occlusion: bool, rng: np.random.Generator) -> _Actor:
    photos = sorted((images / person).glob("*.jpg"))
    usable = len(photos) - 1 if enrolled else len(photos)  # an enrolled person keeps one for enrolment
    if usable < 1:
        raise FaceprintError(f"{images / person}: too few LFW photos for this person")
    start, end = 0.0, duration
    if duration >= 4:
        if index == count - 1:
            start = duration * rng.uniform(0.2, 0.35)
        if index == 0 and count >= 2:
            end = duration * rng.uniform(0.65, 0.8)
    switches = start + np.cumsum(rng.uniform(1.5, 3.0, int(duration / 1.5) + 1))
    chosen = rng.choice(len(photos), size=min(usable, len(switches) + 1), replace=False)
    actor = _Actor(person, enrolled, [photos[k] for k in chosen], switches, start, end)
    t = start + rng.uniform(0.4, 1.5)
    while occlusion and t + 0.6 < end:
        d = rng.uniform(0.3, 0.6)
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        actor.occlusions.append(_Bar(t, d, bool(rng.random() < 0.7), bool(rng.random() < 0.5), rng.uniform(0.6, 0.9),
                                     colour))
        t += d + rng.uniform(1.2, 3.0)
    return actor


def _head(photo: Path) -> np.ndarray:
    """The photo's central head region as BGRA with a soft elliptical alpha, so it blends into the scene."""
    image = cv2.imread(str(photo))
    if image is None or image.shape[:2] != (250, 250):
        raise FaceprintError(f"{photo}: not a 250x250 LFW photo")
    x1, y1, x2, y2 = _CROP
    yy, xx = np.mgrid[0:_CROP_H, 0:_CROP_W].astype(np.float32)
    r = np.hypot((xx + 0.5 - _CROP_W / 2) / (_CROP_W / 2), (yy + 0.5 - _CROP_H / 2) / (_CROP_H / 2))
    alpha = np.clip((1.0 - r) / 0.18, 0, 1) * 255
    return np.dstack([image[y1:y2, x1:x2], alpha.astype(np.uint8)])


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth scene with no face in it: a gradient, low-frequency colour noise and a few blurred shapes."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    low, high = rng.uniform(50, 200, (2, 3)).astype(np.float32)
    scene = low + (high - low) * ramp[..., None]
    noise = rng.normal(0, 25, (5, 7, 3)).astype(np.float32)
    scene += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    unit = min(width, height)
    for _ in range(rng.integers(4, 8)):
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        w, h = (int(v) for v in rng.uniform(0.05, 0.4, 2) * unit)
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        if rng.random() < 0.6:
            cv2.rectangle(scene, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.line(scene, (x, y), (x + w, y - h), colour, max(2, unit // 80))
    return cv2.GaussianBlur(scene, (0, 0), unit / 200)


def _motion(actors: list[_Actor], size: tuple[int, int], base: float, n_frames: int, fps: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face centres (frames, actors, 2), scales and visibility: bouncing random walks that keep apart."""
    n, dt = len(actors), 1 / fps
    width, height = size
    times = np.arange(n_frames) / fps
    periods, phases = rng.uniform(2.5, 7.0, (2, n)), rng.uniform(0, 2 * np.pi, (2, n))
    wave = (np.sin(2 * np.pi * times[:, None] / periods[0] + phases[0])
            + 0.5 * np.sin(2 * np.pi * times[:, None] / (periods[1] * 0.6) + phases[1])) / 1.5
    lo, hi = _SCALE_RANGE
    scales = lo * (hi / lo) ** ((wave + 1) / 2)
    starts, ends = np.array([a.start for a in actors]), np.array([a.end for a in actors])
    visible = (times[:, None] >= starts - 1e-9) & (times[:, None] < ends - 1e-9)
    speed = base * rng.uniform(0.6, 1.4, n)  # pixels per second
    heading = rng.uniform(0, 2 * np.pi, n)
    pos = np.zeros((n, 2))
    centers = np.zeros((n_frames, n, 2))
    for f in range(n_frames):
        w = base * scales[f]
        half = np.stack([w / 2, w * _FACE_H / _FACE_W / 2], axis=1)
        lo_b = half + 0.15 * w[:, None]
        hi_b = np.array([width, height]) - lo_b
        present = visible[f] & visible[f - 1] if f else np.zeros(n, bool)
        for i in np.flatnonzero(visible[f] & ~present):  # just came on
            pos[i] = _free_spot(pos, half, present, i, lo_b[i], hi_b[i], rng)
            present[i] = True
        if f:
            heading += rng.normal(0, 1.0 * math.sqrt(dt), n)
            v = np.stack([np.cos(heading), np.sin(heading)], axis=1)
            v *= (speed * (1 + 0.4 * np.sin(2 * np.pi * times[f] / periods[1] + phases[0])) * dt)[:, None]
            pos += v
            for i, j in ((i, j) for i in range(n) for j in range(i + 1, n) if visible[f, i] and visible[f, j]):
                gap = 1.3 * (half[i] + half[j]) - np.abs(pos[j] - pos[i])
                if (gap > 0).all():  # too close: push apart along the easier axis, and turn both away
                    axis = int(np.argmin(gap / (half[i] + half[j])))
                    side = 1.0 if pos[j, axis] >= pos[i, axis] else -1.0
                    pos[i, axis] -= side * gap[axis] / 2
                    pos[j, axis] += side * gap[axis] / 2
                    heading[i] = _away(heading[i], axis, -side)
                    heading[j] = _away(heading[j], axis, side)
            for axis in (0, 1):  # bounce off the frame's edges
                low, high = pos[:, axis] < lo_b[:, axis], pos[:, axis] > hi_b[:, axis]
                heading[low] = [_away(h, axis, 1.0) for h in heading[low]]
                heading[high] = [_away(h, axis, -1.0) for h in heading[high]]
            pos = np.clip(pos, lo_b, np.maximum(hi_b, lo_b))
        centers[f] = pos
    return centers, scales, visible


def _away(heading: float, axis: int, side: float) -> float:
    """``heading`` mirrored, if needed, so it moves towards ``side`` (+1/-1) along ``axis``."""
    v = np.array([math.cos(heading), math.sin(heading)])
    v[axis] = side * abs(v[axis])
    return math.atan2(v[1], v[0])


def _free_spot(pos: np.ndarray, half: np.ndarray, present: np.ndarray, i: int, lo: np.ndarray, hi: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Where a face coming on is farthest from the faces already there (the best of a few random spots)."""
    spots = rng.uniform(lo, np.maximum(hi, lo), (40, 2))
    others = np.flatnonzero(present)
    if not len(others):
        return spots[0]
    room = np.min([np.max(np.abs(spots - pos[j]) / (half[i] + half[j]), axis=1) for j in others], axis=0)
    return spots[int(np.argmax(room))]


def _place(head: np.ndarray, center: np.ndarray, face_width: float) -> tuple[np.ndarray, int, int, np.ndarray]:
    """The head resized so its face is ``face_width`` wide, its top-left corner, and the face box in the frame."""
    k = face_width / _FACE_W
    w, h = max(1, round(_CROP_W * k)), max(1, round(_CROP_H * k))
    resized = cv2.resize(head, (w, h), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    sx, sy = w / _CROP_W, h / _CROP_H
    fx = (_FACE_IN_CROP[0] + _FACE_IN_CROP[2]) / 2 * sx
    fy = (_FACE_IN_CROP[1] + _FACE_IN_CROP[3]) / 2 * sy
    x, y = round(center[0] - fx), round(center[1] - fy)
    box = _FACE_IN_CROP * np.array([sx, sy, sx, sy]) + np.array([x, y, x, y])
    return resized, x, y, box


def _bars(actors: list[_Actor], placed: list, t: float) -> list[tuple[tuple[int, int, int, int], tuple]]:
    """The occluding bars on screen at ``t``: each sweeps across its actor's face, following it."""
    bars = []
    for i, _, _, _, (x1, y1, x2, y2) in placed:
        for bar in actors[i].occlusions:
            if not bar.start <= t < bar.start + bar.duration:
                continue
            q = (t - bar.start) / bar.duration
            q = q if bar.forward else 1 - q
            if bar.vertical:
                bw, bh = bar.thickness * (x2 - x1), 1.6 * (y2 - y1)
                cx, cy = x1 - bw / 2 + q * (x2 - x1 + bw), (y1 + y2) / 2
            else:
                bw, bh = 1.6 * (x2 - x1), bar.thickness * (y2 - y1)
                cx, cy = (x1 + x2) / 2, y1 - bh / 2 + q * (y2 - y1 + bh)
            corners = (round(cx - bw / 2), round(cy - bh / 2), round(cx + bw / 2), round(cy + bh / 2))
            bars.append((corners, bar.colour))
    return bars


def _hidden(placed: list, bars: list, size: tuple[int, int]) -> dict[int, float]:
    """Per actor, the fraction of its face box covered by bars or by heads drawn after it."""
    width, height = size
    cover = np.zeros((height, width), bool)
    for (x1, y1, x2, y2), _ in bars:
        cover[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    hidden = {}
    for i, head, x, y, box in reversed(placed):
        bx1, by1, bx2, by2 = (int(round(v)) for v in np.clip(box, 0, [width, height] * 2))
        hidden[i] = float(cover[by1:by2, bx1:bx2].mean()) if bx2 > bx1 and by2 > by1 else 1.0
        region, src = _overlap(head.shape, x, y, size)
        if region is not None:
            cover[region] |= head[src][..., 3] > 127
    return hidden


def _overlap(shape: tuple, x: int, y: int, size: tuple[int, int]) -> tuple[tuple, tuple] | tuple[None, None]:
    """Frame and source slices where an image of ``shape`` placed at (x, y) lands inside the frame."""
    h, w = shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, size[0]), min(y + h, size[1])
    if x2 <= x1 or y2 <= y1:
        return None, None
    return (slice(y1, y2), slice(x1, x2)), (slice(y1 - y, y2 - y), slice(x1 - x, x2 - x))


def _paste(frame: np.ndarray, head: np.ndarray, x: int, y: int) -> None:
    region, src = _overlap(head.shape, x, y, (frame.shape[1], frame.shape[0]))
    if region is None:
        return
    part = head[src]
    alpha = part[..., 3].astype(np.float32) * (1 / 255)
    frame[region] = cv2.blendLinear(np.ascontiguousarray(part[..., :3]), frame[region], alpha, 1 - alpha)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m faceprint.testing.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder (with images/NAME/NAME_000N.jpg)")
    parser.add_argument("--out", type=Path, required=True, help="video to write (.mp4); truth goes beside it")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--fps", type=float, default=25)
    parser.add_argument("--faces", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enrolled", default=",".join(DEFAULT_ENROLLED), help="comma-separated LFW names")
    parser.add_argument("--strangers", default=",".join(DEFAULT_STRANGERS), help="comma-separated LFW names")
    parser.add_argument("--no-occlusion", dest="occlusion", action="store_false")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    try:
        clip = make_clip(args.lfw, args.out, enrolled=[p for p in args.enrolled.split(",") if p],
                         strangers=[p for p in args.strangers.split(",") if p], size=(width, height), fps=args.fps,
                         seconds=args.seconds, faces=args.faces, seed=args.seed, occlusion=args.occlusion)
    except FaceprintError as e:
        parser.exit(1, f"error: {e}\n")
    print(f"{clip.video}: {clip.frames} frames, {width}x{height} at {clip.fps:g} fps; truth in {clip.truth}")
    for person, photos in clip.photos_used.items():
        print(f"  {person}: {', '.join(p.name for p in photos)}")


if __name__ == "__main__":
    main()
