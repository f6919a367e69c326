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
* **Entering/leaving**: in shots of 4 s or more the last actor enters late and (with 2 or more
  actors) the first leaves early, so trackers see tracks start and end.
* **Occlusion**: every few seconds a solid bar sweeps across each face for 0.3-0.6 s.

What broadcast and phone footage adds, each switched on by its own argument (all off by default,
which gives the same clip as before they existed). Each draws from its own seeded stream:
``blur``, ``drift`` and ``jpeg`` change the pictures only, never the scene or its truth boxes;
``cuts``, ``camera`` and ``unclear`` change where the faces go.

* ``cuts``: hard cuts between shots. Each shot has its own cast and view (half of them a new
  scene, half another view of the last one; without ``camera``, a fixed view at a random zoom
  and place); its first actor is someone who was not in the last shot, put where the largest
  face was on the last frame, at about its size. Tracks end at a cut: actors after it get new
  track ids.
* ``camera``: the camera wanders, re-frames with quick pans every 2-5 s and zooms (0.85x-1.25x)
  over a scene larger than the frame; background and faces move together. Faces keep to the
  part of the scene the camera dwells on (its view averaged over about a second), so a quick
  pan smears them and can leave one partly out of view for a moment.
* ``blur``: motion blur along each face's own motion and the camera's, as long as the distance
  moved while a 180-degree shutter was open.
* ``drift``: auto-exposure and white balance wander (gain about 0.7x-1.3x, contrast, offset),
  jumping at cuts.
* ``jpeg``: every frame goes through JPEG at that quality (low: 20-40) before the mp4 writer:
  blocking and ringing like a low-bitrate stream.
* ``unclear``: the chance that an actor arrives unrecognisable for 1.5-3 s (less if it stays
  less than 2.5-4 s; not at all under 2 s): far away (a face 10-13% of the base width, about
  10 px wide at 640x480, edging nearer, then walking up) or turned 75-90 degrees to the side
  (then turning to the camera within 0.3-0.6 s), or both. A cut's newcomer always arrives clear.
  With the same chance, an actor looks aside (60-85 degrees) for 0.5-1.5 s later on.

Presets (``make_scenario``, ``--scenario``): ``cut_replace``, ``profile_then_frontal``, ``mix``.

Beside ``clip.mp4`` goes ``clip.truth.jsonl``, one line per frame::

    {"frame": 0, "time": 0.0, "faces": [{"track": 0, "person": "Tony_Blair", "name": "Tony_Blair",
     "box": [x1, y1, x2, y2], "occluded": false, "clear": true, "yaw": 0.0, "blur": 0.0}, ...],
     "shot": 0, "cut": false}

``track`` is the actor (one appearance within one shot; it may leave the view and come back
while the camera moves), ``name`` is null for strangers, ``box`` is the face where a detector
would put it (clipped to the frame; even while a bar covers it; narrowed and shifted when
turned), ``occluded`` is true while more than 40% of that box is hidden by a bar or a nearer
head. ``yaw`` is the head's turn in degrees (0: facing the camera), ``blur`` the length in pixels
of its motion smear, and ``clear`` says whether single-image recognition can be expected to
name it: not occluded, nearly all in view, turned at most ``CLEAR_YAW``, at least
``CLEAR_WIDTH`` px wide and smeared by at most ``CLEAR_BLUR`` of its width (limits measured with
the default detector and embedder; ``tests/test_video_synth.py`` checks that single frames
identify the clear faces and mostly fail on the others). Faces less than half in view are left
out. ``shot`` counts shots and ``cut`` marks the first frame of each after the
first. ``Clip.photos_used`` lists the photos shown, so tests can enrol people from their *other*
photos.

What these clips cannot tell you: the heads are still photos, so there is no real 3D turn (a
turned head is the frontal photo wrapped round a cylinder: no ear or profile silhouette appears,
and nothing hidden behind the nose), no talking, blinking or expression change within a photo,
and a pose or lighting change is a jump to another photo. Bodies, hair and other heads never
hide part of a face the way people do; backgrounds hold no faces, posters or crowds; lighting
changes the whole frame at once, never one side of a face; the camera only pans and zooms
(no rotation, shake, rolling shutter or lens distortion); compression is per-frame JPEG, without
the motion-compensated smearing and keyframe pulsing of real H.264; the noise and interlacing of
real sensors are absent. A cut's newcomer stands exactly where the last face was, which real
cuts rarely line up so well (the hard case, on purpose). Numbers measured here are an upper
bound for real footage.

Command line: ``python -m faceprint.testing.synth --lfw DIR --out clip.mp4 [--size 640x480] ...``
(``--cuts N --camera --blur --drift --jpeg Q --unclear P``, or ``--scenario NAME``).
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
from ..evaluation.video import truth_path
from .footage import SHUTTER, CameraPath, Exposure, compress, motion_blur, turn, turned_x

#: Well-photographed LFW people (50+ photos each): defaults for the command line.
DEFAULT_ENROLLED = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")
DEFAULT_STRANGERS = ("Ariel_Sharon", "Hugo_Chavez", "Junichiro_Koizumi", "Jean_Chretien", "John_Ashcroft")
#: The presets of ``make_scenario``.
SCENARIOS = ("cut_replace", "profile_then_frontal", "mix")

#: Limits for a face to count as ``clear`` (see the module's docstring). Measured on faces pasted here
#: (15 LFW photos of 5 people, each enrolled from one other photo, default detector and embedder):
#: within them every face was found and 93-100% were named at under 0.8x the threshold. Past them
#: recognition fades: 12 px wide, 0% under 0.8x (53% named at all); 8 px, not even found; turned
#: 60 degrees, 47% under 0.8x; 75 degrees, 0%; smeared 0.15 of the width, 40%.
CLEAR_YAW = 30.0  # degrees
CLEAR_WIDTH = 30.0  # pixels, the width the face would have facing the camera
CLEAR_BLUR = 0.08  # smear length over face width

#: Where the face detector finds the face in a 250x250 LFW photo (median box over many photos).
_FACE = np.array([77.0, 65.0, 170.0, 187.0])
#: The head with margin, cut from each photo and pasted (x1, y1, x2, y2): 160x190.
_CROP = (45, 30, 205, 220)
_CROP_W, _CROP_H = _CROP[2] - _CROP[0], _CROP[3] - _CROP[1]
_FACE_IN_CROP = _FACE - np.array([_CROP[0], _CROP[1]] * 2)
_FACE_W, _FACE_H = _FACE[2] - _FACE[0], _FACE[3] - _FACE[1]
#: The vertical cylinder a turned head is wrapped round (``footage.turn``): about the skull's width.
_AXIS, _RADIUS = (_FACE_IN_CROP[0] + _FACE_IN_CROP[2]) / 2, 0.62 * _FACE_W
_OCCLUDED = 0.4  # fraction of a face box hidden for it to count as occluded
_IN_VIEW, _WHOLE = 0.5, 0.9  # fraction of a face box inside the frame to be in the truth, to be clear
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
    cuts: tuple[int, ...] = ()  # the first frame of each shot after the first


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
    photos: list[Path]  # in the order shown; cycled when the shot outlasts them
    switches: np.ndarray  # times (s, from the shot's start) at which the next photo comes on
    start: float  # visible on [start, end)
    end: float
    occlusions: list[_Bar] = field(default_factory=list)
    yaw: tuple[tuple[float, float], ...] = ()  # (time, degrees) keyframes; none: facing the camera
    reach: tuple[tuple[float, float], ...] = ()  # (time, largest scale) keyframes, while far away; none: any
    replaces: bool = False  # comes on where the largest face was at the end of the last shot

    def yaw_at(self, t: float) -> float:
        return float(np.interp(t, *zip(*self.yaw))) if self.yaw else 0.0

    def reach_at(self, times: np.ndarray) -> np.ndarray:
        return np.interp(times, *zip(*self.reach), right=np.inf) if self.reach else np.full(len(times), np.inf)


@dataclass
class _Shot:
    frames: int
    actors: list[_Actor]
    new_scene: bool = True  # else the last shot's scene, seen from elsewhere


@dataclass(frozen=True)
class _Look:
    """What the camera and the stream do to the scene."""

    camera: bool = False
    blur: bool = False
    drift: bool = False
    jpeg: int | None = None


class _Photos:
    """Each person's LFW photos, handed out so an enrolled person always keeps one never shown."""

    def __init__(self, images: Path, enrolled: Sequence[str]):
        self.images, self.enrolled = images, set(enrolled)
        self.chosen: dict[str, set[Path]] = {}

    def pool(self, person: str) -> tuple[list[Path], int]:
        """The photos an actor of ``person`` may show, and how many of them at most."""
        photos = sorted((self.images / person).glob("*.jpg"))
        enrolled = person in self.enrolled
        if person in self.chosen and enrolled:  # hold back the first photo no earlier actor took
            held = next(p for p in photos if p not in self.chosen[person])
            photos = [p for p in photos if p != held]
            usable = len(photos)
        else:
            usable = len(photos) - 1 if enrolled else len(photos)
        if usable < 1:
            raise FaceprintError(f"{self.images / person}: too few LFW photos for this person")
        return photos, usable

    def take(self, person: str, photos: list[Path]) -> None:
        self.chosen.setdefault(person, set()).update(photos)


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
    cuts: int = 0,
    camera: bool = False,
    blur: bool = False,
    drift: bool = False,
    jpeg: int | None = None,
    unclear: float = 0.0,
) -> Clip:
    """Render ``faces`` actors (enrolled and strangers alternately) into ``out`` (an .mp4) plus its truth.

    ``lfw`` is the LFW folder (holding ``images/NAME/NAME_000N.jpg``) or its ``images`` folder.
    ``cuts`` .. ``unclear`` add what real footage has (see the module's docstring). The same
    arguments always give the same clip. Enrolled people keep at least one photo unshown.
    """
    images = _images(lfw)
    n_frames = max(1, round(seconds * fps))
    if cuts < 0 or n_frames < (cuts + 1) * round(fps):
        raise FaceprintError(f"{cuts} cuts do not fit in {seconds:g} s (each shot lasts at least 1 s)")
    if jpeg is not None and not 1 <= jpeg <= 100:
        raise FaceprintError(f"JPEG quality {jpeg} is not in 1..100")
    if not 0 <= unclear <= 1:
        raise FaceprintError(f"unclear {unclear} is not a probability in 0..1")
    rng = np.random.default_rng(seed)
    shot_rng, spell_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 4])
    weights = shot_rng.uniform(0.6, 1.4, cuts + 1)
    bounds = np.round(np.cumsum(np.r_[0, weights]) / weights.sum() * (n_frames - (cuts + 1) * round(fps)))
    lengths = np.diff(bounds).astype(int) + round(fps)
    lengths[-1] += n_frames - lengths.sum()
    everyone = list(dict.fromkeys([*enrolled, *strangers]))
    photos = _Photos(images, enrolled)
    cast = _cast(list(enrolled), list(strangers), faces)
    shots = []
    for k, frames in enumerate(lengths):
        if k:
            cast = _recast(cast, everyone, faces, rng)
        actors = [_actor(photos, p, p in enrolled, i, len(cast), frames / fps, occlusion, rng)
                  for i, p in enumerate(cast)]
        actors[0].replaces = k > 0
        for a in actors:
            if unclear and not a.replaces and spell_rng.random() < unclear:
                _arrive_unclear(a, spell_rng)
            if unclear and spell_rng.random() < unclear:
                _glance(a, spell_rng)
        shots.append(_Shot(int(frames), actors, new_scene=k == 0 or bool(shot_rng.random() < 0.5)))
    return _film(images, out, shots, size, fps, seed, rng, occlusion, _Look(camera, blur, drift, jpeg))


def make_scenario(
    name: str,
    lfw: Path,
    out: Path,
    *,
    enrolled: Sequence[str] = DEFAULT_ENROLLED,
    strangers: Sequence[str] = DEFAULT_STRANGERS,
    size: tuple[int, int] = (640, 480),
    fps: float = 25,
    seconds: float | None = None,
    seed: int = 0,
) -> Clip:
    """A preset clip, for tests and benchmarks that need one situation in particular.

    * ``cut_replace`` (4 s): ``enrolled[0]`` alone, clear; at half time a hard cut to a new scene
      where ``strangers[0]`` stands where they were, at about their size (``strangers[1]``, if
      given, elsewhere). No occlusion or camera effects.
    * ``profile_then_frontal`` (4 s): ``enrolled[0]`` alone, turned 80 degrees for the first
      2 s (a face the detector finds now and then but recognition cannot name), turning to the
      camera over 0.4 s, then facing it to the end.
    * ``mix`` (12 s): 3 faces, 3 cuts (fewer under 4 s), camera pan and zoom, motion blur, exposure drift, JPEG at
      quality 30, occlusion, and half the actors arriving far away or turned (``unclear=0.5``).
    """
    if name == "mix":
        seconds = seconds or 12.0
        return make_clip(lfw, out, enrolled=enrolled, strangers=strangers, size=size, fps=fps, seconds=seconds,
                         faces=3, seed=seed, cuts=min(3, max(0, int(seconds) - 1)), camera=True, blur=True,
                         drift=True, jpeg=30, unclear=0.5)
    if name not in SCENARIOS:
        raise FaceprintError(f"no scenario {name!r}: choose from {', '.join(SCENARIOS)}")
    if not enrolled or (name == "cut_replace" and not strangers):
        raise FaceprintError(f"{name} needs an enrolled person" + (" and a stranger" if name == "cut_replace" else ""))
    images = _images(lfw)
    seconds = seconds or 4.0
    n_frames = max(2 * round(fps), round(seconds * fps))
    rng = np.random.default_rng(seed)
    photos = _Photos(images, enrolled)
    person = enrolled[0]
    if name == "cut_replace":
        first = n_frames // 2
        shots = [_Shot(first, [_actor(photos, person, True, 0, 1, first / fps, False, rng, False)])]
        cast = list(strangers)[:2]
        later = [_actor(photos, p, False, i, len(cast), (n_frames - first) / fps, False, rng, False)
                 for i, p in enumerate(cast)]
        later[0].replaces = True
        shots.append(_Shot(n_frames - first, later))
    else:
        actor = _actor(photos, person, True, 0, 1, n_frames / fps, False, rng, False)
        side = float(rng.choice([-1.0, 1.0]))
        actor.yaw = ((0.0, side * 80), (2.0, side * 80), (2.4, side * float(rng.uniform(0, 5))))
        shots = [_Shot(n_frames, [actor])]
    return _film(images, out, shots, size, fps, seed, rng, False, _Look())


def _images(lfw: Path) -> Path:
    return Path(lfw) / "images" if (Path(lfw) / "images").is_dir() else Path(lfw)


def _film(images: Path, out: Path, shots: list[_Shot], size: tuple[int, int], fps: float, seed: int,
          rng: np.random.Generator, occlusion: bool, look: _Look) -> Clip:
    """Render ``shots`` one after the other into ``out`` and its truth; ``rng`` draws scenes and motion."""
    width, height = size
    n_frames = sum(s.frames for s in shots)
    moving = look.camera or len(shots) > 1  # the view is a window on a larger scene
    margin = CameraPath.margin(size) if moving else (0, 0)
    scene_size = (width + 2 * margin[0], height + 2 * margin[1])
    crops = {p: _head(p) for s in shots for a in s.actors for p in a.photos}
    faces = max(len(s.actors) for s in shots)
    base = min(95 * min(width / 640, height / 480), math.sqrt(width * height / max(faces, 1)) / 2.6)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise FaceprintError(f"{out}: cannot write an mp4 video here")
    shown: dict[str, list[Path]] = {}
    cuts: list[int] = []
    background, last, track, first = None, None, 0, 0
    with truth_path(out).open("w") as truth:
        for k, shot in enumerate(shots):
            if background is None or shot.new_scene:
                background = _background(scene_size, rng)
            view_rng = np.random.default_rng([seed, 2, k])
            view = (CameraPath.random(view_rng, shot.frames, fps, size) if look.camera
                    else CameraPath.random(view_rng, 1, fps, size).held(shot.frames) if k
                    else CameraPath.still(shot.frames, size))
            exposure = Exposure.random(np.random.default_rng([seed, 3, k]), shot.frames, fps) if look.drift else None
            arrive = {i: (view.to_stage(0, last[0]), last[1] / view.zooms[0] / base)
                      for i, a in enumerate(shot.actors) if a.replaces and last is not None}
            motion = _motion(shot.actors, size, base, shot.frames, fps, rng, arrive,
                             view.windows(steady=0.5 * fps if look.camera else 0.0))
            cuts += [first] if k else []
            seen: dict[int, np.ndarray] = {}  # actor -> its face's centre in the frame before
            for f in range(shot.frames):
                scene, placed, hidden, yaws = _compose(shot.actors, motion, f, f / fps, background, crops, base, margin,
                                                       look.blur, occlusion, shown)
                if moving:
                    scene = cv2.warpAffine(scene, view.matrix(f, margin), size, flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
                writer.write(_expose(scene, view, f, look, exposure))
                faces_out, now = [], {}
                for i, _, _, _, box in sorted(placed, key=lambda p: p[0]):
                    in_frame = view.to_frame(f, box.reshape(2, 2), margin).ravel()
                    face = _truth_face(shot.actors[i], int(track + i), in_frame, yaws[i], hidden[i],
                                       seen.get(i) if look.blur else None, size)
                    now[i] = face.pop("_centre")
                    if face["box"] is not None:
                        faces_out.append(face)
                seen = now
                record = {"frame": first + f, "time": round((first + f) / fps, 4), "faces": faces_out, "shot": k,
                          "cut": bool(k and not f)}
                truth.write(json.dumps(record) + "\n")
            last = _largest(faces_out)
            track += len(shot.actors)
            first += shot.frames
    writer.release()

    check = cv2.VideoCapture(str(out))
    ok = check.isOpened() and int(check.get(cv2.CAP_PROP_FRAME_COUNT)) == n_frames
    check.release()
    if not ok:
        raise FaceprintError(f"{out}: the written video does not read back with {n_frames} frames")
    return Clip(out, truth_path(out), float(fps), (width, height), n_frames, shown, tuple(cuts))


def _compose(actors: list[_Actor], motion: tuple[np.ndarray, np.ndarray, np.ndarray], f: int, t: float,
             background: np.ndarray, crops: dict[Path, np.ndarray], base: float, margin: tuple[int, int], blur: bool,
             occlusion: bool, shown: dict[str, list[Path]]) -> tuple[np.ndarray, list, dict[int, float], dict]:
    """The scene at frame ``f`` of a shot (before the camera), the heads placed in it (index, image, x, y,
    face box), how hidden each face is, and each head's yaw. Records the photos shown in ``shown``."""
    centers, scales, visible = motion
    scene = background.copy()
    placed, yaws = [], {}
    for i in (i for i in np.argsort(scales[f], kind="stable") if visible[f, i]):  # far to near
        a = actors[i]
        photo = a.photos[int(np.searchsorted(a.switches, t, side="right")) % len(a.photos)]
        if photo not in shown.setdefault(a.person, []):
            shown[a.person].append(photo)
        yaws[i] = a.yaw_at(t)
        head, x, y, box = _place(crops[photo], centers[f, i] + margin, base * scales[f, i], yaws[i])
        if blur and f and visible[f - 1, i]:
            head = motion_blur(head, *((centers[f, i] - centers[f - 1, i]) * SHUTTER))
        placed.append((i, head, x, y, box))
    bars = _bars(actors, placed, t) if occlusion else []
    hidden = _hidden(placed, bars, (scene.shape[1], scene.shape[0]))
    for _, head, x, y, _ in placed:
        _paste(scene, head, x, y)
    for (x1, y1, x2, y2), colour in bars:
        cv2.rectangle(scene, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    return scene, placed, hidden, yaws


def _expose(frame: np.ndarray, view: CameraPath, f: int, look: _Look, exposure: Exposure | None) -> np.ndarray:
    """What the camera and the stream make of the frame in view: the pan's smear, exposure drift, compression."""
    if look.blur and f:
        middle = np.array(frame.shape[1::-1], float) / 2
        frame = motion_blur(frame, *((middle - view.to_frame(f - 1, view.to_stage(f, middle))) * SHUTTER))
    if exposure is not None:
        frame = exposure.apply(frame, f)
    return compress(frame, look.jpeg) if look.jpeg is not None else frame


def _largest(faces: list[dict]) -> tuple[np.ndarray, float] | None:
    """The centre and (facing) width of the largest visible face: where a cut puts the next shot's first actor."""
    faces = [f for f in faces if not f["occluded"]]
    if not faces:
        return None
    x1, y1, x2, y2 = max(faces, key=lambda f: f["box"][3] - f["box"][1])["box"]
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), (y2 - y1) * _FACE_W / _FACE_H


def _truth_face(actor: _Actor, track: int, box: np.ndarray, yaw: float, hidden: float, before: np.ndarray | None,
                size: tuple[int, int]) -> dict:
    """One face's truth line from its box in frame pixels (``box`` None when less than half in view)."""
    width, height = size
    inside = np.clip(box, 0, [width, height] * 2)
    area = (box[2] - box[0]) * (box[3] - box[1])
    share = (inside[2] - inside[0]) * (inside[3] - inside[1]) / area
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    smear = float(np.hypot(*(centre - before))) * SHUTTER if before is not None else 0.0
    frontal = (box[3] - box[1]) * _FACE_W / _FACE_H  # its width facing the camera
    occluded = hidden > _OCCLUDED
    clear = (not occluded and share >= _WHOLE and abs(yaw) <= CLEAR_YAW and frontal >= CLEAR_WIDTH
             and smear <= CLEAR_BLUR * frontal)
    return {"track": track, "person": actor.person, "name": actor.person if actor.enrolled else None,
            "box": [round(float(v), 1) for v in inside] if share >= _IN_VIEW else None, "occluded": bool(occluded),
            "clear": bool(clear), "yaw": round(yaw, 1), "blur": round(smear, 1), "_centre": centre}


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


def _recast(cast: list[str], everyone: list[str], faces: int, rng: np.random.Generator) -> list[str]:
    """The next shot's people: first someone who was not in the last shot (the replacement), then any others."""
    newcomers = [p for p in everyone if p not in cast]
    if not newcomers:
        raise FaceprintError("a cut needs someone who was not in the shot before it: give more people")
    first = newcomers[int(rng.integers(len(newcomers)))]
    rest = [p for p in everyone if p != first]
    return [first, *(rest[j] for j in rng.choice(len(rest), size=faces - 1, replace=False))]


def _actor(photos: _Photos, person: str, enrolled: bool, index: int, count: int, duration: float,
           occlusion: bool, rng: np.random.Generator, comes_and_goes: bool = True) -> _Actor:
    """One actor of a shot lasting ``duration``; the last enters late and the first leaves early in long shots."""
    pool, usable = photos.pool(person)
    start, end = 0.0, duration
    if duration >= 4 and comes_and_goes:
        if index == count - 1:
            start = duration * rng.uniform(0.2, 0.35)
        if index == 0 and count >= 2:
            end = duration * rng.uniform(0.65, 0.8)
    switches = start + np.cumsum(rng.uniform(1.5, 3.0, int(duration / 1.5) + 1))
    chosen = [pool[k] for k in rng.choice(len(pool), size=min(usable, len(switches) + 1), replace=False)]
    photos.take(person, chosen)
    actor = _Actor(person, enrolled, chosen, switches, start, end)
    t = start + rng.uniform(0.4, 1.5)
    while occlusion and t + 0.6 < end:
        d = rng.uniform(0.3, 0.6)
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        actor.occlusions.append(_Bar(t, d, bool(rng.random() < 0.7), bool(rng.random() < 0.5), rng.uniform(0.6, 0.9),
                                     colour))
        t += d + rng.uniform(1.2, 3.0)
    return actor


def _arrive_unclear(actor: _Actor, rng: np.random.Generator) -> None:
    """Make ``actor`` come on too far away, too turned, or both, for 1.5-3 s before facing the camera close up."""
    length = min(rng.uniform(1.5, 3.0), actor.end - actor.start - 1.0)  # then clear for a second at least
    if length < 1.0:
        return
    kind = int(rng.integers(3))  # 0: far, 1: turned, 2: both
    s = actor.start
    if kind != 1:  # far away, edging nearer, then walks up: clear by the end, full size a second later
        far = rng.uniform(0.1, 0.13)
        actor.reach = ((s, far), (s + 0.7 * length, 1.4 * far), (s + length, 0.4), (s + length + 1, _SCALE_RANGE[1]))
    if kind != 0:  # looks aside, then turns to the camera
        side, turning = float(rng.choice([-1.0, 1.0])), rng.uniform(0.3, 0.6)
        yaw = side * rng.uniform(75, 90)
        actor.yaw = ((s, yaw), (s + length - turning, yaw), (s + length, side * rng.uniform(0, 8)))


def _glance(actor: _Actor, rng: np.random.Generator) -> None:
    """Make ``actor`` look aside (60-85 degrees, turning in 0.2-0.4 s) for 0.5-1.5 s, a second or more after
    it became clear and before it leaves; nothing if the appearance is too short for that."""
    settled = max([actor.start, *(t for t, _ in actor.yaw), *(t for t, _ in actor.reach[:-1])]) + 1.0
    hold, turning = rng.uniform(0.5, 1.5), rng.uniform(0.2, 0.4)
    room = actor.end - 1.0 - settled - hold - 2 * turning
    if room <= 0:
        return
    t = settled + rng.uniform(0, room)
    ahead = actor.yaw[-1][1] if actor.yaw else 0.0
    aside = float(rng.choice([-1.0, 1.0])) * rng.uniform(60, 85)
    actor.yaw = (*(actor.yaw or ((actor.start, 0.0),)), (t, ahead), (t + turning, aside),
                 (t + turning + hold, aside), (t + 2 * turning + hold, ahead))


def _head(photo: Path) -> np.ndarray:
    """The photo's central head region as BGRA with a soft elliptical alpha, so it blends into the scene."""
    image = cv2.imread(str(photo))
    if image is None or image.shape[:2] != (250, 250):
        raise FaceprintError(f"{photo}: not a 250x250 LFW photo")
    return _cut_out(image)


def _cut_out(image: np.ndarray) -> np.ndarray:
    """The central head region of a 250x250 LFW picture (any 3-channel order) with a soft elliptical alpha."""
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
            rng: np.random.Generator, arrive: dict[int, tuple[np.ndarray, float]] | None = None,
            windows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face centres (frames, actors, 2), scales and visibility: bouncing random walks that keep apart.

    ``arrive`` maps actors to the point and scale at which they come on (else a free spot and a random
    size); ``windows`` (frames, 4) is the part of the stage the camera sees, where faces stay (default:
    all of it), so a moving camera drags the faces at its edges along like an operator keeping them in
    shot.
    """
    arrive = arrive or {}
    n, dt = len(actors), 1 / fps
    width, height = size
    times = np.arange(n_frames) / fps
    periods, phases = rng.uniform(2.5, 7.0, (2, n)), rng.uniform(0, 2 * np.pi, (2, n))
    wave = (np.sin(2 * np.pi * times[:, None] / periods[0] + phases[0])
            + 0.5 * np.sin(2 * np.pi * times[:, None] / (periods[1] * 0.6) + phases[1])) / 1.5
    lo, hi = _SCALE_RANGE
    scales = np.minimum(lo * (hi / lo) ** ((wave + 1) / 2), np.stack([a.reach_at(times) for a in actors], axis=1))
    starts, ends = np.array([a.start for a in actors]), np.array([a.end for a in actors])
    visible = (times[:, None] >= starts - 1e-9) & (times[:, None] < ends - 1e-9)
    for i, (_, scale) in arrive.items():  # from its arrival size, growing and shrinking as the others do
        if visible[:, i].any():
            scales[:, i] *= np.clip(scale, lo, hi) / scales[np.argmax(visible[:, i]), i]
            scales[:, i] = np.clip(scales[:, i], lo, hi)
    speed = base * rng.uniform(0.6, 1.4, n)  # pixels per second
    heading = rng.uniform(0, 2 * np.pi, n)
    pos = np.zeros((n, 2))
    centers = np.zeros((n_frames, n, 2))
    for f in range(n_frames):
        w = base * scales[f]
        half = np.stack([w / 2, w * _FACE_H / _FACE_W / 2], axis=1)
        window = windows[f] if windows is not None else np.array([0, 0, width, height])
        lo_b = window[:2] + half + 0.15 * w[:, None]
        hi_b = window[2:] - half - 0.15 * w[:, None]
        present = visible[f] & visible[f - 1] if f else np.zeros(n, bool)
        for i in np.flatnonzero(visible[f] & ~present):  # just came on
            pos[i] = (np.clip(arrive[i][0], lo_b[i], np.maximum(hi_b[i], lo_b[i])) if i in arrive
                      else _free_spot(pos, half, present, i, lo_b[i], hi_b[i], rng))
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


def _place(head: np.ndarray, center: np.ndarray, face_width: float,
           yaw: float = 0.0) -> tuple[np.ndarray, int, int, np.ndarray]:
    """The head turned by ``yaw`` and resized so its face is ``face_width`` wide (facing the camera), its
    top-left corner, and the face box in the frame."""
    if yaw:
        head = turn(head, yaw, _AXIS, _RADIUS)
    k = face_width / _FACE_W
    w, h = max(1, round(_CROP_W * k)), max(1, round(_CROP_H * k))
    resized = cv2.resize(head, (w, h), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    sx, sy = w / _CROP_W, h / _CROP_H
    fx = (_FACE_IN_CROP[0] + _FACE_IN_CROP[2]) / 2 * sx
    fy = (_FACE_IN_CROP[1] + _FACE_IN_CROP[3]) / 2 * sy
    x, y = round(center[0] - fx), round(center[1] - fy)
    face = _FACE_IN_CROP.copy()
    if yaw:
        face[[0, 2]] = turned_x(face[[0, 2]], yaw, _AXIS, _RADIUS)
    box = face * np.array([sx, sy, sx, sy]) + np.array([x, y, x, y])
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
    parser.add_argument("--seconds", type=float, help="length (default 8, or the scenario's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enrolled", default=",".join(DEFAULT_ENROLLED), help="comma-separated LFW names")
    parser.add_argument("--strangers", default=",".join(DEFAULT_STRANGERS), help="comma-separated LFW names")
    parser.add_argument("--no-occlusion", dest="occlusion", action="store_false")
    parser.add_argument("--cuts", type=int, default=0, help="hard cuts between shots (default 0)")
    parser.add_argument("--camera", action="store_true", help="the camera pans and zooms")
    parser.add_argument("--blur", action="store_true", help="motion blur")
    parser.add_argument("--drift", action="store_true", help="exposure and white balance drift")
    parser.add_argument("--jpeg", type=int, metavar="QUALITY", help="JPEG round trip per frame (low: 20-40)")
    parser.add_argument("--unclear", type=float, default=0.0, metavar="P",
                        help="chance an actor arrives far away or turned aside (default 0)")
    parser.add_argument("--scenario", choices=SCENARIOS,
                        help="a preset (uses --lfw --out --size --fps --seconds --seed --enrolled --strangers only)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    people = {"enrolled": [p for p in args.enrolled.split(",") if p],
              "strangers": [p for p in args.strangers.split(",") if p]}
    try:
        if args.scenario:
            clip = make_scenario(args.scenario, args.lfw, args.out, **people, size=(width, height), fps=args.fps,
                                 seconds=args.seconds, seed=args.seed)
        else:
            clip = make_clip(args.lfw, args.out, **people, size=(width, height), fps=args.fps,
                             seconds=args.seconds or 8.0, faces=args.faces, seed=args.seed, occlusion=args.occlusion,
                             cuts=args.cuts, camera=args.camera, blur=args.blur, drift=args.drift, jpeg=args.jpeg,
                             unclear=args.unclear)
    except FaceprintError as e:
        parser.exit(1, f"error: {e}\n")
    print(f"{clip.video}: {clip.frames} frames, {width}x{height} at {clip.fps:g} fps; truth in {clip.truth}")
    if clip.cuts:
        print(f"  cuts at frames {', '.join(map(str, clip.cuts))}")
    for person, photos in clip.photos_used.items():
        print(f"  {person}: {', '.join(p.name for p in photos)}")


if __name__ == "__main__":
    main()
