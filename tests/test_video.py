"""Live video on generated clips (these machines have no camera): recognition against ground truth,
events, enrolment by capture, and every way a source can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import pytest

from faceprint import Gallery
from faceprint.evaluation import video_score
from faceprint.gallery.store import open_store
from faceprint.imageio import load_image
from faceprint.pipeline import get_pipeline
from faceprint.video import Source, Watch
from faceprint.video.capture import MAX_TURN, MIN_SHARPNESS, sharpness, turn
from faceprint.testing.mjpeg import serve_mjpeg
from faceprint.testing.synth import DEFAULT_ENROLLED, DEFAULT_STRANGERS, load_truth, make_clip

from .conftest import lfw_image

FACEPRINT = str(Path(sys.executable).parent / "faceprint")


def _enrol_unseen(gallery: Gallery, lfw: Path, clip, people: list[str], per_person: int = 3) -> None:
    """Enrol each person from LFW photos that are not in the clip."""
    for person in people:
        used = set(clip.photos_used.get(person, []))
        photos = [p for p in sorted((lfw / "images" / person).glob("*.jpg")) if p not in used]
        for photo in photos[:per_person]:
            gallery.enroll(person, photo)


def _frames(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def scene(tmp_path_factory, lfw_dir):
    """A 640x480 clip of three people (two enrolled, one stranger) and a gallery of the enrolled."""
    folder = tmp_path_factory.mktemp("video")
    clip = make_clip(lfw_dir, folder / "scene.mp4", enrolled=DEFAULT_ENROLLED[:2], strangers=DEFAULT_STRANGERS[:1],
                     faces=3, seconds=6, seed=3)
    db = folder / "gallery.db"
    with Gallery(db) as g:
        _enrol_unseen(g, lfw_dir, clip, DEFAULT_ENROLLED[:2])
    return clip, db


def test_watch_names_and_tracks_match_the_ground_truth(scene):
    clip, db = scene
    truth = load_truth(clip.truth)
    with Gallery(db) as gallery:
        run = Watch(clip.video, gallery)
        results = list(run)
    assert len(results) == clip.frames and all(r.processed for r in results)
    score = video_score(truth, [[f.to_dict() for f in r.faces] for r in results])
    assert score.accuracy >= 0.95, score  # the goal, on this clip
    assert score.switches_per_track <= 1.0, score
    events = [e for r in results for e in r.events] + run.final_events
    appeared = Counter(e.track for e in events if e.kind == "appear")
    left = Counter(e.track for e in events if e.kind == "leave")
    assert appeared == left  # every track that appears also leaves (at the latest when the clip ends)
    named = {e.track: e.name for e in events if e.kind in ("named", "renamed")}
    people = {f["person"]: f["name"] for t in truth for f in t["faces"]}
    # each enrolled person was named on some track; nobody was given a name they do not have
    assert {n for n in people.values() if n} <= set(named.values()) <= set(people.values())
    assert all(e.frame == r.index for r in results for e in r.events)


def test_watch_cli_writes_the_annotated_video_and_events(scene, tmp_path):
    clip, db = scene
    out, events = tmp_path / "annotated.mp4", tmp_path / "events.jsonl"
    done = subprocess.run([FACEPRINT, "watch", str(clip.video), "--db", str(db), "--out", str(out),
                           "--events", str(events), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["frames"] == clip.frames and summary["dropped"] == 0
    assert set(summary["names"]) == set(DEFAULT_ENROLLED[:2])
    assert _frames(out) == clip.frames
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert {line["event"] for line in lines} >= {"appear", "named", "leave"}
    assert all(set(line) == {"event", "track", "name", "frame", "time"} for line in lines)
    assert [line["frame"] for line in lines] == sorted(line["frame"] for line in lines)


def test_capture_enrols_the_person_in_view(tmp_path, lfw_dir):
    person = "Colin_Powell"
    clip = make_clip(lfw_dir, tmp_path / "powell.mp4", enrolled=[person], strangers=[], faces=1, seconds=6, seed=1)
    db = tmp_path / "gallery.db"
    with Gallery(db) as g:
        _enrol_unseen(g, lfw_dir, clip, ["George_W_Bush", "Tony_Blair"], per_person=2)
    done = subprocess.run([FACEPRINT, "capture", "Colin Powell", "--source", str(clip.video), "--db", str(db),
                           "--count", "4", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["enrolled"] == 4
    assert "no face" in report["refused"]  # the clip starts before the face walks in
    assert "skipped: no face" in done.stderr  # and each refusal says why
    unseen = next(p for p in sorted((lfw_dir / "images" / person).glob("*.jpg")) if p not in clip.photos_used[person])
    with Gallery(db) as g:
        assert [m.name for m in g.identify(unseen)] == ["Colin Powell"]
        assert len(g.faces("Colin Powell")) == 4


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "camera"])
def test_a_source_that_cannot_be_read_is_one_clear_line(tmp_path, kind):
    source = {"missing": str(tmp_path / "nope.mp4"), "empty": str(tmp_path / "empty.mp4"),
              "garbage": str(tmp_path / "garbage.mp4"), "camera": "7"}[kind]
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(20_000))
    out = tmp_path / "out.mp4"
    open_store(tmp_path / "g.db").close()  # watch only reads: it refuses a gallery that is not there
    done = subprocess.run([FACEPRINT, "watch", source, "--db", str(tmp_path / "g.db"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    expected = {"missing": "no such video file", "empty": "empty file", "garbage": "cannot open this video file",
                "camera": "cannot open this camera"}[kind]
    assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_stream_that_stops_midway_leaves_a_clean_video(scene, tmp_path):
    clip, db = scene
    out, events = tmp_path / "live.mp4", tmp_path / "events.jsonl"
    with serve_mjpeg(clip.video, stop_after=40) as stream:
        done = subprocess.run([FACEPRINT, "watch", stream.url, "--db", str(db), "--out", str(out),
                               "--events", str(events), "--show", "--json"],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": ""})
    assert done.returncode == 0, done.stderr
    assert "no display here" in done.stderr  # --show says why there is no window, and carries on
    summary = json.loads(done.stdout)
    # a live source: frames recognition could not keep up with are dropped and counted, never queued
    assert 0 < summary["frames"] and summary["frames"] + summary["dropped"] <= 40
    assert _frames(out) == summary["frames"]  # the annotated video is playable and complete up to the end
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert Counter(x["track"] for x in lines if x["event"] == "appear") == \
        Counter(x["track"] for x in lines if x["event"] == "leave")


def test_a_slow_consumer_of_a_live_stream_gets_the_newest_frames(scene):
    """Recognition slower than the camera: frames are skipped (and counted), never queued into a delay."""
    clip, _ = scene
    with serve_mjpeg(clip.video, stop_after=60) as stream:
        source = Source(stream.url)
        assert source.live
        seen = []
        for frame in source.frames():
            seen.append(frame.index)
            time.sleep(0.12)  # three frames' time at 25 fps
    assert source.dropped > 0 and len(seen) + source.dropped == source.read
    assert max(b - a for a, b in zip(seen, seen[1:])) > 1  # it jumped ahead to the newest frame


def test_capture_refuses_blurred_and_turned_faces(lfw_dir):
    image = load_image(lfw_image(lfw_dir, "Colin_Powell", 1))
    face = get_pipeline().detect(image)[0]
    assert turn(face) < MAX_TURN and sharpness(image, face) > MIN_SHARPNESS
    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    assert sharpness(blurred, face) < MIN_SHARPNESS
    # a face whose nose sits well off the eyes' midline is turned away
    eyes_mid = (face.landmarks["left_eye"][0] + face.landmarks["right_eye"][0]) / 2
    eye_distance = face.landmarks["right_eye"][0] - face.landmarks["left_eye"][0]
    turned = type(face)(face.box, face.score, {**face.landmarks,
                                               "nose": (eyes_mid + 0.5 * eye_distance, face.landmarks["nose"][1])})
    assert turn(turned) > MAX_TURN
