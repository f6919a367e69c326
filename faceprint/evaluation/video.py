"""Live-video scoring: per-frame identity accuracy and identity switches of a watched clip against
the ground truth that ``faceprint.testing.synth`` writes beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def video_score(truth: list[dict], frames: list[list[dict]], min_iou: float = 0.3) -> VideoScore:
    """``truth``: the ``.truth.jsonl`` lines; ``frames[i]``: frame i's tracked faces as
    ``TrackedFace.to_dict()`` (``track``, ``box``, ``name``)."""
    from scipy.optimize import linear_sum_assignment

    from ..video.tracker import iou_matrix

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
        if not found:
            missed += len(faces)
            continue
        iou = iou_matrix(np.array([f["box"] for f in faces], float), np.array([f["box"] for f in found], float))
        rows, cols = linear_sum_assignment(-iou)
        hit = {r: c for r, c in zip(rows, cols) if iou[r, c] >= min_iou}
        missed += len(faces) - len(hit)
        for r, c in hit.items():
            correct += found[c]["name"] == faces[r]["name"]
            track_of.setdefault(faces[r]["track"], []).append(found[c]["track"])
    switches = [sum(a != b for a, b in zip(ids, ids[1:])) for ids in track_of.values()]
    renames = [sum(a != b for a, b in zip(n, n[1:])) for n in names_of.values()]
    return VideoScore(face_frames, correct, missed, correct / face_frames if face_frames else 0.0,
                      float(np.mean(switches)) if switches else 0.0, float(np.mean(renames)) if renames else 0.0,
                      len(names_of), len(track_of))
