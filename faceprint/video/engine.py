"""Recognition on tracks rather than on frames.

A full detection runs every ``DETECT_EVERY`` frames to find newcomers; the frames between only
re-place each tracked face where its motion predicts it (MTCNN's output network on that box, well
under a millisecond a face), which is what lets a 2-core machine keep up with a camera. A face is embedded only
when its track is new, when the face is clearly better than any seen on that track (bigger, more
confident), and every ``refresh`` frames; everything in between reuses the track's name. Each
embedding's answer (a name, or unknown past the gallery's threshold) is a vote, and a track's name
changes only when another answer leads by a clear margin, so one bad frame never flips a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..draw import draw_faces
from ..gallery import Gallery
from ..pipeline import Pipeline, get_pipeline
from ..types import Face, Image
from .source import Source, VideoFrame
from .tracker import Tracker, Track

#: Frames between full detections (at 25 fps: 0.2 s, the longest a newcomer waits to be seen).
#: In between, each track's face is only re-placed where its motion predicts it (``Detector.refine``).
DETECT_EVERY = 5
#: Frames between re-embeddings of a track that is already named (at 25 fps: 0.6 s), and of a
#: young track (fewer than ``YOUNG`` embeddings), whose name should settle fast.
REFRESH, REFRESH_YOUNG, YOUNG = 15, 3, 4
#: A face counts as clearly better (and is embedded again) at this much more quality.
BETTER = 1.3
#: Votes the challenger needs over the current name before a track is renamed.
MARGIN = 2.0


@dataclass(frozen=True)
class TrackedFace:
    """One face on screen: its track id, where it is, and who the track is (None: unknown)."""

    track: int
    face: Face
    name: str | None
    distance: float | None

    def to_dict(self) -> dict:
        return {"track": self.track, "box": [round(float(v), 1) for v in self.face.box], "name": self.name,
                "distance": None if self.distance is None else round(float(self.distance), 4)}


@dataclass(frozen=True)
class Event:
    """``kind``: ``appear``, ``named`` (first decision, maybe unknown), ``renamed`` or ``leave``."""

    kind: str
    track: int
    name: str | None
    frame: int
    time: float

    def to_dict(self) -> dict:
        return {"event": self.kind, "track": self.track, "name": self.name, "frame": self.frame,
                "time": round(self.time, 3)}


@dataclass(frozen=True)
class FrameResult:
    index: int
    time: float
    image: Image
    faces: list[TrackedFace]
    events: list[Event]
    dropped: int  # live source frames skipped so far to keep up
    processed: bool  # False for frames skipped by ``every`` (faces are the last processed frame's)

    def annotated(self) -> Image:
        labels = [f"{f.name or 'unknown'} #{f.track}" for f in self.faces]
        return draw_faces(self.image, [f.face for f in self.faces], labels)


class Recognizer:
    """Detect, track and name faces frame by frame. ``gallery`` None: track only (every name unknown)."""

    def __init__(self, gallery: Gallery | None = None, *, pipeline: Pipeline | None = None,
                 tracker: Tracker | None = None, refresh: int = REFRESH, detect_every: int = DETECT_EVERY) -> None:
        self.gallery = gallery
        self.pipeline = pipeline or (gallery.pipeline if gallery is not None else get_pipeline())
        self.tracker = tracker or Tracker()
        self.refresh = refresh
        self.detect_every = detect_every
        self._full_at = -(10**9)  # frame of the last full detection
        self._last: list[TrackedFace] = []

    def _detect(self, frame: VideoFrame) -> list[Face]:
        """Between full detections, newcomers wait (at most ``detect_every`` frames) and tracked faces,
        visible or briefly lost, are looked for where their motion puts them."""
        if frame.index - self._full_at < self.detect_every:
            tracks = self.tracker.active
            if not tracks:
                return []
            faces = self.pipeline.detector.refine(frame.image, np.stack([t.predicted(frame.index) for t in tracks]))
            if faces is not None:
                return faces
        self._full_at = frame.index
        return self.pipeline.detect(frame.image)

    def process(self, frame: VideoFrame) -> tuple[list[TrackedFace], list[Event]]:
        faces = self._detect(frame)
        gone = self.tracker.update(faces, frame.index)
        events = [Event("leave", t.id, t.name, frame.index, frame.time) for t in gone]
        visible = [t for t in self.tracker.active if t.missed == 0]
        due = [t for t in visible if self._due(t, frame.index)]
        if due:
            events += self._recognise(frame, due)
        self._last = [TrackedFace(t.id, t.face, t.name, t.distance) for t in self.tracker.active if t.missed == 0]
        return self._last, events

    def close(self, frame: int, time: float) -> list[Event]:
        """``leave`` for every track still known when the source ends."""
        tracks = self.tracker.active + self.tracker.lost
        self.tracker.active, self.tracker.lost = [], []
        return [Event("leave", t.id, t.name, frame, time) for t in sorted(tracks, key=lambda t: t.id)]

    @property
    def last(self) -> list[TrackedFace]:
        return self._last

    def _due(self, track: Track, frame: int) -> bool:
        quality = _quality(track.face)
        every = REFRESH_YOUNG if track.embeddings < YOUNG else self.refresh
        if track.embedding is None or quality > track.best_quality * BETTER or frame - track.embedded_frame >= every:
            track.best_quality = max(track.best_quality, quality)
            return True
        return False

    def _recognise(self, frame: VideoFrame, tracks: list[Track]) -> list[Event]:
        vectors = np.stack([e.vector for e in self.pipeline.embed(frame.image, [t.face for t in tracks])])
        answers = (self.gallery.search(vectors) if self.gallery is not None and self.gallery.store.count_faces()
                   else [[] for _ in tracks])
        threshold = self.gallery.threshold if self.gallery is not None else 0.0
        events = []
        for track, vector, best in zip(tracks, vectors, answers):
            fresh = track.embedding is None
            track.add_embedding(vector)
            track.embedded_frame = frame.index
            if track.embeddings <= YOUNG:  # a young track may be a lost one come back: it takes that id
                back = self.tracker.reattach(track)
                if back is not None and not fresh:  # it was announced: it leaves, the old one is back
                    events.append(Event("leave", track.id, track.name, frame.index, frame.time))
                if back is not None or fresh:
                    events.append(Event("appear", (back or track).id, (back or track).name, frame.index, frame.time))
                track = back or track
            name, d = best[0] if best else (None, None)
            known = d is not None and d <= threshold
            track.distance = d
            # a close match counts more than a marginal one; unknown is one plain vote
            track.votes[name if known else None] += 1.0 + (threshold - d) / threshold if known else 1.0
            events += self._decide(track, frame)
        return events

    def _decide(self, track: Track, frame: VideoFrame) -> list[Event]:
        (leader, votes), = track.votes.most_common(1)
        if not track.decided:
            track.decided, track.name = True, leader
            return [Event("named", track.id, leader, frame.index, frame.time)]
        if leader != track.name and votes >= track.votes[track.name] + MARGIN:
            track.name = leader
            return [Event("renamed", track.id, leader, frame.index, frame.time)]
        return []


def _quality(face: Face) -> float:
    return min(face.width, face.height) * float(face.score)


class Watch:
    """Iterate over a source's frames with their tracked, named faces.

        for result in faceprint.video.watch("door.mp4", Gallery("people.db")):
            for face in result.faces:
                print(result.index, face.track, face.name)

    ``every``: run detection and recognition on every N-th frame only (the frames between carry
    the last answer). After the loop, ``final_events`` holds a ``leave`` per remaining track.
    """

    def __init__(self, source: str | int | Path | Source, gallery: Gallery | None = None, *, every: int = 1,
                 recognizer: Recognizer | None = None, live: bool | None = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.source = source if isinstance(source, Source) else Source(source, live=live)
        self.recognizer = recognizer or Recognizer(gallery)
        self.every = every
        self.frames = 0
        self.final_events: list[Event] = []

    def __iter__(self) -> Iterator[FrameResult]:
        last = None
        for frame in self.source.frames():
            process = frame.index % self.every == 0 or self.source.live
            faces, events = self.recognizer.process(frame) if process else (self.recognizer.last, [])
            self.frames += 1
            last = frame
            yield FrameResult(frame.index, frame.time, frame.image, faces, events, self.source.dropped, process)
        if last is not None:
            self.final_events = self.recognizer.close(last.index, last.time)


def watch(source: str | int | Path, gallery: Gallery | None = None, *, every: int = 1) -> Watch:
    """Frames of ``source`` (file, camera index, stream URL) with tracked faces named from ``gallery``."""
    return Watch(source, gallery, every=every)
