"""Generated test clips: a readable video whose truth matches what a detector sees, what real footage
adds (cuts, camera moves, blur, drift, compression, faces not yet recognisable) with truth that
follows it, and a loopback MJPEG stream that OpenCV reads like a camera (real-time, ends cleanly,
never hangs)."""

from __future__ import annotations

import hashlib
import json
import time
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.errors import FaceprintError
from faceprint.evaluation import load_truth
from faceprint.testing.mjpeg import serve_mjpeg
from faceprint.testing.synth import CLEAR_YAW, Clip, main, make_clip, make_scenario

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


# -- what real footage adds: cuts, camera, blur, drift, compression, faces not yet recognisable ------------
SMALL = (320, 240)


def scene(lfw_dir: Path, out: Path, **effects) -> Clip:
    """The same 3 s scene (seed 3), filmed plainly or with ``effects``."""
    return make_clip(lfw_dir, out, enrolled=ENROLLED, strangers=STRANGERS, size=SMALL, seconds=3, faces=2, seed=3,
                     occlusion=False, **effects)


@pytest.fixture(scope="module")
def clean(lfw_dir: Path, tmp_path_factory) -> Clip:
    return scene(lfw_dir, tmp_path_factory.mktemp("clean") / "clean.mp4")


def boxes_by_track(truth: list[dict]) -> dict[tuple[int, int], list[float]]:
    return {(r["frame"], f["track"]): f["box"] for r in truth for f in r["faces"]}


@pytest.fixture(scope="module")
def pipeline():
    from faceprint.pipeline import get_pipeline

    return get_pipeline()


def found_at(pipeline, bgr: np.ndarray, box: list[float]) -> list:
    """The detected faces overlapping ``box`` enough to be the face the truth puts there."""
    faces = pipeline.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return [f for f in faces if iou(box, f.box) >= 0.4]


def test_truth_has_the_new_fields_and_plain_clips_stay_plain(clip):
    truth = load_truth(clip.truth)
    assert clip.cuts == () and {r["shot"] for r in truth} == {0} and not any(r["cut"] for r in truth)
    faces = [f for r in truth for f in r["faces"]]
    assert all(f["yaw"] == 0 and f["blur"] == 0 for f in faces)
    assert all(f["clear"] == (not f["occluded"]) for f in faces)  # faces here are big and frontal


def test_camera_pans_and_zooms_and_the_truth_follows(lfw_dir, tmp_path, pipeline, clean):
    moved = scene(lfw_dir, tmp_path / "camera.mp4", camera=True)
    plain, seen = load_truth(clean.truth), load_truth(moved.truth)
    # the same people at the same sizes in the scene: the box heights differ by the zoom alone
    a, b = boxes_by_track(plain), boxes_by_track(seen)
    zoom = np.array([(b[k][3] - b[k][1]) / (a[k][3] - a[k][1]) for k in a.keys() & b.keys()
                     if 0 < b[k][1] and b[k][3] < SMALL[1] and 0 < a[k][1] and a[k][3] < SMALL[1]])
    assert len(zoom) > 50 and 0.8 < zoom.min() and zoom.max() < 1.3 and np.ptp(zoom) > 0.05
    frames = frames_of(moved.video)
    shifts = [cv2.phaseCorrelate(*(cv2.cvtColor(frames[i + d], cv2.COLOR_BGR2GRAY).astype(np.float32)
                                   for d in (0, 10)))[0] for i in range(0, 60, 10)]
    assert max(np.hypot(*s) for s in shifts) > 3  # the background moves: the camera pans
    hits = [bool(found_at(pipeline, frames[i], f["box"])) for i in range(0, moved.frames, 8)
            for f in seen[i]["faces"] if f["clear"]]
    assert len(hits) >= 15 and np.mean(hits) >= 0.9  # a detector finds the faces where the truth says


def test_effects_change_the_pictures_not_the_scene(lfw_dir, tmp_path, clean):
    drifted = scene(lfw_dir, tmp_path / "drift.mp4", drift=True, jpeg=20)
    assert clean.truth.read_text() == drifted.truth.read_text()  # the same scene and truth
    plain, treated = frames_of(clean.video), frames_of(drifted.video)
    brightness = np.array([[f.mean() for f in plain], [f.mean() for f in treated]])
    assert np.ptp(brightness[1] - brightness[0]) > 5  # exposure wanders over time
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(float) for f in (plain[40], treated[40])]
    edges = [np.abs(np.diff(g, axis=1)) for g in grey]  # JPEG blocks: steps at every 8th column
    blockiness = [e[:, 7::8][:, :-1].mean() / e[:, 3::8][:, :-1].mean() for e in edges]
    assert blockiness[1] > blockiness[0] + 0.1

    blurred = scene(lfw_dir, tmp_path / "blur.mp4", blur=True)
    smeared = [f for r in load_truth(blurred.truth) for f in r["faces"]]
    assert max(f["blur"] for f in smeared) > 1 and sum(f["blur"] > 0 for f in smeared) > 0.5 * len(smeared)
    sharpness = [cv2.Laplacian(cv2.cvtColor(frames_of(c.video)[30], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
                 for c in (clean, blurred)]
    assert sharpness[1] < sharpness[0]


def test_cut_replace_puts_a_stranger_where_the_enrolled_person_was(lfw_dir, tmp_path, pipeline):
    clip = make_scenario("cut_replace", lfw_dir, tmp_path / "cut.mp4", enrolled=ENROLLED, strangers=STRANGERS,
                         size=SMALL, seed=2)
    truth = load_truth(clip.truth)
    assert clip.cuts == (50,) and [r["frame"] for r in truth if r["cut"]] == [50]
    assert [r["shot"] for r in truth] == [0] * 50 + [1] * 50
    before, after = truth[49]["faces"], truth[50]["faces"]
    assert {f["person"] for r in truth[:50] for f in r["faces"]} == {"Tony_Blair"}
    assert not any(f["name"] for r in truth[50:] for f in r["faces"])  # no enrolled face after the cut
    assert {f["track"] for r in truth[:50] for f in r["faces"]}.isdisjoint(
        f["track"] for r in truth[50:] for f in r["faces"])  # tracks end at the cut
    (old,) = before
    new = max(after, key=lambda f: iou(f["box"], old["box"]))
    assert new["person"] == "Hugo_Chavez" and iou(new["box"], old["box"]) > 0.5  # the same place and size
    # real recognition agrees: the enrolled face before the cut, someone else in its place after
    enrolled = pipeline.embed_one(str(lfw_dir / "images" / "Tony_Blair" / "Tony_Blair_0001.jpg")).vector
    frames = frames_of(clip.video)
    distances = []
    for i, box in ((49, old["box"]), (50, new["box"])):
        (face, *_) = found_at(pipeline, frames[i], box)
        rgb = cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB)
        distances.append(1 - float(pipeline.embed(rgb, [face])[0].vector @ enrolled))
    assert distances[0] < pipeline.threshold < distances[1]


def test_profile_then_frontal_is_unrecognisable_then_clear(lfw_dir, tmp_path, pipeline):
    clip = make_scenario("profile_then_frontal", lfw_dir, tmp_path / "turn.mp4", enrolled=ENROLLED, size=SMALL,
                         seed=4)
    truth = load_truth(clip.truth)
    assert clip.frames == 100 and all(len(r["faces"]) == 1 for r in truth)
    faces = [r["faces"][0] for r in truth]
    assert all(abs(f["yaw"]) == 80 and not f["clear"] for f in faces[:50])
    assert all(abs(f["yaw"]) <= 5 and f["clear"] for f in faces[60:])
    assert [f["clear"] for f in faces] == sorted(f["clear"] for f in faces)  # one change, to clear
    # what real recognition makes of it: turned, not named well; facing the camera, named well
    enrolled = pipeline.embed_one(str(lfw_dir / "images" / "Tony_Blair" / "Tony_Blair_0001.jpg")).vector
    frames = frames_of(clip.video)

    def named(i: int) -> bool:
        rgb = cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB)
        found = [f for f in pipeline.detect(rgb) if iou(faces[i]["box"], f.box) >= 0.2]
        return bool(found) and 1 - float(pipeline.embed(rgb, found[:1])[0].vector @ enrolled) < 0.8 * pipeline.threshold

    assert sum(named(i) for i in range(0, 50, 5)) <= 1
    assert all(named(i) for i in range(60, 100, 5))


def test_cuts_recast_and_reframe(lfw_dir, tmp_path):
    clip = make_clip(lfw_dir, tmp_path / "cuts.mp4", enrolled=ENROLLED, strangers=STRANGERS, size=SMALL,
                     seconds=6, faces=2, seed=5, cuts=2, occlusion=False)
    truth = load_truth(clip.truth)
    assert len(clip.cuts) == 2 and [r["frame"] for r in truth if r["cut"]] == list(clip.cuts)
    shots = np.array([r["shot"] for r in truth])
    assert list(np.flatnonzero(np.diff(shots)) + 1) == list(clip.cuts) and min(np.diff([0, *clip.cuts, 150])) >= 25
    for track, faces in tracks(truth).items():
        assert len({shots[f] for f, _ in faces}) == 1  # no track crosses a cut
    frames = frames_of(clip.video)
    change = [np.abs(frames[i].astype(int) - frames[i - 1]).mean() for i in range(1, clip.frames)]
    for cut in clip.cuts:
        before = {f["person"] for f in truth[cut - 1]["faces"]}
        largest = max(truth[cut - 1]["faces"], key=lambda f: f["box"][3] - f["box"][1])
        arrival = max(truth[cut]["faces"], key=lambda f: iou(f["box"], largest["box"]))
        assert arrival["person"] not in before and iou(arrival["box"], largest["box"]) > 0.3
        assert change[cut - 1] > 3 * np.median(change)  # the picture jumps at a cut, not between


def test_an_enrolled_person_keeps_a_photo_unshown_across_shots(lfw_dir, tmp_path):
    clip = make_clip(lfw_dir, tmp_path / "few.mp4", enrolled=["Aaron_Sorkin"], strangers=STRANGERS, size=SMALL,
                     seconds=9, faces=2, seed=1, cuts=8, occlusion=False)  # he has 2 photos
    truth = load_truth(clip.truth)
    assert len({r["shot"] for r in truth for f in r["faces"] if f["person"] == "Aaron_Sorkin"}) >= 4
    assert len(clip.photos_used["Aaron_Sorkin"]) == 1


def test_unclear_arrivals_are_far_or_turned_then_clear(lfw_dir, tmp_path):
    clip = make_clip(lfw_dir, tmp_path / "far.mp4", enrolled=ENROLLED, strangers=STRANGERS, size=(640, 480),
                     seconds=8, faces=3, seed=6, occlusion=False, unclear=1.0)
    by_track = tracks(load_truth(clip.truth))
    for faces in by_track.values():
        first = faces[0][1]
        width = (first["box"][3] - first["box"][1]) * 93 / 122
        assert not first["clear"] and (width < 14 or abs(first["yaw"]) >= 75)
        assert faces[-1][1]["clear"] and faces[-1][0] - faces[0][0] > 1.5 * 25 * 0.9
        flags = [f["clear"] for _, f in faces]
        assert flags.index(True) >= 0.5 * 25  # unclear for a while: at least half a second
    looks_aside = [any(a["clear"] and abs(b["yaw"]) > CLEAR_YAW for (_, a), (_, b) in zip(faces, faces[1:]))
                   for faces in by_track.values()]
    assert any(looks_aside)  # and some look aside later on


def test_same_seed_same_realistic_clip(lfw_dir, tmp_path):
    def mix(name: str, seed: int) -> tuple[str, str, list[str]]:
        c = make_scenario("mix", lfw_dir, tmp_path / f"{name}.mp4", enrolled=ENROLLED, strangers=STRANGERS,
                          size=SMALL, seconds=4, seed=seed)
        return (c.truth.read_text(), hashlib.sha256(c.video.read_bytes()).hexdigest(),
                [hashlib.sha256(f.tobytes()).hexdigest() for f in frames_of(c.video)])

    first, again, other = mix("a", 9), mix("b", 9), mix("c", 10)
    assert first == again  # the same truth, the same file, the same pictures
    assert first[0] != other[0] and first[2][5] != other[2][5]
    assert len({json.loads(line)["shot"] for line in first[0].splitlines()}) == 4  # 3 cuts


def test_presets_and_flags_on_the_command_line(lfw_dir, tmp_path, capsys):
    main(["--lfw", str(lfw_dir), "--out", str(tmp_path / "p.mp4"), "--scenario", "cut_replace", "--size", "320x240",
          "--seconds", "2", "--enrolled", "Tony_Blair", "--strangers", "Hugo_Chavez"])
    assert "50 frames, 320x240" in capsys.readouterr().out  # at least 2 s
    main(["--lfw", str(lfw_dir), "--out", str(tmp_path / "f.mp4"), "--size", "320x240", "--seconds", "2",
          "--faces", "2", "--cuts", "1", "--camera", "--blur", "--drift", "--jpeg", "30", "--unclear", "0.5"])
    assert "cuts at frames" in capsys.readouterr().out
    assert sum(r["cut"] for r in load_truth(tmp_path / "f.truth.jsonl")) == 1
    for bad in (["--cuts", "5"], ["--jpeg", "0"], ["--unclear", "2"]):
        with pytest.raises(SystemExit) as exit_:
            main(["--lfw", str(lfw_dir), "--out", str(tmp_path / "x.mp4"), "--seconds", "2", *bad])
        assert exit_.value.code == 1
    assert "error:" in capsys.readouterr().err
    with pytest.raises(FaceprintError, match="no scenario"):
        make_scenario("nope", lfw_dir, tmp_path / "n.mp4")


def test_clear_faces_are_the_ones_single_images_identify(lfw_dir, tmp_path, pipeline):
    """The truth's ``clear`` flag against real detection and recognition of each frame on its own."""
    from faceprint.boxes import overlap

    clip = make_scenario("mix", lfw_dir, tmp_path / "mix.mp4", enrolled=ENROLLED, strangers=STRANGERS, size=SMALL,
                         seed=1)
    names = [p for p in ENROLLED if p in clip.photos_used]
    gallery = np.stack([pipeline.embed_one(str(next(p for p in sorted((lfw_dir / "images" / n).glob("*.jpg"))
                                                    if p not in clip.photos_used[n]))).vector for n in names])
    right = {True: [], False: []}
    for i, (bgr, record) in enumerate(zip(frames_of(clip.video), load_truth(clip.truth))):
        faces = [f for f in record["faces"] if not f["occluded"]]
        if i % 3 or not faces:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        found = pipeline.embed(rgb)
        ious = overlap([f["box"] for f in faces], [e.face.box for e in found])
        for face, row in zip(faces, ious):
            said = "missed"
            if len(found) and row.max() >= 0.3:
                d = 1 - gallery @ found[int(row.argmax())].vector
                said = names[int(d.argmin())] if d.min() <= pipeline.threshold else None
            right[face["clear"]].append(said == face["name"])
    assert len(right[True]) >= 100 and len(right[False]) >= 50
    assert np.mean(right[True]) >= 0.93 and np.mean(right[False]) <= 0.3  # measured: 97% and 8%
