"""Liveness on a track: is the face a head in front of the camera, or a photo or screen held up to it?

One frame cannot tell (the single-image score misses about a third of generated attacks at 5% of
real faces refused: docs/benchmarks.md), but a few seconds of video can. A print or a screen is one
plane: however it is turned, the face's landmarks in one frame are a homography of where they were
in another. A head is not: when it turns, the nose tip, well in front of the eyes and mouth, moves
off the plane they span. So each frame the detector's five landmarks (already there, no extra
model) are averaged over the last ``SMOOTH`` frames, against their own noise, and compared with
those ``LAG`` frames back: the homography taking the eyes and mouth corners there to here predicts
where the nose should be, and its distance from where the nose is (the parallax, in eye distances)
is the evidence.

* A frame is **deep** when the parallax reaches ``DEEP``: the face turned and is not flat.
* A frame is **flat** when the face moved (by ``SHIFT`` or more, across the image or in size),
  the eyes-and-mouth shape changed beyond a similarity by at least ``MOVED`` (it turned out of
  the image plane, so a head would have shown parallax) and the parallax stayed under ``FLAT``.
  The landmarks' jitter alone changes the shape of a still face by about that much, hence the
  first condition: a person who keeps still is never flat (nor deep: undecided).

Every ``SCORE_EVERY``-th frame the single-image model (``FacepluginLiveness``) scores the face too.
The rule, re-read each frame from everything seen since the track appeared:

* **spoof**: at least ``NEED`` flat frames and at most a quarter as many deep ones; or, with no
  deep frame at all, the single-image scores' geometric mean at least ``IMAGE_MARGIN`` times under
  the model's threshold over ``SCORES`` or more scores;
* **live**: at least ``NEED`` deep frames, at most a quarter as many flat ones, and the
  single-image scores (when there are any) not under the model's threshold;
* otherwise **undecided**, which is an answer: a confident wrong verdict is worse than none.

With a challenge (``video.challenge``: turn, blink, each step in time) the rule changes for live:

* **spoof** as above, whatever the challenge;
* **failed**: a step was not done in time (for good: the reason says which);
* **live**: every step done, and no spoof evidence: at most a quarter as many flat frames as deep
  ones, and the single-image scores not under the threshold (no depth needed: a blink needs none);
* otherwise **undecided**.

Measured on generated clips only (``faceprint.testing.presentations``, ``benchmarks/video_liveness.py``),
at 25 fps: the counts are in frames of the track, so at other rates the time to a verdict scales.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import NoFaceError
from ..types import Face, Image
from .challenge import Challenge, Progress


LIVE, SPOOF, UNDECIDED, FAILED = "live", "spoof", "undecided", "failed"
#: Frames per second a frame's time is taken at when ``update`` is given none.
FPS = 25.0
#: Frames the landmarks are averaged over, and frames between the two landmark sets compared.
SMOOTH, LAG = 5, 20
#: In eye distances: the nose's parallax that shows depth, the parallax under which a frame that
#: turned is flat, and the change of the eyes-and-mouth shape (beyond a similarity) that is a turn.
DEEP, FLAT, MOVED = 0.045, 0.02, 0.008
#: In eye distances (and the log of the size ratio): how far the face must move for a frame to be flat.
SHIFT = 0.15
#: Deep or flat frames a verdict needs.
NEED = 8
#: Frames between single-image scores of a track, scores needed for them to decide alone, and how
#: far under the model's threshold (a factor) their geometric mean must then be.
SCORE_EVERY, SCORES, IMAGE_MARGIN = 5, 6, 10.0
_QUAD = [0, 1, 3, 4]  # eyes and mouth corners in ``_KEYS``
_KEYS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class _Evidence:
    """What one track has shown so far."""

    raw: deque = field(default_factory=lambda: deque(maxlen=SMOOTH))
    smoothed: deque = field(default_factory=lambda: deque(maxlen=LAG + 1))
    last_frame: int = -(10**9)
    frames: int = 0
    deep: int = 0
    flat: int = 0
    scores: list[float] = field(default_factory=list)
    challenge: Progress = field(default_factory=Progress)
    verdict: str = UNDECIDED


class LivenessJudge:
    """Per-track liveness verdicts from the faces of each frame (see the module docstring).

    ``update`` once per frame for each visible track; tracks are forgotten with ``forget``. The
    single-image model loads on the first face scored. ``challenge``: what each track is asked to do
    (``prompt``) before it can be live.
    """

    def __init__(self, *, score_every: int = SCORE_EVERY, challenge: Challenge | None = None) -> None:
        if score_every < 1:
            raise ValueError("score_every must be at least 1")
        self.score_every = score_every
        self.challenge = challenge
        self._tracks: dict[int, _Evidence] = {}
        self._model = None

    def update(self, image: Image, track: int, face: Face, frame: int, time: float | None = None) -> str:
        """Weigh ``face`` (the track's face on frame number ``frame``, at ``time`` seconds: by default
        ``frame / FPS``, of ``image``) and return the track's verdict."""
        e = self._tracks.setdefault(track, _Evidence())
        if frame - e.last_frame > LAG:  # back after a gap: compare only frames of this stretch
            e.raw.clear()
            e.smoothed.clear()
        e.last_frame = frame
        marks = _landmarks(face)
        if marks is not None:
            e.raw.append(marks)
            if len(e.raw) == SMOOTH:
                e.smoothed.append(np.mean(e.raw, axis=0))
            if len(e.smoothed) > LAG:
                shift, change, parallax = _planar_fit(e.smoothed[0], e.smoothed[-1])
                e.deep += parallax >= DEEP
                e.flat += shift >= SHIFT and change >= MOVED and parallax < FLAT
        if e.frames % self.score_every == 0:
            e.scores.append(self._score(image, face))
        e.frames += 1
        if self.challenge is None:
            e.verdict = _decide(e, self.threshold)
        else:
            self.challenge.see(e.challenge, image, face, frame / FPS if time is None else time)
            e.verdict = _decide_challenged(e, self.threshold, self.challenge.done(e.challenge))
        return e.verdict

    def verdict(self, track: int) -> str:
        e = self._tracks.get(track)
        return e.verdict if e is not None else UNDECIDED

    def reason(self, track: int) -> str:
        """Why the track has its verdict, in words (for logs and refusals): a failed challenge's reason first."""
        e = self._tracks.get(track)
        if e is None:
            return "not seen"
        image = (f"single-image p(live) {_mean_score(e):.4f} over {len(e.scores)} frame(s)" if e.scores
                 else "no image score")
        seen = f"{e.flat} flat and {e.deep} deep frame(s) of {e.frames}; {image}"
        if self.challenge is None:
            return seen
        c = self.challenge
        step = e.challenge.failed or ("challenge done" if c.done(e.challenge) else f"asked: {c.prompt(e.challenge)}")
        return f"{step}; {seen}"

    def prompt(self, track: int) -> str | None:
        """What the track's person is asked to do now (None: nothing, or no challenge)."""
        if self.challenge is None:
            return None
        e = self._tracks.get(track)
        return self.challenge.prompt(e.challenge if e is not None else Progress())

    def forget(self, keep: set[int]) -> None:
        """Drop the evidence of every track not in ``keep`` (tracks that ended)."""
        for track in [t for t in self._tracks if t not in keep]:
            del self._tracks[track]

    @property
    def threshold(self) -> float:
        return self._liveness_model().threshold

    def _score(self, image: Image, face: Face) -> float:
        return self._liveness_model().predict(image, face, {}).probability

    def _liveness_model(self):
        if self._model is None:
            from ..analysis import get_model

            self._model = get_model("liveness")
        return self._model


@dataclass(frozen=True)
class Session:
    """The verdict on a few seconds of frames of one person (``judge_frames``), and why; ``face`` is the
    face of the last frame that had one."""

    verdict: str
    reason: str
    frames: int
    with_face: int
    face: Face


def judge_frames(frames: Iterable[Image], detect: Callable[[Image], list[Face]], *, fps: float = FPS,
                 challenge: Challenge | None = None) -> Session:
    """Judge frames in time order, ``fps`` apart, as one track: in each, the largest face ``detect``
    finds (a session is one person in front of their camera: the web page's webcam, a phone's)."""
    judge = LivenessJudge(challenge=challenge)
    count, seen, last = 0, 0, None
    for index, image in enumerate(frames):
        count += 1
        faces = detect(image)
        if faces:
            last = max(faces, key=lambda f: f.width * f.height)
            judge.update(image, 0, last, index, index / fps)
            seen += 1
    if last is None:
        raise NoFaceError(f"no face in any of the {count} frame(s)")
    return Session(judge.verdict(0), judge.reason(0), count, seen, last)


def _decide(e: _Evidence, threshold: float) -> str:
    if e.flat >= NEED and e.deep * 4 <= e.flat:
        return SPOOF
    if e.deep == 0 and len(e.scores) >= SCORES and _mean_score(e) * IMAGE_MARGIN < threshold:
        return SPOOF
    if e.deep >= NEED and _clean(e, threshold):
        return LIVE
    return UNDECIDED


def _decide_challenged(e: _Evidence, threshold: float, done: bool) -> str:
    if _decide(e, threshold) == SPOOF:
        return SPOOF
    if e.challenge.failed:
        return FAILED
    return LIVE if done and _clean(e, threshold) else UNDECIDED


def _clean(e: _Evidence, threshold: float) -> bool:
    """No spoof evidence: at most a quarter as many flat frames as deep ones, the image scores not low."""
    return e.flat * 4 <= e.deep and not (e.scores and _mean_score(e) < threshold)


def _mean_score(e: _Evidence) -> float:
    """The geometric mean of the track's single-image p(live): one bright frame cannot outweigh many dull ones."""
    return float(np.exp(np.mean(np.log(np.maximum(e.scores, 1e-9)))))


def _landmarks(face: Face) -> np.ndarray | None:
    """The five landmarks as a (5, 2) array, None if the detector gave fewer or the eyes coincide."""
    if not set(_KEYS) <= face.landmarks.keys():
        return None
    marks = np.array([face.landmarks[k] for k in _KEYS], np.float64)
    return marks if np.linalg.norm(marks[1] - marks[0]) > 1.0 else None


def _planar_fit(before: np.ndarray, now: np.ndarray) -> tuple[float, float, float]:
    """How far the face moved (its eyes and mouth's centre, plus the log of its size ratio), how far
    their shape changed beyond a similarity, and how far the nose is from where the homography of
    that shape puts it; in eye distances of ``now``."""
    eyes = float(np.linalg.norm(now[1] - now[0]))
    a, b = before[_QUAD], now[_QUAD]
    za = (a - a.mean(axis=0)) @ [1, 1j]
    zb = (b - b.mean(axis=0)) @ [1, 1j]
    scale = (np.conj(za) @ zb) / max(float(np.real(np.conj(za) @ za)), 1e-9)  # the best similarity, as a complex factor
    change = float(np.sqrt(np.mean(np.abs(zb - scale * za) ** 2)))
    shift = float(np.linalg.norm(b.mean(axis=0) - a.mean(axis=0))) / eyes + abs(float(np.log(max(abs(scale), 1e-9))))
    h = cv2.getPerspectiveTransform(a.astype(np.float32), b.astype(np.float32))
    nose = cv2.perspectiveTransform(before[2][None, None].astype(np.float64), h)[0, 0]
    return shift, change / eyes, float(np.linalg.norm(nose - now[2])) / eyes
