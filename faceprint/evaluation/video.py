"""Live-video scoring: per-frame identity accuracy and identity switches of a watched clip against
the ground truth that ``faceprint.testing.synth`` writes beside it, and, for any clip (no truth
needed), ``watch`` against frame-by-frame identification of the same clip (``video_report``, what
``faceprint eval video`` prints)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceprintError


@dataclass(frozen=True)
class VideoScore:
    """How a watched clip compares with its ground truth (``faceprint.testing.synth`` writes one).

    ``accuracy``: of the face-frames in view and not occluded, the share whose face was tracked and
    named right (an enrolled person's name, or unknown for a stranger); a missed face counts as
    wrong. ``switches_per_track``: times a true person's face changed track id, averaged over people.
    ``renames_per_track``: name changes after the first, averaged over the tracker's tracks.
    """

    face_frames: int
    correct: int
    missed: int
    accuracy: float
    switches_per_track: float
    renames_per_track: float
    tracks: int
    people: int

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def truth_path(video: Path | str) -> Path:
    """Where the per-frame truth of a generated clip lies: beside it, as ``.truth.jsonl``."""
    return Path(video).with_suffix(".truth.jsonl")


def load_truth(path: Path | str) -> list[dict]:
    """The per-frame truth records of a clip (pass the ``.truth.jsonl`` path or the video's)."""
    path = Path(path)
    path = path if path.name.endswith(".truth.jsonl") else truth_path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pair_by_overlap(a: list[dict], b: list[dict], min_iou: float) -> dict[int, int]:
    """Index in ``b`` of the face at the same place as each face of ``a`` (one to one, by box overlap)."""
    from scipy.optimize import linear_sum_assignment

    from ..boxes import overlap

    if not a or not b:
        return {}
    iou = overlap([f["box"] for f in a], [f["box"] for f in b])
    rows, cols = linear_sum_assignment(-iou)
    return {int(r): int(c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou}


def video_score(truth: list[dict], frames: list[list[dict]], min_iou: float = 0.3) -> VideoScore:
    """``truth``: the ``.truth.jsonl`` lines; ``frames[i]``: frame i's tracked faces as
    ``TrackedFace.to_dict()`` (``track``, ``box``, ``name``)."""
    face_frames = correct = missed = 0
    track_of: dict[int, list[int]] = {}  # true person -> track ids it was matched to, frame by frame
    names_of: dict[int, list[str | None]] = {}  # track id -> its name, frame by frame
    for t, found in zip(truth, frames):
        for f in found:
            names_of.setdefault(f["track"], []).append(f["name"])
        faces = [f for f in t["faces"] if not f["occluded"]]
        if not faces:
            continue
        face_frames += len(faces)
        hit = pair_by_overlap(faces, found, min_iou)
        missed += len(faces) - len(hit)
        for r, c in hit.items():
            correct += found[c]["name"] == faces[r]["name"]
            track_of.setdefault(faces[r]["track"], []).append(found[c]["track"])
    switches = [sum(a != b for a, b in zip(ids, ids[1:])) for ids in track_of.values()]
    renames = [sum(a != b for a, b in zip(n, n[1:])) for n in names_of.values()]
    return VideoScore(face_frames, correct, missed, correct / face_frames if face_frames else 0.0,
                      float(np.mean(switches)) if switches else 0.0, float(np.mean(renames)) if renames else 0.0,
                      len(names_of), len(track_of))


# -- watch against frame-by-frame identification (no truth needed) ------------------------------
#: A clear match (time to name counts from the first one): this fraction of the threshold or less.
CLEAR = 0.8


def identify_frames(video: Path | str, gallery) -> tuple[list[list[dict]], float]:
    """Frame-by-frame identification of every frame of ``video`` (``Gallery.identify`` on each, with
    each face's quality): the reference ``watch`` is scored against when there is no truth file.

    Returns per frame a list of ``{"box", "name", "nearest", "distance", "quality"}`` (``name``
    within the threshold, else null; ``nearest`` whatever the distance), and the threshold used."""
    from ..analysis.quality import video_quality
    from ..video.source import Source

    threshold = gallery.threshold
    frames = []
    for frame in Source(video, live=False).frames():
        embeddings = gallery.pipeline.embed(frame.image)
        count = gallery.store.count_faces()
        found = (gallery.search(np.stack([e.vector for e in embeddings])) if embeddings and count
                 else [[] for _ in embeddings])
        faces = []
        for e, best in zip(embeddings, found):
            nearest, d = best[0] if best else (None, None)
            faces.append({"box": [float(v) for v in e.face.box], "nearest": nearest, "distance": d,
                          "name": nearest if d is not None and d <= threshold else None,
                          "quality": video_quality(frame.image, e.face)})
        frames.append(faces)
    return frames, threshold


def video_against_reference(reference: list[list[dict]], frames: list[list[dict]], threshold: float,
                            min_iou: float = 0.3) -> dict:
    """``watch`` (``frames[i]``: frame i's ``TrackedFace.to_dict()``) against frame-by-frame
    identification (``identify_frames``), with no ground truth needed.

    * ``recall``: of the face-frames frame-by-frame names, the share ``watch`` names the same.
    * ``contradictions``: face-frames where ``watch`` shows a name while frame-by-frame, on a
      good-quality face (``looks.GOOD``), confidently says otherwise: another name, or nobody
      enrolled at more than ``engine.DROP`` x the threshold. Over all face-frames frame-by-frame found.
    * ``carried``: names ``watch`` shows where frame-by-frame cannot judge (a poor face, a marginal
      distance, or no face found there): tracking's gain, reported apart, neither right nor wrong.
    * ``agreement``: of the face-frames frame-by-frame judges confidently (a good face, named or
      clearly nobody), the share where ``watch`` gives the same answer (a face it misses disagrees).
    * ``time_to_name``: each time frame-by-frame clearly matches a person (a good face at most
      ``CLEAR`` x the threshold away) whose name ``watch`` is not showing, frames until it does (a
      person named by their first clear frame counts once, as 0). A face ``watch`` has not found yet
      counts too: a newcomer waits from the first clear frame, not from when a track took it up. (A
      name shown on someone else is a contradiction, counted above.)
    * ``tracks_per_person``: per name frame-by-frame gives, how many ``watch`` tracks its face-frames
      fell on (1: one id per person).
    * ``disagreements``: the face-frames behind the contradictions (``kind`` "contradiction") and
      the recall's misses (``kind`` "missed": frame-by-frame names the face, ``watch`` does not show
      that name; another name shown there is listed once, as a contradiction), each with both
      answers, so they can be looked at frame by frame.
    """
    from ..video.engine import DROP
    from ..video.looks import GOOD

    face_frames = named = same = contradicted = carried = judged = agreed = 0
    waiting: dict[str, int] = {}  # name -> first frame of a clear match of that person not yet named so
    delays: list[int] = []
    ever_clear: set[str] = set()
    tracks_of: dict[str, set[int]] = {}
    disagreements: list[dict] = []
    for i, (ref, found) in enumerate(zip(reference, frames)):
        pairs = pair_by_overlap(ref, found, min_iou)
        # the names watch shows, and the people frame-by-frame clearly matches
        shown = {f["name"] for f in found if f["name"] is not None}
        clear = {face["name"] for face in ref if face["quality"] >= GOOD and face["name"] is not None
                 and face["distance"] <= CLEAR * threshold}
        delays += [i - waiting.pop(n) for n in shown & waiting.keys()]
        for n in clear:
            if n not in shown:
                waiting.setdefault(n, i)
            elif n not in ever_clear:  # (a wait just ended was clear before: it is in ever_clear)
                delays.append(0)  # named by the first frame that clearly matches them
        ever_clear |= clear
        for r, face in enumerate(ref):
            face_frames += 1
            w = found[pairs[r]] if r in pairs else None
            good = face["quality"] >= GOOD
            far = face["distance"] is None or face["distance"] > DROP * threshold
            named += face["name"] is not None
            hit = w is not None and face["name"] is not None and w["name"] == face["name"]
            same += hit
            kind = None
            if w is not None and w["name"] is not None and face["name"] != w["name"]:
                if good and (face["name"] is not None or far):
                    contradicted += 1
                    kind = "contradiction"
                elif face["name"] is None:
                    carried += 1
            if face["name"] is not None and not hit:
                kind = kind or "missed"
            if kind is not None:
                disagreements.append({"frame": i, "kind": kind, "reference": _rounded(face),
                                      "watch": None if w is None else {k: w.get(k) for k in ("track", "box", "name",
                                                                                             "distance")}})
            if good and (face["name"] is not None or far):
                judged += 1
                agreed += w is not None and w["name"] == face["name"]
            if w is not None and good and face["name"] is not None:
                tracks_of.setdefault(face["name"], set()).add(w["track"])
        # a face watch names where frame-by-frame found none: carried too
        carried += sum(1 for c, f in enumerate(found) if f["name"] is not None and c not in pairs.values())
    never = len(waiting)
    return {
        "frames": len(reference), "face_frames": face_frames, "threshold": threshold,
        "named_by_reference": named,
        "recall": round(same / named, 4) if named else None,
        "contradictions": contradicted, "contradiction_rate": round(contradicted / face_frames, 4) if face_frames else 0.0,
        "carried": carried, "carried_rate": round(carried / face_frames, 4) if face_frames else 0.0,
        "judged": judged, "agreement": round(agreed / judged, 4) if judged else None,
        "time_to_name": _delays(delays, never),
        "tracks_per_person": {n: len(t) for n, t in sorted(tracks_of.items())},
        "disagreements": disagreements,
    }


def _rounded(face: dict) -> dict:
    """A frame-by-frame answer as plain JSON numbers."""
    d = face["distance"]
    return {"box": [round(float(v), 1) for v in face["box"]], "name": face["name"], "nearest": face["nearest"],
            "distance": None if d is None else round(float(d), 4), "quality": round(float(face["quality"]), 3)}


def _delays(delays: list[int], never: int) -> dict:
    """Median, 95th percentile and worst of frame delays (and each, for pooling), with how many never came."""
    d = np.array(delays, float)
    return {"stretches": len(delays) + never, "never": never, "delays": sorted(delays),
            "median": float(np.median(d)) if len(d) else None,
            "p95": float(np.percentile(d, 95)) if len(d) else None, "max": float(d.max()) if len(d) else None}


def video_against_truth(truth: list[dict], frames: list[list[dict]], min_iou: float = 0.3) -> dict:
    """Per-frame accuracy (``video_score``) plus the wrong-name rate: face-frames in view (occluded
    too) where ``watch`` shows a name that is not the person's (another person's, or any name on a
    stranger), and, where the truth marks shot changes (a record with ``"cut": true``), the tracks
    that outlive a cut by more than one frame."""
    score = video_score(truth, frames, min_iou)
    in_view = wrong = 0
    for t, found in zip(truth, frames):
        pairs = pair_by_overlap(t["faces"], found, min_iou)
        in_view += len(t["faces"])
        wrong += sum(1 for r, c in pairs.items() if found[c]["name"] is not None
                     and found[c]["name"] != t["faces"][r]["name"])
    cuts = [t["frame"] for t in truth if t.get("cut")]
    crossing = set()
    for c in cuts:
        before = {f["track"] for found in frames[max(0, c - 1):c] for f in found}
        after = {f["track"] for found in frames[c + 1:] for f in found}
        crossing |= before & after
    return {**score.to_dict(), "face_frames_in_view": in_view, "wrong_names": wrong,
            "wrong_name_rate": round(wrong / in_view, 5) if in_view else 0.0,
            "cuts": len(cuts), "tracks_across_cuts": len(crossing)}


def video_report(video: Path | str, gallery, truth: Path | str | None = None, command: str = "") -> dict:
    """``faceprint eval video``: watch ``video`` (timed), identify every frame of it on its own, and
    score the one against the other (``video_against_reference``); with a ``truth`` file (generated
    clips) also against the truth (``video_against_truth``)."""
    from ..video import Source, Watch

    start, cpu = time.perf_counter(), time.process_time()
    frames = [[f.to_dict() for f in r.faces] for r in Watch(Source(video, live=False), gallery)]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not frames:
        raise FaceprintError(f"{video}: no frames could be read")
    reference, threshold = identify_frames(video, gallery)
    # CPU time (all threads) per frame: what watching costs, much less affected by other jobs than fps
    report = {"video": str(video), "command": command, "frames": len(frames),
              "fps": round(len(frames) / seconds, 1),
              "cpu_ms_per_frame": round(cpu / len(frames) * 1000, 1),
              "reference": video_against_reference(reference, frames, threshold)}
    if truth is not None:
        records = load_truth(Path(truth))
        if len(records) != len(frames):
            raise FaceprintError(f"{truth}: {len(records)} truth records for {len(frames)} frames of {video}")
        report["truth"] = video_against_truth(records, frames)
    return report


def answers(disagreement: dict) -> tuple[str, str]:
    """A listed disagreement's two answers in words: frame-by-frame identification's (``"ann at
    0.300"``, ``"nobody (nearest ann at 0.900)"``) and ``watch``'s (``"track 1, ann (last look
    0.300)"``, ``"no track there"``)."""
    ref, w = disagreement["reference"], disagreement["watch"]
    if ref["name"] is not None:
        said = f"{ref['name']} at {ref['distance']:.3f}"
    else:
        nearest = ref["nearest"]
        said = "nobody" + (f" (nearest {nearest} at {ref['distance']:.3f})" if nearest is not None else "")
    if w is None:
        return said, "no track there"
    look = f" (last look {w['distance']:.3f})" if w["distance"] is not None else ""
    return said, f"track {w['track']}, {w['name'] if w['name'] is not None else 'unknown'}{look}"


#: Box colours of ``draw_disagreements``: what ``watch`` showed (orange) and frame-by-frame's answer (blue).
WATCH_COLOR, REFERENCE_COLOR = (255, 140, 0), (40, 120, 255)


def draw_disagreements(video: Path | str, disagreements: list[dict], folder: Path | str) -> list[Path]:
    """Write each frame of ``video`` that holds a listed disagreement (``video_against_reference``'s
    ``disagreements``) into ``folder`` as ``frame-NNNNN.jpg``, with ``watch``'s box and name (orange,
    above the box) and frame-by-frame identification's box and answer (blue, under it) drawn on it,
    to be judged by eye. Returns the files written, in frame order."""
    from ..draw import draw_faces
    from ..imageio import save_image
    from ..types import Face
    from ..video import Source

    by_frame: dict[int, list[dict]] = {}
    for d in disagreements:
        by_frame.setdefault(d["frame"], []).append(d)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FaceprintError(f"{folder}: cannot write frames there ({e.strerror or e})") from None
    written = []
    for frame in Source(video, live=False).frames():
        if frame.index not in by_frame:
            continue
        image = frame.image
        for d in by_frame[frame.index]:
            said, shown = answers(d)
            image = draw_faces(image, [Face(tuple(d["reference"]["box"]), 1.0)], [f"frame-by-frame: {said}"],
                               color=REFERENCE_COLOR, below=True)
            if d["watch"] is not None:
                image = draw_faces(image, [Face(tuple(d["watch"]["box"]), 1.0)], [f"watch: {shown}"],
                                   color=WATCH_COLOR)
        written.append(save_image(folder / f"frame-{frame.index:05d}.jpg", image))
    return written


def enrol_from_frame(gallery, video: Path | str, name: str, frame: int = 0) -> int | None:
    """Enrol ``name`` from one frame of ``video``: the best face there (``video_quality``), cut out
    with a face's width and height of margin, as a user would crop a still to try ``eval video``
    on their own footage. Returns the face id (None if already enrolled)."""
    from ..analysis.quality import video_quality

    image, faces = _frame_faces(gallery, video, frame)
    best = max(faces, key=lambda f: video_quality(image, f))
    return gallery.enroll(name, _still(image, best), source=f"{video}#frame={frame}")


def enrol_everyone(gallery, video: Path | str, frame: int = 0, prefix: str = "person") -> list[str]:
    """Enrol every good face (``looks.GOOD``) of one frame of ``video``, each as a person of its own
    (``prefix-1``, ``prefix-2``, ... from left to right), cut out as ``enrol_from_frame`` cuts its
    one: so ``eval video`` judges every track that frame-by-frame identification can name, not
    only one. Returns the names enrolled; a frame with no good face is an error, as one with no face."""
    from ..analysis.quality import video_quality
    from ..video.looks import GOOD

    image, faces = _frame_faces(gallery, video, frame)
    good = sorted((f for f in faces if video_quality(image, f) >= GOOD), key=lambda f: f.box[0])
    if not good:
        raise FaceprintError(f"{video}: no face in frame {frame} is good enough to enrol")
    names = [f"{prefix}-{i}" for i in range(1, len(good) + 1)]
    for name, face in zip(names, good):
        gallery.enroll(name, _still(image, face), source=f"{video}#frame={frame}")
    return names


def _frame_faces(gallery, video: Path | str, frame: int) -> tuple[np.ndarray, list]:
    """Frame ``frame`` of ``video`` and the faces the gallery's pipeline finds in it (at least one)."""
    from ..video import Source

    image = next((f.image for f in Source(video, live=False).frames() if f.index == frame), None)
    if image is None:
        raise FaceprintError(f"{video}: has no frame {frame}")
    faces = gallery.pipeline.detect(image)
    if not faces:
        raise FaceprintError(f"{video}: no face in frame {frame}")
    return image, faces


def _still(image: np.ndarray, face) -> np.ndarray:
    """The face cut out with its own width and height of margin on every side."""
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    return np.ascontiguousarray(image[int(max(y1 - h, 0)):int(y2 + h), int(max(x1 - w, 0)):int(x2 + w)])
