"""Video liveness on generated clips of real LFW faces (faceprint.testing.presentations, seeded): a
printed photo of an enrolled person turned in front of the camera is refused by ``capture --liveness``
and shown as spoof by ``watch --liveness``; a face that moves like a head, or keeps still, is never
judged spoof; without liveness nothing changes. Challenges (``--challenge``): a step not done in time
fails with its reason, steps done make a still head live, a print turning on cue is still a spoof; the
REST session route judges a clip's frames, and refuses bad sessions with 4xx codes.

The clips are deterministic (fixed seeds, models on the CPU); the margins below are against what
was measured on them: the print is judged spoof at frame 46 of 100 and stays so (54 frames), the
moving live face is judged live at frame 31 and stays so, the still face stays undecided.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.video import Challenge, LivenessJudge, Recognizer, Source, Watch, capture
from faceprint.video.challenge import parse_challenge
from faceprint.video.liveness import FAILED, LIVE, SPOOF, UNDECIDED, _planar_fit

from .conftest import lfw_image
from .servers import bearer

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


# -- challenges ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acted:
    """3 s clips at 480x360 (eyes ~42 px apart: big enough to read) where the face acts on cue."""

    head: Path  # the still head turns to its left at 0.4 s (for 1.5 s), blinks at 2.0 s
    card: Path  # the print turns to the person's left at 0.4 s, on top of its own 3D wobble


@pytest.fixture(scope="module")
def acted(tmp_path_factory, lfw_dir) -> Acted:
    from faceprint.testing.presentations import make_presentation

    folder = tmp_path_factory.mktemp("acted")
    photo = lfw_image(lfw_dir, PERSON, 2)
    made = {kind: make_presentation(photo, folder / f"{kind}.mp4", kind, seconds=3.0, seed=4, size=(480, 360),
                                    acts=acts).video
            for kind, acts in (("still", [(0.4, "turn-left"), (2.0, "blink")]), ("print", [(0.4, "turn-left")]))}
    return Acted(made["still"], made["print"])


def _liveness_events(video: Path, steps: str) -> list[tuple[int, str, str]]:
    watching = Watch(video, liveness=True, challenge=Challenge(parse_challenge(steps), 2.0))
    return [(e.frame, e.liveness, e.reason) for r in watching for e in r.events if e.kind == "liveness"]


def test_a_challenge_done_in_time_makes_a_still_head_live(acted):
    (frame, verdict, reason), = _liveness_events(acted.head, "turn-left,blink")
    assert verdict == LIVE and reason.startswith("challenge done"), reason  # measured: frame 58 (the blink's end)
    assert 52 <= frame <= 65


def test_the_wrong_step_fails_with_its_reason_and_the_prompt_is_shown(acted):
    (frame, verdict, reason), = _liveness_events(acted.head, "turn-right")
    assert verdict == FAILED and reason.startswith("no turn to the right within 2 s"), reason
    assert frame == 51  # the 2 s from the first frame run out (25 fps): never live before
    first = next(iter(Watch(acted.head, liveness=True, challenge=Challenge(["turn-right"]))))
    (face,) = first.faces
    assert face.prompt == "turn your head to your right" and face.to_dict()["prompt"] == face.prompt


def test_a_print_turning_on_cue_is_a_spoof(acted):
    verdicts = {v for _, v, _ in _liveness_events(acted.card, "turn-left,blink")}
    assert verdicts == {SPOOF}  # measured: frame 32, 8 flat frames


def test_watch_challenge_a_blink_too_late_fails_with_its_reason(acted, gallery_db, tmp_path):
    events = tmp_path / "events.jsonl"
    run = subprocess.run([FACEPRINT, "watch", str(acted.head), "--db", str(gallery_db), "--challenge", "blink",
                          "--step-seconds", "1", "--events", str(events), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    verdicts = [e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "liveness"]
    # the head blinks at 2.0 s: after its 1 s, and a failed challenge stays failed
    assert [(e["liveness"], e["reason"].split(";")[0]) for e in verdicts] == [(FAILED, "no blink within 1 s")]
    bad = subprocess.run([FACEPRINT, "watch", str(acted.head), "--challenge", "wink"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and "unknown challenge step 'wink'" in bad.stderr, bad.stderr


def test_capture_with_a_challenge_takes_faces_only_once_it_is_done(acted, tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        verdicts = []
        result = capture(PERSON, acted.head, g, count=2, liveness=True, challenge=Challenge(["turn-left", "blink"]),
                         on_verdict=lambda verdict, frame: verdicts.append(verdict))
    assert len(result.enrolled) >= 1, result.refused
    assert min(v.frame for v in verdicts if v.accepted) >= 52
    assert any("asked: blink" in v.reason for v in verdicts if not v.accepted)


def test_challenge_arguments():
    assert parse_challenge(" turn-left, blink ") == ("turn-left", "blink") and parse_challenge(None) == ()
    with pytest.raises(ValueError, match="challenge"):
        Challenge([])
    with pytest.raises(ValueError, match="step_seconds"):
        Challenge(["blink"], 0)
    with pytest.raises(ValueError, match="liveness=True"):
        Watch(0, challenge=Challenge(["blink"]))
    from faceprint.testing.presentations import make_presentation

    with pytest.raises(ValueError, match="a print does not blink"):
        make_presentation(Path("x.jpg"), Path("x.mp4"), "print", acts=[(0.5, "blink")])


# -- the REST session route ------------------------------------------------------------------------
def _frames(video: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The clip's frames as multipart ``frames`` fields, JPEG as a browser's canvas would send them."""
    return [("frames", (f"frame{f.index}.jpg", _encoded(f.image, ".jpg"), "image/jpeg"))
            for f in Source(video).frames()]


def _encoded(image: np.ndarray, ext: str) -> bytes:
    import cv2

    return cv2.imencode(ext, image[..., ::-1])[1].tobytes()


def test_rest_liveness_session(analysis_server, acted):
    client, keys = analysis_server
    read = bearer(keys["read"])
    head, card = _frames(acted.head), _frames(acted.card)[:50]  # the print is spoof by frame 32
    r = client.post("/v1/liveness/session", headers=read, files=head,
                    params={"challenge": "turn-left,blink", "step_seconds": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == LIVE and body["frames"] == body["frames_with_face"] == 75, body
    assert body["width"] == 480 and set(body["face"]) >= {"box", "score"}
    r = client.post("/v1/liveness/session", headers=read, files=card)
    assert r.status_code == 200 and r.json()["verdict"] == SPOOF, r.text

    def error(**kw):
        r = client.post("/v1/liveness/session", headers=kw.pop("headers", read), **kw)
        return r.status_code, r.json()["error"]["code"]

    blank = ("frames", ("b.png", _encoded(np.full((360, 480, 3), 90, np.uint8), ".png"), "image/png"))
    small = ("frames", ("s.png", _encoded(np.full((36, 48, 3), 90, np.uint8), ".png"), "image/png"))
    assert error(files=head[:3], headers={}) == (401, "unauthorized")
    assert error(files=head[:1]) == (422, "frame_count")
    assert error(files=head[:1] * 151) == (413, "frame_count")
    assert error(files=[blank, blank]) == (422, "no_face")
    assert error(files=[blank, small]) == (422, "frame_size")
    assert error(files=[head[0], ("frames", ("x.jpg", b"not an image", "image/jpeg"))]) == (400, "bad_image")
    assert error(files=head[:2], params={"challenge": "wink"}) == (400, "bad_request")
    assert error(files=head[:2], params={"fps": 0}) == (422, "invalid_request")
    assert error(files=head[:2], params={"only": "age"}) == (400, "bad_request")
    assert error(files=[*head[:2], ("image", head[0][1])]) == (400, "bad_request")
    assert error(json={"frames": ["***", "***"]}) == (400, "bad_image")
    assert error(json={"frames": ["***"], "images": []}) == (400, "bad_request")
