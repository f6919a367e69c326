"""Video liveness on generated clips of real LFW faces (faceprint.testing.presentations, seeded): a
printed photo of an enrolled person turned in front of the camera is refused by ``capture --liveness``
and shown as spoof by ``watch --liveness``; a face that moves like a head, or keeps still, is never
judged spoof; without liveness nothing changes.

The clips are deterministic (fixed seeds, models on the CPU); the margins below are against what
was measured on them: the print is judged spoof at frame 46 of 100 and stays so (54 frames), the
moving live face is judged live at frame 31 and stays so, the still face stays undecided.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.video import LivenessJudge, Recognizer, Watch, capture
from faceprint.video.liveness import LIVE, SPOOF, UNDECIDED, _planar_fit

from .conftest import lfw_image

FACEPRINT = str(Path(sys.executable).parent / "faceprint")
PERSON = "Tony_Blair"
SPOOF_REASON = "spoof: a print or screen held up to the camera"


@pytest.fixture(scope="module")
def clips(tmp_path_factory, lfw_dir) -> dict[str, Path]:
    """The person's _0002 photo as a print turned in 3D, as a live head, and as a still head."""
    from faceprint.testing.presentations import make_presentation

    folder = tmp_path_factory.mktemp("liveness")
    photo = lfw_image(lfw_dir, PERSON, 2)
    return {kind: make_presentation(photo, folder / f"{kind}.mp4", kind, seed=seed).video
            for kind, seed in (("print", 1), ("live", 3), ("still", 4))}


@pytest.fixture()
def gallery_db(tmp_path, lfw_dir) -> Path:
    """A gallery with the person enrolled from other photos than the clips'."""
    db = tmp_path / "gallery.db"
    with Gallery(db) as g:
        for i in (3, 4, 5):
            g.enroll(PERSON, lfw_image(lfw_dir, PERSON, i))
    return db


def _verdicts(video: Path) -> list[list[str | None]]:
    """Per frame, the liveness of each face watched with liveness on."""
    return [[f.liveness for f in r.faces] for r in Watch(video, liveness=True)]


def test_a_flat_face_has_no_parallax_and_a_nose_off_the_plane_has():
    marks = np.array([[100, 100], [140, 100], [120, 125], [105, 150], [135, 150]], float)
    h = np.array([[0.9, 0.1, 30], [-0.05, 1.1, 12], [0.0006, 0.0004, 1]])  # a sheet turned and moved
    seen = np.c_[marks, np.ones(5)] @ h.T
    seen = seen[:, :2] / seen[:, 2:]
    shift, change, parallax = _planar_fit(marks, seen)
    assert parallax < 1e-6 and change > 0.01 and shift > 0.5
    seen[2, 0] += 4  # the nose moved 4 px off the plane (0.1 eye distances)
    assert _planar_fit(marks, seen)[2] > 0.08


def test_watch_liveness_shows_a_turning_print_as_spoof_in_events(clips, gallery_db, tmp_path):
    events = tmp_path / "events.jsonl"
    run = subprocess.run([FACEPRINT, "watch", str(clips["print"]), "--db", str(gallery_db), "--liveness",
                          "--events", str(events), "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    verdicts = [e for e in lines if e["event"] == "liveness"]
    assert verdicts and verdicts[0]["liveness"] == SPOOF, lines  # measured: frame 46
    assert verdicts[0]["frame"] <= 75  # within 3 s of the face appearing (25 fps)
    assert all(e["liveness"] == SPOOF for e in verdicts)  # and it never changes its mind
    assert {e["name"] for e in lines if e["event"] == "named"} == {PERSON}  # the print does name the person


def test_capture_liveness_refuses_a_turning_print_of_an_enrolled_person(clips, gallery_db):
    with Gallery(gallery_db) as g:
        before = g.store.count_faces()
        refused = capture(PERSON, clips["print"], g, count=5, liveness=True)
        assert refused.enrolled == [] and g.store.count_faces() == before
        # measured: from frame 73 on (capture's full detections place the landmarks a little
        # differently from watch's re-placements), 27 frames; before it, "not yet judged live" or blurred
        assert refused.refused[SPOOF_REASON] >= 15, refused.refused
        # the same frames without liveness: a face is taken (measured: 1; the print is mostly too blurred)
        taken = capture(PERSON, clips["print"], g, count=5)
        assert len(taken.enrolled) >= 1, taken.refused


def test_a_face_that_moves_like_a_head_is_judged_live_never_spoof(clips):
    verdicts = _verdicts(clips["live"])
    faces = [v for frame in verdicts for v in frame]
    assert SPOOF not in faces
    first_live = next(i for i, frame in enumerate(verdicts) if LIVE in frame)
    assert first_live <= 60  # measured: frame 31
    assert faces.count(LIVE) >= 50  # measured: 69 frames


def test_a_still_face_is_not_judged_spoof(clips):
    assert SPOOF not in {v for frame in _verdicts(clips["still"]) for v in frame}  # measured: undecided throughout


def test_capture_liveness_takes_a_live_face_once_judged_live(clips, tmp_path):
    frames = []
    with Gallery(tmp_path / "g.db") as g:
        result = capture(PERSON, clips["live"], g, count=3, liveness=True,
                         on_verdict=lambda verdict, frame: frames.append(verdict))
    assert len(result.enrolled) >= 2, result.refused  # measured: 3 (frames 31, 51, 63)
    assert SPOOF_REASON not in result.refused
    assert result.refused["not yet judged live"] >= 20  # measured: 31, the frames before the verdict
    assert min(v.frame for v in frames if v.accepted) >= 20


def test_without_liveness_nothing_is_judged(clips):
    run = Watch(clips["print"])
    assert run.recognizer.liveness is None
    for result in run:
        assert all(f.liveness is None and "liveness" not in f.to_dict() for f in result.faces)
        assert all(e.kind != "liveness" and "liveness" not in e.to_dict() for e in result.events)


def test_liveness_judge_arguments():
    with pytest.raises(ValueError, match="LivenessJudge"):
        Watch(0, recognizer=Recognizer(), liveness=True)
    with pytest.raises(ValueError, match="score_every"):
        LivenessJudge(score_every=0)
    assert LivenessJudge().verdict(7) == UNDECIDED
