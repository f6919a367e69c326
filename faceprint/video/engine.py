"""Recognition on tracks rather than on frames, with every name checked rather than inherited.

A search for newcomers runs every few frames (``DETECT_EVERY``, ``LARGE_EVERY``); on every frame
each tracked face is re-placed where its motion predicts it (MTCNN's output network on that box, well
under a millisecond a face), which is what lets a 2-core machine keep up with a camera.

An embedding costs far more than that, so cheap per-frame measures (``looks``) decide when one is
due: a new track is embedded at once; a face that no longer looks as it did when last embedded
(a different person where the prediction pointed, a new pose, something covering it, even when
it came on gradually) is embedded on that frame; an unnamed
face is embedded again when it gets clearly better (turns to the camera, comes closer), on the next
frame while its last answer was marginal, and every few frames (a good one settled as nobody
enrolled too: they may turn into view); a named one every ``refresh`` frames, and on the next good
frame after a look past the threshold. A whole-frame change that is a cut ends every track, so no
name crosses a shot change.

Each embedding is weighed by the face's quality (size, detector score, turn, sharpness) and the
decision is asymmetric: a good face far below the threshold names the track on that frame; a good
face of someone else (far from the track's own faces and from the named person's gallery faces)
splits the track or drops the name at once; a good face past the threshold hides the name until a
good face matches again; only marginal distances wait for a second look to give or drop a name.
Evidence decays with every embedding, so a long stretch of profile frames cannot out-vote a
clear frontal one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import logging

import numpy as np

from ..analysis.quality import video_quality
from ..boxes import overlap
from ..draw import draw_faces
from ..gallery import Gallery, named_face
from ..pipeline import Pipeline, get_pipeline
from ..types import Face, Image
from .challenge import Challenge
from .liveness import LivenessJudge
from .looks import GOOD, MAYBE_CUT, SURE_CUT, ShotChange, look, same_look
from .source import Source, VideoFrame
from .tracker import Tracker, Track

_log = logging.getLogger("faceprint.video")

#: Frames between searches for newcomers (at 25 fps: 0.12 s). Up to ``FULL_AREA`` each search is a
#: step of a full detection spread over several frames (``Detector.sweep``: for BlazeFace, the
#: whole-frame pass and a few of its tiles), so faces large for the frame are seen within this many
#: frames and small ones within a few steps; a full detection every 3rd frame cost most of a 2-core
#: machine's frame budget at 640x480. Tracked faces are re-placed on every frame where their motion
#: predicts them (``Detector.refine``).
DETECT_EVERY = 3
#: Above this frame area (1280x720) a search is a full detection every ``LARGE_EVERY`` frames (sweep
#: steps would cost more there), which adds only faces no track covers: a tracked face keeps the box
#: ``refine`` gave it, steadier on small faces than a detection's. A newcomer is found within 4
#: frames, so one clear look names it within 5 (the issue 11 goal for time to name).
FULL_AREA, LARGE_EVERY = 1280 * 720, 5
#: Frames between re-embeddings of a track; of a good face not yet named nor settled as nobody
#: enrolled (it may be named on the next look); and of a good face settled as nobody enrolled, often
#: enough that one who turns into clear view is named within 5 frames (the issue 11 goal for time to
#: name), a second look on a marginal answer included, without a look change having to say so.
REFRESH, REFRESH_UNNAMED, REFRESH_NOBODY = 10, 2, 4
#: An unnamed face is embedded again as soon as its quality beats the best embedded by this much.
BETTER = 0.15
#: A good face at most this fraction of the threshold away names its track on that frame.
STRONG = 0.8
#: A good face of the named person's this far past the threshold drops the name on that frame.
DROP = 1.15
#: Evidence kept from one embedding to the next; a name needs this much evidence, and this lead over
#: the current one, to win on marginal distances (two good, marginal faces in a row).
DECAY, NEED, LEAD = 0.5, 1.5, 0.5
#: Nearest gallery faces read per embedding, to find the named person's distance among them.
_NEAREST = 8


@dataclass(frozen=True)
class TrackedFace:
    """One face on screen: its track id, where it is, and who the track is (None: unknown);
    ``liveness`` is the track's verdict (``video.liveness``) when liveness is judged, else None;
    ``prompt`` what a liveness challenge asks of the person now (None: nothing)."""

    track: int
    face: Face
    name: str | None
    distance: float | None
    liveness: str | None = None
    prompt: str | None = None

    def to_dict(self) -> dict:
        out = {"track": self.track, **named_face(self.face, self.name, self.distance, digits=4)}
        extra = {"liveness": self.liveness, "prompt": self.prompt}
        return {**out, **{k: v for k, v in extra.items() if v is not None}}


@dataclass(frozen=True)
class Event:
    """A change to a track; ``name`` is the track's name after it (for ``leave``: its last name).

    ``appear`` (a new track, not yet named: name null),
    ``named`` (an unnamed track is given a name), ``renamed`` (a named track turns out to be another
    enrolled person), ``unnamed`` (a named track's face no longer matches that person: name null),
    ``leave`` (the track ended: out of sight for good, a shot change, or the source ended). A track
    that went out of sight and comes back keeps its id and has no events for the gap. When liveness
    is judged, ``liveness`` (the track's verdict is reached or changes: ``liveness`` says which,
    ``reason`` why).
    """

    kind: str
    track: int
    name: str | None
    frame: int
    time: float
    liveness: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        out = {"event": self.kind, "track": self.track, "name": self.name, "frame": self.frame,
               "time": round(self.time, 3)}
        return out if self.liveness is None else {**out, "liveness": self.liveness, "reason": self.reason}


@dataclass(frozen=True)
class FrameResult:
    index: int
    time: float
    image: Image
    faces: list[TrackedFace]
    events: list[Event]
    dropped: int  # live source frames skipped so far to keep up
    processed: bool  # False for frames skipped by ``every`` (faces are the last processed frame's)

    def annotated(self, captions: dict[int, str] | None = None) -> Image:
        """The frame with each face's box, name, track id and liveness verdict (and its caption by
        track id, if given)."""
        captions = captions or {}
        labels = [" ".join(filter(None, (f"{f.name or 'unknown'} #{f.track}", f.liveness,
                                         f.prompt and f"- {f.prompt}!", captions.get(f.track))))
                  for f in self.faces]
        return draw_faces(self.image, [f.face for f in self.faces], labels)


class Recognizer:
    """Detect, track and name faces frame by frame. ``gallery`` None: track only (every name unknown).
    ``liveness``: a judge that gives each track a live/spoof/undecided verdict (None: no cost, no verdicts)."""

    def __init__(self, gallery: Gallery | None = None, *, pipeline: Pipeline | None = None,
                 tracker: Tracker | None = None, refresh: int = REFRESH, detect_every: int = DETECT_EVERY,
                 liveness: LivenessJudge | None = None) -> None:
        self.gallery = gallery
        self.pipeline = pipeline or (gallery.pipeline if gallery is not None else get_pipeline())
        self.tracker = tracker or Tracker()
        self.refresh = refresh
        self.detect_every = detect_every
        self.liveness = liveness
        self._shots = ShotChange()
        self._search_at = -(10**9)  # frame of the last search for newcomers
        self._sweeps = 0
        self._last: list[TrackedFace] = []

    def process(self, frame: VideoFrame) -> tuple[list[TrackedFace], list[Event]]:
        events = []
        cut = self._is_cut(frame)
        if cut:
            events += [Event("leave", t.id, t.name, frame.index, frame.time) for t in self.tracker.clear()]
        faces = self._detect(frame, full=cut)
        gone = self.tracker.update(faces, frame.index)
        events += [Event("leave", t.id, t.name, frame.index, frame.time) for t in gone]
        visible = [t for t in self.tracker.active if t.missed == 0]
        for t in visible:
            t.look = look(frame.image, t.box)
            t.changed = not same_look(t.verified_look, t.look)
            t.quality = video_quality(frame.image, t.face)
        due = [t for t in visible if self._due(t, frame.index)]
        if due:
            events += self._recognise(frame, due)
        visible = [t for t in self.tracker.active if t.missed == 0]  # after re-attachments
        verdicts = self._judge_liveness(frame, visible, events) if self.liveness is not None else {}
        prompts = {t.id: self.liveness.prompt(t.id) for t in visible} if self.liveness is not None else {}
        self._last = [TrackedFace(t.id, t.face, None if t.doubt is not None or t.hidden else t.name, t.distance,
                                  verdicts.get(t.id), prompts.get(t.id)) for t in visible]
        return self._last, events

    def close(self, frame: int, time: float) -> list[Event]:
        """``leave`` for every track still known when the source ends."""
        return [Event("leave", t.id, t.name, frame, time) for t in self.tracker.clear()]

    @property
    def last(self) -> list[TrackedFace]:
        return self._last

    def _judge_liveness(self, frame: VideoFrame, visible: list[Track], events: list[Event]) -> dict[int, str]:
        """Each visible track's liveness verdict after this frame; a ``liveness`` event where one changed."""
        judge = self.liveness
        judge.forget({t.id for t in self.tracker.active + self.tracker.lost})
        verdicts = {}
        for t in visible:
            before = judge.verdict(t.id)
            verdicts[t.id] = judge.update(frame.image, t.id, t.face, frame.index, frame.time)
            if verdicts[t.id] != before:
                reason = judge.reason(t.id)
                _log.info("frame %d: track %d (%s) is %s: %s", frame.index, t.id, t.name, verdicts[t.id], reason)
                events.append(Event("liveness", t.id, t.name, frame.index, frame.time, verdicts[t.id], reason))
        return verdicts

    def _is_cut(self, frame: VideoFrame) -> bool:
        """A shot change: the whole frame changed a lot, or enough to be one and the faces under the
        tracks (where they were) no longer look like the tracked ones."""
        change = self._shots(frame.image)
        if change >= SURE_CUT:
            return True
        tracked = [t for t in self.tracker.active if t.missed == 0 and t.look is not None]
        if change < MAYBE_CUT or not tracked:
            return False
        kept = sum(same_look(t.look, look(frame.image, t.predicted(frame.index))) for t in tracked)
        return kept * 2 < len(tracked)

    def _detect(self, frame: VideoFrame, full: bool) -> list[Face]:
        """Tracked faces, visible or briefly lost, are looked for where their motion puts them; every
        few frames newcomers are searched for too (see ``DETECT_EVERY``). After a cut, with nothing
        tracked, or for a detector with no ``refine``, a full detection runs instead."""
        area = frame.image.shape[0] * frame.image.shape[1]
        large = area > FULL_AREA
        every = max(self.detect_every, LARGE_EVERY) if large else self.detect_every
        due = frame.index - self._search_at >= every
        tracks = self.tracker.active
        refined = None
        if tracks and not full:
            refined = self.pipeline.detector.refine(frame.image, np.stack([t.predicted(frame.index) for t in tracks]))
        if refined is not None and not due:
            return refined
        if refined is not None and not large:
            self._search_at, self._sweeps = frame.index, self._sweeps + 1
            # a face the sweep found is fresher than where a track's prediction put it
            found = self.pipeline.detector.sweep(frame.image, self._sweeps)
            return found + _uncovered(refined, found)
        if not (full or due or tracks):
            return []
        self._search_at = frame.index
        found = self.pipeline.detect(frame.image)
        return found if refined is None else refined + _uncovered(found, refined)

    def _due(self, track: Track, frame: int) -> bool:
        """Whether the face under ``track`` is worth an embedding on this frame (see the module docstring)."""
        since = frame - track.embedded_frame
        if track.embedding is None or track.changed or track.doubt is not None:
            return True
        if track.quality >= GOOD and track.checked_quality < GOOD:
            return True  # a name last checked on a poor face is checked again on the first good one
        threshold = self.gallery.threshold if self.gallery is not None else 0.0
        good, d = track.quality >= GOOD, track.distance
        if track.name is not None:
            # quick to drop: a name whose last answer went past the threshold is checked on the next good face
            return since >= self.refresh or (good and d is not None and d > threshold)
        if track.quality > track.embedded_quality + BETTER:
            return True
        if good and d is not None and d <= DROP * threshold:
            return True  # a marginal answer on a good face (either side of the threshold): look again at once
        # A good face not yet settled as nobody enrolled is looked at often: a name may be a frame away
        # as it turns; one settled as nobody, less often. A poor one waits for a better face (above)
        # or the refresh.
        if not good or self.gallery is None:
            return since >= self.refresh
        return since >= (REFRESH_NOBODY if track.votes[None] >= NEED else REFRESH_UNNAMED)

    def _recognise(self, frame: VideoFrame, tracks: list[Track]) -> list[Event]:
        vectors = np.stack([e.vector for e in self.pipeline.embed(frame.image, [t.face for t in tracks])])
        count = self.gallery.store.count_faces() if self.gallery is not None else 0
        answers = self.gallery.search(vectors, k=min(_NEAREST, count)) if count else [[] for _ in tracks]
        threshold = self.gallery.threshold if self.gallery is not None else 0.0
        same_person = self.pipeline.embedder.threshold  # verification: are two faces one person
        events = []
        for track, vector, nearest in zip(tracks, vectors, answers):
            named = _distance_to(nearest, track.name)
            apart = 1.0 - float(track.anchor @ vector) if track.anchor is not None else 0.0
            other = apart > same_person and (track.name is None or named > threshold)
            if track.quality >= GOOD and (other or (track.name is not None and named > DROP * threshold)):
                # A good face that is not who the track is. Once, it may be an occluder sweeping over
                # the face: a name is hidden and the face looked at again on the next frame. Twice
                # and both times the same face, it is so: the name goes, and the track starts over
                # as whoever is under it now (the prediction may have landed on another face). An
                # unnamed track has no name to protect: it starts over at once, so a clear face
                # can name it on this frame.
                _log.debug("frame %d: track %d (%s) does not match: %.3f from its faces, %.3f from its name's",
                           frame.index, track.id, track.name, apart, named)
                if track.name is not None and (track.doubt is None or 1.0 - float(track.doubt @ vector) > same_person):
                    track.doubt, track.changed, track.checked_quality = vector, False, track.quality
                    track.verified_look = track.look
                    continue
                events += self._rename(track, None, frame)
                if other:
                    track.anchor = None
                    track.votes.clear()  # the evidence was about the face that was there before
            track.doubt = None
            events += self._embedded(track, vector, nearest, threshold, frame)
        return events

    def _embedded(self, track: Track, vector: np.ndarray, nearest: list[tuple[str, float]], threshold: float,
                  frame: VideoFrame) -> list[Event]:
        """Add an embedding that belongs to ``track`` (or to a lost track it turns out to be) and decide."""
        events = []
        fresh = track.embedding is None
        track.add_embedding(vector, good=track.quality >= GOOD)
        track.embedded_frame, track.changed, track.verified_look = frame.index, False, track.look
        track.embedded_quality = max(track.embedded_quality, track.quality)
        track.checked_quality = track.quality
        if track.embeddings <= 2:  # a young track may be a lost one come back: it takes that id
            back = self.tracker.reattach(track)
            if back is None and fresh:
                events.append(Event("appear", track.id, None, frame.index, frame.time))
            elif back is not None and not fresh:  # it was announced: it leaves; the old one never left
                events.append(Event("leave", track.id, track.name, frame.index, frame.time))
            track = back or track
        if track.quality >= GOOD:  # a good face past the threshold from the name: hidden until one within
            track.hidden = track.name is not None and _distance_to(nearest, track.name) > threshold
        return events + self._decide(track, nearest[0] if nearest else (None, None), threshold, frame)

    def _decide(self, track: Track, best: tuple[str | None, float | None], threshold: float,
                frame: VideoFrame) -> list[Event]:
        """Weigh one embedding's answer into the track's name (see the module docstring)."""
        name, d = best
        track.distance = d
        known = d is not None and d <= threshold
        good = track.quality >= GOOD
        for k in track.votes:
            track.votes[k] *= DECAY
        weight = max(track.quality, 0.05)
        if known:
            track.votes[name] += weight * (1.0 + (threshold - d) / threshold)
        elif d is not None:
            track.votes[None] += weight * min(1.0 + (d - threshold) / threshold, 2.0)
        if good and known and d <= STRONG * threshold:
            return self._rename(track, name, frame)
        if not track.votes:  # no gallery, or an empty one: nothing to weigh, the face stays unnamed
            return []
        leader, votes = max(track.votes.items(), key=lambda kv: kv[1])
        if leader != track.name and votes >= NEED and votes >= track.votes[track.name] + LEAD:
            return self._rename(track, leader, frame)
        return []

    @staticmethod
    def _rename(track: Track, name: str | None, frame: VideoFrame) -> list[Event]:
        if name == track.name:
            return []
        kind = "named" if track.name is None else "unnamed" if name is None else "renamed"
        track.name, track.hidden = name, False
        if name is None:
            track.votes.clear()
            track.embedded_quality = 0.0  # start over: the next better face is looked at again
        return [Event(kind, track.id, name, frame.index, frame.time)]


def _uncovered(faces: list[Face], others: list[Face]) -> list[Face]:
    """The faces of ``faces`` that none of ``others`` overlaps."""
    if not faces or not others:
        return faces
    covered = overlap(np.array([f.box for f in faces]), np.array([f.box for f in others])).max(axis=1) >= 0.3
    return [f for f, c in zip(faces, covered) if not c]


def _distance_to(nearest: list[tuple[str, float]], name: str | None) -> float:
    """Distance to ``name``'s nearest gallery face among ``nearest`` (at least the farthest read, if
    it is not there; infinite for no name or no gallery)."""
    if name is None or not nearest:
        return float("inf")
    return next((d for n, d in nearest if n == name), nearest[-1][1])


class Watch:
    """Iterate over a source's frames with their tracked, named faces.

        for result in faceprint.video.watch("door.mp4", Gallery("people.db")):
            for face in result.faces:
                print(result.index, face.track, face.name)

    ``every``: run detection and recognition on every N-th frame only (the frames between carry
    the last answer). ``liveness``: judge each track live, spoof or undecided (``video.liveness``);
    ``challenge``: with liveness, what each person must do to be live (``video.challenge``).
    After the loop, ``final_events`` holds a ``leave`` per remaining track.
    """

    def __init__(self, source: str | int | Path | Source, gallery: Gallery | None = None, *, every: int = 1,
                 recognizer: Recognizer | None = None, live: bool | None = None, liveness: bool = False,
                 challenge: Challenge | None = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        if recognizer is not None and liveness:
            raise ValueError("liveness applies to the Recognizer made here: give yours a LivenessJudge instead")
        if challenge is not None and not liveness:
            raise ValueError("a challenge is part of liveness: pass liveness=True with it")
        self.source = source if isinstance(source, Source) else Source(source, live=live)
        judge = LivenessJudge(challenge=challenge) if liveness else None
        self.recognizer = recognizer or Recognizer(gallery, liveness=judge)
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


def watch(source: str | int | Path, gallery: Gallery | None = None, *, every: int = 1,
          liveness: bool = False, challenge: Challenge | None = None) -> Watch:
    """Frames of ``source`` (file, camera index, stream URL) with tracked faces named from ``gallery``."""
    return Watch(source, gallery, every=every, liveness=liveness, challenge=challenge)
