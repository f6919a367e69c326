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
import numpy as np
import pytest

from faceprint import Gallery
from faceprint.analysis.quality import box_sharpness, turn, video_quality
from faceprint.evaluation import (draw_disagreements, enrol_everyone, enrol_from_frame, load_truth,
                                  video_against_reference, video_report, video_score)
from faceprint.gallery.store import open_store
from faceprint.imageio import load_image
from faceprint.pipeline import get_pipeline
from faceprint.testing.mjpeg import serve_mjpeg
from faceprint.testing.synth import DEFAULT_ENROLLED, DEFAULT_STRANGERS, make_clip, make_scenario
from faceprint.video import Recognizer, Source, Watch
from faceprint.video.looks import GOOD
from faceprint.video.capture import MAX_TURN, MIN_SHARPNESS
from faceprint.video.source import READ_AHEAD, VideoFrame, VideoSourceError, Writer

from .conftest import CROWD, lfw_image

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
    assert {line["event"] for line in lines} <= {"appear", "named", "renamed", "unnamed", "leave"}
    assert all(set(line) == {"event", "track", "name", "frame", "time"} for line in lines)
    # a track appears unnamed; "named" always carries a name (no null "decision" right after appear)
    assert all(line["name"] is None for line in lines if line["event"] == "appear")
    assert all(line["name"] for line in lines if line["event"] in ("named", "renamed"))
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


def test_a_face_taken_back_by_its_old_track_is_announced_once(lfw_dir):
    """A face that reappears away from its last box (as after frames a live stream dropped) starts a
    new track that its embedding merges back into the old one: that id has one ``appear`` and one
    ``leave``. The old engine announced the taken-back track again (appear twice, leave once), which
    made the stream test above fail whenever dropped frames happened to cause such a jump."""
    photo = cv2.resize(load_image(lfw_image(lfw_dir, "Colin_Powell", 1)), (160, 160))
    recognizer = Recognizer(pipeline=get_pipeline())
    events, ids = [], []
    for i in range(16):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        x = 40 if i < 6 else 440  # a jump of 2.5 face widths: no overlap, beyond a waiting track's reach
        canvas[160:320, x:x + 160] = photo
        faces, new = recognizer.process(VideoFrame(i, i / 25, canvas))
        events += new
        ids += [f.track for f in faces]
    events += recognizer.close(15, 15 / 25)
    assert set(ids) == {ids[0]}, "the jumped face was not taken back by its track"
    assert [(e.kind, e.track) for e in events] == [("appear", ids[0]), ("leave", ids[0])]


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


def test_a_file_is_decoded_ahead_and_every_frame_comes_in_order(scene):
    """A file's frames are decoded on a thread ahead of recognition: all of them, in order, the same
    pixels as reading the file directly; a consumer that stops early (capture with its faces) leaves
    no reader thread behind."""
    import threading

    clip, _ = scene
    frames = list(Source(clip.video).frames())
    assert [f.index for f in frames] == list(range(clip.frames))
    direct = cv2.VideoCapture(str(clip.video))
    for f in frames:
        assert np.array_equal(f.image, cv2.cvtColor(direct.read()[1], cv2.COLOR_BGR2RGB)), f.index
    assert not direct.read()[0]
    direct.release()
    source = Source(clip.video)
    for frame in source.frames():
        if frame.index == 2:
            break
    readers = [t for t in threading.enumerate() if t.name.startswith("faceprint-source-")]
    assert not readers and source.read <= 3 + READ_AHEAD + 1  # it read no further than it was ahead


def test_an_annotated_video_is_encoded_behind_and_a_failure_is_said(scene, tmp_path):
    """``Writer`` encodes on a thread: every frame written is in the file once it is closed, and a frame
    the encoder refuses is reported by the next write (or ``close``) as one error, not lost silently,
    with the frames before it kept as a playable file."""
    clip, _ = scene
    frames = [f.image for f in Source(clip.video).frames()]
    writer = Writer(tmp_path / "copy.mp4", 25.0)
    for image in frames:
        writer.write(image)
    writer.close()
    assert writer.frames == _frames(tmp_path / "copy.mp4") == len(frames)
    broken = Writer(tmp_path / "broken.mp4", 25.0)
    broken.write(frames[0])
    broken.write(np.ascontiguousarray(frames[1][::2, ::2]))  # half the size: the encoder skips it
    with pytest.raises(VideoSourceError, match="broken.mp4: writing the video failed"):
        for image in frames[2:]:
            broken.write(image)
    broken.close()  # already closed by the failing write: nothing more to say
    assert 1 <= _frames(tmp_path / "broken.mp4") < len(frames)
    with pytest.raises(VideoSourceError, match="the video is closed"):  # not started over
        broken.write(frames[0])
    unknown = Writer(tmp_path / "out.xyz", 25.0)
    with pytest.raises(VideoSourceError, match=r"out.xyz: cannot write a video here \(use .mp4 or .avi\)"):
        unknown.write(frames[0])
    unknown.close()  # nothing was opened: nothing to finish


def test_embeddings_are_scheduled_to_drop_a_doubtful_name_and_to_name_a_turning_stranger(tmp_path, lfw_dir):
    """When the engine pays for an embedding (issue 11, found on the real clip with everyone of its
    fifth frame enrolled): a named face whose last look went past the threshold is looked at again
    on the next good frame, not ten frames later (it kept a name for 3 frames on a face
    frame-by-frame called nobody); a good face settled as nobody enrolled is looked at every 4th
    frame, so one who turns into clear view is named within the 5 frames allowed (one waited 6).
    Poor faces still wait."""
    from faceprint.types import Face
    from faceprint.video.engine import NEED, REFRESH, REFRESH_NOBODY
    from faceprint.video.tracker import Track

    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll("Colin_Powell", lfw_image(lfw_dir, "Colin_Powell", 1))
        recognizer = Recognizer(gallery)
        t = gallery.threshold

        def track(**state) -> Track:
            # last embedded on frame 10, on a good face
            return Track(1, Face(box=(0.0, 0.0, 80.0, 80.0), score=0.99), 0, 10, embedded_frame=10,
                         embedding=np.ones(2), checked_quality=0.9, **state)

        doubtful = track(name="Colin_Powell", distance=t + 0.05, quality=0.9)
        assert recognizer._due(doubtful, 11)
        assert not recognizer._due(track(name="Colin_Powell", distance=t + 0.05, quality=GOOD / 2), 11)
        assert not recognizer._due(track(name="Colin_Powell", distance=t - 0.1, quality=0.9), 11)
        assert recognizer._due(track(name="Colin_Powell", distance=t - 0.1, quality=0.9), 10 + REFRESH)
        nobody = dict(distance=t + 0.3, quality=0.9, embedded_quality=0.9)
        assert not recognizer._due(track(votes=Counter({None: NEED}), **nobody), 10 + REFRESH_NOBODY - 1)
        assert recognizer._due(track(votes=Counter({None: NEED}), **nobody), 10 + REFRESH_NOBODY)
        poor = dict(nobody, quality=GOOD / 2, embedded_quality=GOOD / 2)
        assert not recognizer._due(track(votes=Counter({None: NEED}), **poor), 10 + REFRESH_NOBODY)


def test_a_look_past_the_threshold_hides_the_name_until_one_within(tmp_path, lfw_dir):
    """Issue 11, found on the real clip with everyone enrolled: a named track whose good faces came
    0.59-0.63 from the name (past the threshold, short of what drops it) kept showing the name
    while frame-by-frame identification called the face nobody. A good look past the threshold now
    hides the name on that frame; the track keeps it until the votes say otherwise, and shows it
    again once a good look is within. Real faces: Tony Blair's photo 6 (0.40 from photo 2, the one
    enrolled) cross-fades into his photo 8 (0.66) and back."""
    def canvas(n: int) -> np.ndarray:
        out = np.full((480, 640, 3), 110, np.uint8)
        out[115:365, 195:445] = load_image(lfw_image(lfw_dir, "Tony_Blair", n))
        return out.astype(float)

    near, far = canvas(6), canvas(8)
    frames = ([near] * 2 + [near + (far - near) * k / 8 for k in range(1, 9)] + [far] * 3
              + [far + (near - far) * k / 8 for k in range(1, 9)] + [near] * 3)
    with Gallery(tmp_path / "g.db") as gallery:
        gallery.enroll("Tony_Blair", lfw_image(lfw_dir, "Tony_Blair", 2))
        recognizer = Recognizer(gallery)
        shown, events = [], []
        for i, image in enumerate(frames):
            faces, new = recognizer.process(VideoFrame(i, i / 25, image.astype(np.uint8)))
            assert [f.track for f in faces] == [1]
            shown.append((faces[0].name, faces[0].distance))
            events.append([e.kind for e in new])
        threshold = gallery.threshold
    first_past = next(i for i, (_, d) in enumerate(shown) if d > threshold)
    assert shown[first_past - 1][0] == "Tony_Blair" and shown[first_past][0] is None, shown
    assert "unnamed" not in events[first_past], events  # hidden on the frame, not yet dropped
    assert shown[-1][0] == "Tony_Blair" and shown[-1][1] <= threshold, shown


def test_a_newcomer_in_a_large_frame_is_found_within_a_few_frames(lfw_dir):
    """Above 1280x720 a full detection runs every ``LARGE_EVERY`` frames (it was every 11th at
    1080p: on the real clip a newcomer waited 9 frames for it) and only adds faces no track covers:
    a 100 px face that comes into a 1080p frame beside a tracked one gets a track within
    ``LARGE_EVERY`` - 1 frames, and the tracked face keeps its id."""
    from faceprint.video.engine import LARGE_EVERY

    before = np.full((1080, 1920, 3), 110, np.uint8)
    before[300:550, 300:550] = load_image(lfw_image(lfw_dir, "Colin_Powell", 1))
    after = before.copy()
    after[600:700, 1400:1500] = cv2.resize(load_image(lfw_image(lfw_dir, "Tony_Blair", 6)), (100, 100),
                                           interpolation=cv2.INTER_AREA)
    recognizer, seen = Recognizer(None), {}
    for i in range(2 + LARGE_EVERY):
        faces, _ = recognizer.process(VideoFrame(i, i / 25, before if i < 2 else after))
        assert faces[0].track == 1
        for f in faces[1:]:
            seen.setdefault(f.track, i)
    assert seen and min(seen.values()) - 2 <= LARGE_EVERY - 1, seen


def test_capture_refuses_blurred_and_turned_faces(lfw_dir):
    image = load_image(lfw_image(lfw_dir, "Colin_Powell", 1))
    face = get_pipeline().detect(image)[0]
    assert turn(face) < MAX_TURN and box_sharpness(image, face) > MIN_SHARPNESS
    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    assert box_sharpness(blurred, face) < MIN_SHARPNESS
    # a face whose nose sits well off the eyes' midline is turned away
    eyes_mid = (face.landmarks["left_eye"][0] + face.landmarks["right_eye"][0]) / 2
    eye_distance = face.landmarks["right_eye"][0] - face.landmarks["left_eye"][0]
    turned = type(face)(face.box, face.score, {**face.landmarks,
                                               "nose": (eyes_mid + 0.5 * eye_distance, face.landmarks["nose"][1])})
    assert turn(turned) > MAX_TURN


def _scenario(tmp_path: Path, lfw: Path, name: str, seed: int = 0):
    clip = make_scenario(name, lfw, tmp_path / f"{name}.mp4", seed=seed)
    db = tmp_path / f"{name}.db"
    with Gallery(db) as g:
        _enrol_unseen(g, lfw, clip, list(DEFAULT_ENROLLED))
    return clip, db


@pytest.mark.parametrize("seed", [0, 1])
def test_a_stranger_cut_in_where_an_enrolled_person_was_is_never_given_their_name(tmp_path, lfw_dir, seed):
    """Issue 11: after a hard cut, the enrolled person's track was re-placed onto the stranger who stood
    where the prediction pointed, and kept the name to the end of the clip."""
    clip, db = _scenario(tmp_path, lfw_dir, "cut_replace", seed)
    truth = load_truth(clip.truth)
    cut = next(t["frame"] for t in truth if t["cut"])
    person = DEFAULT_ENROLLED[0]
    with Gallery(db) as gallery:
        run = Watch(clip.video, gallery)
        results = list(run)
    assert any(f.name == person for r in results[:cut] for f in r.faces)  # named before the cut
    assert not [r.index for r in results[cut:] if any(f.name == person for f in r.faces)]
    before = {f.track for f in results[cut - 1].faces}
    assert before and not before & {f.track for r in results[cut:] for f in r.faces}  # every track ended at the cut
    events = [e for r in results for e in r.events] + run.final_events
    assert {e.track for e in events if e.kind == "leave" and e.frame == cut} == before


def test_a_face_turning_to_the_camera_is_named_at_once(tmp_path, lfw_dir):
    """Issue 11: a track that voted "unknown" while the face was in profile took seconds to name it
    once it faced the camera. Goal: named within 2 frames (at most 5) of the first frame whose
    single-image identification is clearly (0.8 x threshold) the person."""
    clip, db = _scenario(tmp_path, lfw_dir, "profile_then_frontal")
    with Gallery(db) as gallery:
        report = video_report(clip.video, gallery, clip.truth)
    delay = report["reference"]["time_to_name"]
    assert delay["stretches"] >= 1 and delay["never"] == 0, delay
    assert delay["median"] <= 2 and delay["max"] <= 5, delay
    assert report["truth"]["wrong_names"] == 0
    turned = [t["frame"] for t in load_truth(clip.truth) if t["faces"] and not t["faces"][0]["clear"]]
    assert len(turned) >= 25  # the clip does start in profile, for a second or more


def test_eval_video_without_truth_agrees_with_the_truth(scene, tmp_path):
    """`faceprint eval video` scores watch against frame-by-frame identification; on a generated clip
    that estimate is within 2 points of the accuracy the truth file gives. The plain-text report is
    checked on the clip's first second (every run identifies every frame)."""
    clip, db = scene
    done = subprocess.run([FACEPRINT, "eval", "video", str(clip.video), "--db", str(db), "--truth", str(clip.truth),
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ref, truth = report["reference"], report["truth"]
    assert abs(ref["agreement"] - truth["accuracy"]) <= 0.02, (ref, truth)
    assert ref["recall"] >= 0.95 and ref["contradiction_rate"] <= 0.005, ref
    assert truth["wrong_names"] == 0 and report["frames"] == clip.frames and report["fps"] > 0
    listed = ref["disagreements"]
    assert sum(d["kind"] == "contradiction" for d in listed) == ref["contradictions"]
    missed = [d for d in listed if d["reference"]["name"] is not None]  # some may be contradictions too
    assert len(missed) == round((1 - ref["recall"]) * ref["named_by_reference"]), (missed, ref)
    start = _first_frames(clip.video, tmp_path / "start.mp4", 25)
    done = subprocess.run([FACEPRINT, "eval", "video", str(start), "--db", str(db), "--draw", str(tmp_path / "seen")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "against frame-by-frame identification" in text
    assert f"{len(list((tmp_path / 'seen').glob('frame-*.jpg')))} frame(s) drawn into" in text
    done = subprocess.run([FACEPRINT, "eval", "video", str(clip.video), "--db", str(db), "--truth",
                           str(clip.video.with_suffix(".nope"))], capture_output=True, text=True)
    assert done.returncode == 1 and "no such truth file" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([FACEPRINT, "eval", "video", str(clip.video), "--db", str(db), "--draw", str(clip.truth)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "not a folder" in done.stderr and "Traceback" not in done.stderr


def _first_frames(video: Path, out: Path, count: int) -> Path:
    read = cv2.VideoCapture(str(video))
    size = (int(read.get(cv2.CAP_PROP_FRAME_WIDTH)), int(read.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    write = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), read.get(cv2.CAP_PROP_FPS), size)
    for _ in range(count):
        ok, frame = read.read()
        assert ok
        write.write(frame)
    read.release()
    write.release()
    return out


@pytest.mark.skipif(not CROWD.is_file(), reason=f"real footage not found at {CROWD}")
def test_real_footage_one_walker_one_track(tmp_path):
    """The real 1080p crowd clip: enrol one walker from a crop of an early frame; the tracker keeps
    them on one id wherever frame-by-frame identification names them, names nearly all of those
    face-frames, and hardly ever shows the name where frame-by-frame confidently says otherwise."""
    with Gallery(tmp_path / "g.db") as gallery:
        enrol_from_frame(gallery, CROWD, "walker", frame=5)
        report = video_report(CROWD, gallery)
    ref = report["reference"]
    assert report["frames"] == 105 and ref["named_by_reference"] >= 20
    assert ref["tracks_per_person"] == {"walker": 1}, ref
    assert ref["recall"] >= 0.9 and ref["contradiction_rate"] <= 0.01, ref
    # each frame where the two disagree, drawn to be judged by eye: both answers on the frame
    listed = ref["disagreements"]
    drawn = draw_disagreements(CROWD, listed, tmp_path / "frames")
    assert [p.name for p in drawn] == [f"frame-{i:05d}.jpg" for i in sorted({d["frame"] for d in listed})]
    d = next(d for d in listed if d["watch"] is not None)
    image, raw = load_image(tmp_path / "frames" / f"frame-{d['frame']:05d}.jpg"), _frame(CROWD, d["frame"])
    assert image.shape == raw.shape == (1080, 1920, 3)
    x1, y1, x2, _ = (int(v) for v in d["watch"]["box"])
    assert np.abs(image[y1 - 30:y1 - 5, x1:x2].astype(int) - raw[y1 - 30:y1 - 5, x1:x2]).mean() > 40  # watch's label
    x1, _, x2, y2 = (int(v) for v in d["reference"]["box"])
    assert np.abs(image[y2 + 5:y2 + 30, x1:x2].astype(int) - raw[y2 + 5:y2 + 30, x1:x2]).mean() > 40  # the other's


@pytest.mark.skipif(not CROWD.is_file(), reason=f"real footage not found at {CROWD}")
def test_real_footage_everyone_enrolled_is_named_soon_and_hardly_contradicted(tmp_path):
    """The real clip with every good face of frame 5 enrolled (five people, the benchmark's second
    gallery): `watch` names at least 95% of the face-frames frame-by-frame identification names,
    a person clearly in view waits at most 5 frames at the 95th percentile (a newcomer used to
    wait 9 for the next full detection), and a name shown where frame-by-frame confidently says
    otherwise stays rare."""
    with Gallery(tmp_path / "g.db") as gallery:
        assert len(enrol_everyone(gallery, CROWD, frame=5)) >= 3
        ref = video_report(CROWD, gallery)["reference"]
    assert ref["named_by_reference"] >= 200, ref["named_by_reference"]
    assert ref["recall"] >= 0.95 and ref["time_to_name"]["p95"] <= 5, ref
    assert ref["contradiction_rate"] <= 0.01, ref


def _frame(video: Path, index: int) -> np.ndarray:
    return next(f.image for f in Source(video, live=False).frames() if f.index == index)


def test_time_to_name_counts_a_newcomer_from_its_first_clear_frame():
    """Time to name is what a person in front of the camera waits: from the first frame that
    frame-by-frame identification clearly matches them, whether or not `watch` has a track there yet
    (before, a face not yet tracked was not counted at all); a person named by then counts 0 once,
    and one never named counts as never."""
    box = [100.0, 100.0, 180.0, 180.0]
    clear = {"box": box, "name": "ann", "nearest": "ann", "distance": 0.2, "quality": 0.9}
    marginal = dict(clear, distance=0.55)
    bob = {"box": [300.0, 100.0, 380.0, 180.0], "name": "bob", "nearest": "bob", "distance": 0.2, "quality": 0.9}
    shown = lambda name: {"track": 1, "box": box, "name": name}  # noqa: E731
    reference = [[marginal], [clear], [clear], [clear], [clear], [clear, bob], [clear, bob]]
    frames = [[], [], [], [shown(None)], [shown("ann")], [shown("ann")], [shown("ann")]]
    t = video_against_reference(reference, frames, threshold=0.59)["time_to_name"]
    assert t["delays"] == [3] and t["never"] == 1 and t["stretches"] == 2, t  # ann waited 3 frames; bob never named
    # named on (or before) its first clear frame: one 0; the name lost on a clear face later: a new wait
    reference = [[marginal], [clear], [clear], [clear], [clear]]
    frames = [[shown("ann")], [shown("ann")], [shown(None)], [shown(None)], [shown("ann")]]
    t = video_against_reference(reference, frames, threshold=0.59)["time_to_name"]
    assert t["delays"] == [0, 2] and t["never"] == 0, t


def test_each_contradiction_and_miss_is_listed_with_both_answers():
    """What `eval video` lists to be looked at frame by frame: a name shown where frame-by-frame
    confidently says nobody (a contradiction), a face frame-by-frame names that watch leaves unknown
    or has no track on (missed), and not a name carried onto a face too poor to judge."""
    box, other = [100.0, 100.0, 180.0, 180.0], [300.0, 100.0, 380.0, 180.0]
    ann = {"box": box, "name": "ann", "nearest": "ann", "distance": np.float32(0.3), "quality": 0.9}
    nobody = dict(ann, name=None, distance=0.9)  # past 1.15x the threshold, on a good face
    poor = dict(nobody, quality=0.2)
    shown = lambda name, b=box, d=0.3: {"track": 1, "box": b, "name": name, "distance": d}  # noqa: E731
    reference = [[ann], [nobody], [poor], [ann, dict(ann, box=other)]]
    frames = [[shown("ann")], [shown("ann")], [shown("ann")], [shown(None, d=0.7)]]
    r = video_against_reference(reference, frames, threshold=0.59)
    listed = [(d["frame"], d["kind"], d["watch"] and d["watch"]["name"], d["reference"]["name"])
              for d in r["disagreements"]]
    assert listed == [(1, "contradiction", "ann", None), (3, "missed", None, "ann"), (3, "missed", None, "ann")]
    assert r["disagreements"][2]["watch"] is None and r["contradictions"] == 1 and r["carried"] == 1
    assert json.loads(json.dumps(r))["disagreements"][0]["reference"]["distance"] == 0.9
    from faceprint.cli.eval import _disagreement  # how `eval video` prints them, one line each

    assert [_disagreement(d) for d in r["disagreements"]][:2] == [
        "frame 1: frame-by-frame nobody (nearest ann at 0.900), quality 0.90; watch: track 1, ann (last look 0.300)",
        "frame 3: frame-by-frame ann at 0.300, quality 0.90; watch: track 1, unknown (last look 0.700)"]


@pytest.mark.skipif(not CROWD.is_file(), reason=f"real footage not found at {CROWD}")
def test_enrol_everyone_enrols_each_good_face_of_a_frame_as_its_own_person(tmp_path):
    """`enrol_everyone` (the real-clip benchmark's second gallery): every face of the frame that is
    good enough to be judged becomes a person of its own, numbered left to right, and each is then
    identified as itself in that frame."""
    image = _frame(CROWD, 5)
    with Gallery(tmp_path / "g.db") as gallery:
        names = enrol_everyone(gallery, CROWD, frame=5, prefix="walker")
        faces = gallery.pipeline.detect(image)
        good = sorted((f for f in faces if video_quality(image, f) >= GOOD), key=lambda f: f.box[0])
        assert len(names) == len(good) >= 3 and names[0] == "walker-1", names
        assert sorted(p["name"] for p in gallery.people()) == sorted(names)
        found = {tuple(m.face.box): m for m in gallery.identify(image)}  # the same detector: the same boxes
    assert [found[tuple(f.box)].name for f in good] == names, [(m.name, m.distance) for m in found.values()]


def test_enrol_everyone_refuses_a_frame_with_no_good_face(tmp_path, lfw_dir):
    """A frame whose only face is too small to judge (27 px) enrols nobody and says why in one line."""
    from faceprint.errors import FaceprintError

    photo = load_image(lfw_image(lfw_dir, "Colin_Powell", 1))
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[200:240, 300:340] = cv2.resize(photo[60:190, 60:190], (40, 40))
    video = tmp_path / "small.mp4"
    write = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for _ in range(3):
        write.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    write.release()
    with Gallery(tmp_path / "g.db") as gallery:
        assert gallery.pipeline.detect(canvas), "the small face is found, only not good enough"
        with pytest.raises(FaceprintError, match="no face in frame 1 is good enough"):
            enrol_everyone(gallery, video, frame=1)
        assert gallery.people() == []
