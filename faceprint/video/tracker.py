"""Keep one id per person across frames: box overlap and motion first, the face's embedding to
re-attach a track after an occlusion.

Each frame, the tracks' boxes are moved by their recent velocity and matched to the new detections
by overlap (an optimal assignment, not greedy, so two people crossing keep their ids). A track
that misses detections is kept for ``max_missed`` frames (a blink, a hand, a bad frame), then set
aside as lost; a new track whose first embedding is close to a lost track's takes that track's id
back (``reattach``), so walking behind a pillar does not make a new person.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..boxes import overlap
from ..types import Face

Box = tuple[float, float, float, float]
_COAST = 5  # frames a missed track's box keeps moving at its last velocity


@dataclass
class Track:
    id: int
    face: Face
    first_frame: int
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # of the box's centre, px/frame
    missed: int = 0
    hits: int = 1
    votes: Counter = field(default_factory=Counter)  # name (None: unknown) -> recent, quality-weighted evidence
    name: str | None = None
    distance: float | None = None  # of the latest embedding's nearest gallery face
    embedding: np.ndarray | None = None  # running mean of the track's embeddings, unit length
    anchor: np.ndarray | None = None  # the same over good-quality faces only: who this track is
    embedded_frame: int = -(10**9)
    embeddings: int = 0  # how many embeddings went into ``embedding``
    embedded_quality: float = 0.0  # the best face quality embedded since the track was last named or split
    checked_quality: float = 0.0  # of the face last embedded
    quality: float = 0.0  # of the current face
    look: np.ndarray | None = None  # the current face's appearance (``looks.look``)
    verified_look: np.ndarray | None = None  # its appearance when last embedded
    changed: bool = False  # the face under the track no longer looks like when it was last embedded
    doubt: np.ndarray | None = None  # a good face's embedding that did not match the track: its name is hidden
    hidden: bool = False  # the last good face was past the threshold from the track's name: it is not shown
    lost_frame: int | None = None

    @property
    def box(self) -> Box:
        return self.face.box

    def predicted(self, frame: int) -> np.ndarray:
        # The centre moves, the size stays: a box half hidden by an occluder shrinks from one side,
        # and extrapolating its corners would shrink it to nothing. Motion carries a box only a few
        # frames: past that, a guess is worse than where it was last seen.
        shift = self.velocity * min(frame - self.last_frame, _COAST)
        return np.asarray(self.box) + np.concatenate([shift, shift])

    def add_embedding(self, vector: np.ndarray, good: bool = False) -> None:
        self.embedding = _blend(self.embedding, vector)
        if good:
            self.anchor = _blend(self.anchor, vector)
        self.embeddings += 1


def _blend(mean: np.ndarray | None, vector: np.ndarray) -> np.ndarray:
    mean = vector if mean is None else mean * 0.7 + vector * 0.3
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _centre(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


class Tracker:
    """``update`` each frame with its detections; read ``active`` for the current tracks.

    ``min_iou``: overlap needed to continue a track; ``max_missed``: frames a track survives
    without a detection; ``keep_lost``: frames a lost track can still be re-attached;
    ``max_distance``: cosine distance under which a new face's embedding re-attaches a lost track.
    """

    def __init__(self, *, min_iou: float = 0.2, max_missed: int = 25, keep_lost: int = 150,
                 max_distance: float = 0.45) -> None:
        self.min_iou, self.max_missed, self.keep_lost, self.max_distance = min_iou, max_missed, keep_lost, max_distance
        self.active: list[Track] = []
        self.lost: list[Track] = []
        self._next_id = 1

    def update(self, faces: list[Face], frame: int) -> list[Track]:
        """Match ``faces`` to tracks (the rest start new ones); returns the tracks that just left for good."""
        from scipy.optimize import linear_sum_assignment  # here: importing it takes 0.6 s, which the
        # server and the commands that never track (or fail before they start) should not pay

        matched_tracks, matched_faces = set(), set()
        if self.active and faces:
            boxes = np.array([f.box for f in faces], np.float64)
            predicted = np.stack([t.predicted(frame) for t in self.active])
            iou = overlap(predicted, boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    self._continue(self.active[r], faces[c], frame)
                    matched_tracks.add(r)
                    matched_faces.add(c)
            # A face coming back from behind something rarely overlaps the box its track was last
            # predicted at, but it is near: a waiting track takes a leftover face within one face width.
            waiting = [r for r, t in enumerate(self.active) if r not in matched_tracks and t.missed > 0]
            left = [c for c in range(len(faces)) if c not in matched_faces]
            if waiting and left:
                width = np.maximum(predicted[waiting, 2] - predicted[waiting, 0], 1.0)
                reach = np.linalg.norm(_centre(predicted[waiting])[:, None] - _centre(boxes[left])[None], axis=2)
                reach /= width[:, None]
                rows, cols = linear_sum_assignment(reach)
                for r, c in zip(rows, cols):
                    if reach[r, c] <= 1.0:
                        self._continue(self.active[waiting[r]], faces[left[c]], frame)
                        matched_tracks.add(waiting[r])
                        matched_faces.add(left[c])
        for i, track in enumerate(self.active):
            if i not in matched_tracks:
                track.missed += 1
        still = [t for t in self.active if t.missed <= self.max_missed]
        for t in self.active:
            if t.missed > self.max_missed:
                t.lost_frame = frame
                self.lost.append(t)
        new = [Track(self._take_id(), f, frame, frame) for i, f in enumerate(faces) if i not in matched_faces]
        self.active = still + new
        gone = [t for t in self.lost if frame - t.lost_frame > self.keep_lost]
        self.lost = [t for t in self.lost if frame - t.lost_frame <= self.keep_lost]
        return gone

    def reattach(self, track: Track) -> Track | None:
        """If ``track`` (young, just embedded) is a track that went out of sight, merge it into that
        one: a lost track, or one still waiting whose predicted box no longer overlapped the face."""
        if track.embedding is None:
            return None
        candidates = [t for t in self.lost + self.active if t.embedding is not None and t.missed > 0]
        if not candidates:
            return None
        d = 1.0 - np.array([float(t.embedding @ track.embedding) for t in candidates])
        best = int(np.argmin(d))
        if d[best] > self.max_distance:
            return None
        old = candidates[best]
        if old in self.lost:
            self.lost.remove(old)
        else:
            self.active.remove(old)
        old.face, old.last_frame, old.missed, old.lost_frame = track.face, track.last_frame, 0, None
        old.velocity = np.zeros(2)
        old.hits += track.hits
        old.votes.update(track.votes)
        old.embedded_frame, old.quality, old.look = track.embedded_frame, track.quality, track.look
        old.verified_look = track.verified_look
        old.add_embedding(track.embedding, good=track.anchor is not None)
        self.active[self.active.index(track)] = old
        return old

    def clear(self) -> list[Track]:
        """End every track, active or lost (a shot change: nobody on screen is who was there); returns them."""
        tracks = sorted(self.active + self.lost, key=lambda t: t.id)
        self.active, self.lost = [], []
        return tracks

    def _continue(self, track: Track, face: Face, frame: int) -> None:
        step = max(1, frame - track.last_frame)
        velocity = (_centre(np.asarray(face.box)) - _centre(np.asarray(track.box))) / step
        track.velocity = 0.5 * track.velocity + 0.5 * velocity
        track.face, track.last_frame, track.missed = face, frame, 0
        track.hits += 1

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1
