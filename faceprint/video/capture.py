"""Enrol a person from a camera (or a video): keep only good, varied faces of the one person in view.

A gallery is only as good as its enrolment photos. Frames are refused, each with a reason, when
there is not exactly one face, the face is small, turned, blurred, or nearly the same as a face
already taken; accepted faces are also spaced in time, so twenty photos are twenty looks.

With ``liveness``, a gallery is also kept free of photos and screens held up to the camera: every
frame's face is shown to a ``LivenessJudge`` (``video.liveness``), every frame is refused once it
judges the face a spoof, and a face is taken only once it has judged it live (an enrolment is worth
a few seconds of turning the head). With a ``challenge`` too, the face is taken only once the
steps are done (each refusal says what is asked), and never once one was missed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis.quality import TURNED_AWAY, box_sharpness, turn
from ..gallery import Gallery
from ..types import Face
from .challenge import Challenge
from .liveness import FAILED, LIVE, SPOOF, LivenessJudge
from .source import Source, VideoFrame

#: Defaults: smallest face side in pixels; nose offset from the eyes' midpoint, in eye distances,
#: beyond which a face is "turned" (about 25 degrees of yaw); variance of the Laplacian of the face
#: scaled to 112 px below which it is "blurred"; cosine distance below which a face repeats one
#: already taken; seconds between accepted faces.
MIN_SIZE, MAX_TURN, MIN_SHARPNESS, MIN_CHANGE, MIN_GAP_S = 80, TURNED_AWAY, 40.0, 0.08, 0.2


@dataclass(frozen=True)
class Verdict:
    frame: int
    time: float
    accepted: bool
    reason: str  # why refused, or "accepted"
    face: Face | None = None


@dataclass
class Capture:
    """What a capture did: the face ids enrolled and every refusal by reason."""

    name: str
    enrolled: list[int] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    frames: int = 0


def capture(name: str, source: str | int | Path | Source, gallery: Gallery, *, count: int = 20,
            min_size: int = MIN_SIZE, on_verdict: Callable[[Verdict, VideoFrame], None] | None = None,
            liveness: bool = False, challenge: Challenge | None = None) -> Capture:
    """Watch ``source`` until ``count`` good faces of one person are enrolled as ``name`` (or it ends);
    ``liveness``: only from a face judged live, never from one judged a print or a screen;
    ``challenge`` (with liveness): only once the person did what it asks."""
    if challenge is not None and not liveness:
        raise ValueError("a challenge is part of liveness: pass liveness=True with it")
    source = source if isinstance(source, Source) else Source(source)
    pipe = gallery.pipeline
    result = Capture(name)
    taken: list[np.ndarray] = []
    last_time = -1e9
    judge = LivenessJudge(challenge=challenge) if liveness else None
    for frame in source.frames():
        result.frames += 1
        verdict = _judge(frame, pipe, taken, last_time, min_size, judge)
        if verdict.accepted:
            fid = gallery.enroll(name, frame.image, source=f"{source.spec}#frame={frame.index}", box=verdict.face.box)
            if fid is None:
                verdict = Verdict(frame.index, frame.time, False, "already enrolled", verdict.face)
            else:
                result.enrolled.append(fid)
                last_time = frame.time
        if not verdict.accepted:
            result.refused[verdict.reason.split(" (")[0]] += 1
        if on_verdict:
            on_verdict(verdict, frame)
        if len(result.enrolled) >= count:
            break
    return result


def _judge(frame: VideoFrame, pipe, taken: list[np.ndarray], last_time: float, min_size: int,
           judge: LivenessJudge | None = None) -> Verdict:
    def no(reason: str, face: Face | None = None) -> Verdict:
        return Verdict(frame.index, frame.time, False, reason, face)

    faces = None
    if judge is not None:  # the judge needs the face of every frame, not only of those that could be taken
        faces = pipe.detect(frame.image)
        if len(faces) == 1:  # the one person enrolling is the judge's one track
            judge.update(frame.image, 0, faces[0], frame.index, frame.time)
        if judge.verdict(0) == SPOOF:
            return no(f"spoof: a print or screen held up to the camera ({judge.reason(0)})",
                      faces[0] if faces else None)
        if judge.verdict(0) == FAILED:
            return no(f"challenge failed ({judge.reason(0)})", faces[0] if faces else None)
    if frame.time - last_time < MIN_GAP_S:
        return no("too soon after the last face taken")
    faces = pipe.detect(frame.image) if faces is None else faces
    if not faces:
        return no("no face")
    if len(faces) > 1:
        return no(f"{len(faces)} faces in view (only the person enrolling may be)")
    face = faces[0]
    if min(face.width, face.height) < min_size:
        return no(f"face too small ({min(face.width, face.height):.0f} px < {min_size})", face)
    t = turn(face)
    if t is not None and t > MAX_TURN:
        return no(f"face turned away ({t:.2f} > {MAX_TURN})", face)
    sharp = box_sharpness(frame.image, face)
    if sharp < MIN_SHARPNESS:
        return no(f"blurred (sharpness {sharp:.0f} < {MIN_SHARPNESS:.0f})", face)
    if judge is not None and judge.verdict(0) != LIVE:
        return no(f"not yet judged live ({'' if judge.challenge else 'turn the head a little; '}{judge.reason(0)})",
                  face)
    vector = pipe.embed(frame.image, [face])[0].vector
    if taken:
        d = 1.0 - float(np.max(np.stack(taken) @ vector))
        if d < MIN_CHANGE:
            return no(f"too like a face already taken (distance {d:.3f} < {MIN_CHANGE})", face)
    taken.append(vector)
    return Verdict(frame.index, frame.time, True, "accepted", face)
