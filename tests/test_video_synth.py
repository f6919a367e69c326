"""Generated test clips: a readable video whose truth matches what a detector sees, and a loopback
MJPEG stream that OpenCV reads like a camera (real-time, ends cleanly, never hangs)."""

from __future__ import annotations

import time
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.testing.mjpeg import serve_mjpeg
from faceprint.testing.synth import Clip, load_truth, main, make_clip

ENROLLED = ["Tony_Blair", "Colin_Powell"]
STRANGERS = ["Hugo_Chavez", "Jean_Chretien"]
TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 3000]


@pytest.fixture(scope="module")
def clip(lfw_dir: Path, tmp_path_factory) -> Clip:
    return make_clip(lfw_dir, tmp_path_factory.mktemp("clip") / "clip.mp4", enrolled=ENROLLED,
                     strangers=STRANGERS, seconds=6, faces=3, seed=1)


@pytest.fixture(scope="module")
def short(lfw_dir: Path, tmp_path_factory) -> Clip:
    """Two seconds: for the stream (which plays in real time) and the determinism checks."""
    return make_clip(lfw_dir, tmp_path_factory.mktemp("short") / "short.mp4", enrolled=ENROLLED,
                     strangers=STRANGERS, seconds=2, faces=2, seed=7)


def frames_of(video: Path | str, **open_args) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video), **open_args)
    assert capture.isOpened()
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    return frames


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def tracks(truth: list[dict]) -> dict[int, list[tuple[int, dict]]]:
    out: dict[int, list[tuple[int, dict]]] = {}
    for record in truth:
        for face in record["faces"]:
            out.setdefault(face["track"], []).append((record["frame"], face))
    return out


def test_video_and_truth_agree(clip):
    assert (clip.frames, clip.size, clip.fps) == (150, (640, 480), 25.0)
    capture = cv2.VideoCapture(str(clip.video))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    capture.release()
    frames = frames_of(clip.video)
    assert len(frames) == 150 and all(f.shape == (480, 640, 3) for f in frames)
    truth = load_truth(clip.truth)
    assert clip.truth == clip.video.with_suffix(".truth.jsonl")
    assert [r["frame"] for r in truth] == list(range(150))
    assert [r["time"] for r in truth] == pytest.approx([i / 25 for i in range(150)])
    for record in truth:
        for face in record["faces"]:
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
            assert face["name"] == (face["person"] if face["person"] in ENROLLED else None)
    people = {t: faces[0][1]["person"] for t, faces in tracks(truth).items()}
    assert people == {0: "Tony_Blair", 1: "Hugo_Chavez", 2: "Colin_Powell"}  # enrolled and strangers alternately


def test_faces_move_scale_switch_photos_and_come_and_go(clip, lfw_dir):
    by_track = tracks(load_truth(clip.truth))
    for faces in by_track.values():
        boxes = np.array([f["box"] for _, f in faces])
        centres, widths = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2] - boxes[:, 0]
        assert np.ptp(centres, axis=0).max() > 60  # moves
        assert np.abs(np.diff(centres, axis=0)).max() < 15  # smoothly: no jumps between frames
        assert widths.max() / widths.min() > 1.2 and 40 < widths.min() and widths.max() < 160  # scales
    spans = {t: (faces[0][0], faces[-1][0]) for t, faces in by_track.items()}
    assert all(last - first + 1 == len(by_track[t]) for t, (first, last) in spans.items())  # one appearance
    assert spans[2][0] > 0 and spans[0][1] < 149  # one enters late, one leaves early
    assert any(len(photos) > 1 for photos in clip.photos_used.values())  # photo switches
    for person in ENROLLED[:2]:  # photos left over to enrol from
        assert set((lfw_dir / "images" / person).glob("*.jpg")) - set(clip.photos_used[person])


def test_faces_keep_apart(clip):
    for record in load_truth(clip.truth):
        for a, b in combinations(record["faces"], 2):
            assert iou(a["box"], b["box"]) < 0.05


def test_occlusion(clip, lfw_dir, tmp_path):
    truth = load_truth(clip.truth)
    occluded = [(r["frame"], f["track"]) for r in truth for f in r["faces"] if f["occluded"]]
    assert 5 <= len(occluded) <= 0.3 * sum(len(r["faces"]) for r in truth)
    assert len({track for _, track in occluded}) >= 2
    clear = make_clip(lfw_dir, tmp_path / "clear.mp4", enrolled=ENROLLED, strangers=STRANGERS, seconds=6,
                      faces=3, seed=1, occlusion=False)
    assert not any(f["occluded"] for r in load_truth(clear.truth) for f in r["faces"])


def test_same_seed_same_clip(short, lfw_dir, tmp_path):
    again = make_clip(lfw_dir, tmp_path / "again.mp4", enrolled=ENROLLED, strangers=STRANGERS, seconds=2,
                      faces=2, seed=7)
    other = make_clip(lfw_dir, tmp_path / "other.mp4", enrolled=ENROLLED, strangers=STRANGERS, seconds=2,
                      faces=2, seed=8)
    assert again.truth.read_text() == short.truth.read_text()
    assert again.photos_used == short.photos_used
    np.testing.assert_array_equal(frames_of(again.video)[25], frames_of(short.video)[25])
    assert other.truth.read_text() != short.truth.read_text()


def test_detector_finds_the_truth_faces(clip):
    from faceprint.pipeline import get_pipeline

    pipeline = get_pipeline()
    truth = load_truth(clip.truth)
    found = []
    for i, bgr in enumerate(frames_of(clip.video)):
        if i % 15:
            continue
        boxes = [face.box for face in pipeline.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))]
        faces = [f for f in truth[i]["faces"] if not f["occluded"]]
        found += [max((iou(f["box"], b) for b in boxes), default=0.0) >= 0.4 for f in faces]
        assert len(boxes) <= len(truth[i]["faces"])  # the background has no faces
    assert len(found) >= 20 and np.mean(found) >= 0.9


def test_command_line(lfw_dir, tmp_path, capsys):
    main(["--lfw", str(lfw_dir), "--out", str(tmp_path / "c.mp4"), "--size", "320x240", "--seconds", "1",
          "--faces", "2", "--enrolled", "Tony_Blair", "--strangers", "Hugo_Chavez"])
    assert "25 frames, 320x240" in capsys.readouterr().out
    assert len(load_truth(tmp_path / "c.truth.jsonl")) == 25 == len(frames_of(tmp_path / "c.mp4"))


def test_mjpeg_streams_in_real_time_and_ends(short):
    with serve_mjpeg(short.video) as server:
        assert server.url.startswith("http://127.0.0.1:")
        start = time.monotonic()
        frames = frames_of(server.url, apiPreference=cv2.CAP_FFMPEG, params=TIMEOUTS)
        elapsed = time.monotonic() - start
    assert short.frames - 3 <= len(frames) <= short.frames
    assert short.frames / short.fps * 0.8 < elapsed < short.frames / short.fps + 3  # paced like a camera
    original = frames_of(short.video)
    assert np.abs(frames[10].astype(int) - original[10]).mean() < 4  # the same pictures (JPEG-compressed)


def test_mjpeg_stream_that_stops_midway(short):
    with serve_mjpeg(short.video, stop_after=12) as server:
        assert len(frames_of(server.url, apiPreference=cv2.CAP_FFMPEG, params=TIMEOUTS)) in range(9, 13)
    with serve_mjpeg(short.video) as server:
        capture = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, TIMEOUTS)
        assert capture.read()[0]
        server.stop()  # the camera goes away
        start = time.monotonic()
        while capture.read()[0]:
            pass
        assert time.monotonic() - start < 2
