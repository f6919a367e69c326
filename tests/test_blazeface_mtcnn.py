"""The hybrid detector on real faces: MTCNN's landmarks, BlazeFace's proposals, MTCNN where BlazeFace misses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceprint.detection import DEFAULT_DETECTOR, get_detector
from faceprint.detection.blazeface_mtcnn import BlazeFaceMTCNN
from faceprint.boxes import overlap
from faceprint.errors import FaceprintError, ImageError

from .conftest import CROWD, lfw_image
from .test_mtcnn import GRID_PEOPLE, SURE, _check_landmarks, _read

# LFW images where BlazeFace alone finds nothing (the face fills too much of the frame for it)
BLAZEFACE_MISSES = [("Alex_Barros", 2), ("Colin_Montgomerie", 4), ("Grady_Little", 1)]


@pytest.fixture(scope="module")
def hybrid() -> BlazeFaceMTCNN:
    return get_detector("blazeface-mtcnn")


def test_is_the_default():
    assert DEFAULT_DETECTOR == "blazeface-mtcnn"


def test_landmarks_agree_with_mtcnn(hybrid, lfw_dir):
    mtcnn = get_detector("mtcnn")
    worst = []
    for name in GRID_PEOPLE:
        image = _read(lfw_image(lfw_dir, name, 1))
        ours, theirs = hybrid.detect(image)[0], mtcnn.detect(image)[0]
        assert ours.detector == "blazeface-mtcnn" and ours.score > 0.99
        _check_landmarks(ours)
        worst.append(max(np.hypot(*np.subtract(ours.landmarks[k], theirs.landmarks[k])) for k in theirs.landmarks))
    # ONet sees a slightly different crop, so the points move by a pixel or two on ~100 px faces
    assert np.median(worst) < 3.0 and max(worst) < 10.0, worst


def test_falls_back_to_mtcnn_where_blazeface_misses(hybrid, lfw_dir):
    blazeface = get_detector("blazeface")
    for name, n in BLAZEFACE_MISSES:
        image = _read(lfw_image(lfw_dir, name, n))
        assert blazeface.detect(image) == []
        faces = hybrid.detect(image)
        assert len(faces) == 1 and faces[0].detector == "blazeface-mtcnn"
        _check_landmarks(faces[0])


def test_fallback_on_a_large_image_finds_the_face_filling_it(hybrid, lfw_dir):
    """The fallback runs on the image shrunk to 1280 px; boxes come back in the image's own pixels."""
    name, n = BLAZEFACE_MISSES[0]
    image = _read(lfw_image(lfw_dir, name, n))
    big = cv2.resize(image, (2500, 2500), interpolation=cv2.INTER_CUBIC)
    assert get_detector("blazeface").detect(big) == []
    small, large = hybrid.detect(image)[0], hybrid.detect(big)
    assert len(large) == 1
    a, b = np.array(large[0].box) / 10, np.array(small.box)
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    assert inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter) > 0.85  # same face, same place
    _check_landmarks(large[0])


def test_grid_of_lfw_faces(hybrid, lfw_dir):
    tiles = [_read(lfw_image(lfw_dir, name, 1)) for name in GRID_PEOPLE]
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(3)], axis=0)
    faces = [f for f in hybrid.detect(grid) if f.score >= SURE]
    cells = {(int((f.box[1] + f.box[3]) / 2 // 250), int((f.box[0] + f.box[2]) / 2 // 250)) for f in faces}
    assert len(faces) == len(GRID_PEOPLE) and len(cells) == len(GRID_PEOPLE)
    for face in faces:
        _check_landmarks(face)


def test_the_short_range_hybrid_places_the_same_landmarks_at_half_the_proposal_cost(hybrid, lfw_dir):
    """``blazeface-short-mtcnn``: BlazeFace's 128 px short-range model makes the whole-image pass,
    the same ONet places the points, so its faces align like the default's; in a grid that needs
    tiles, the full-range tiles find what the short-range pass does not."""
    from faceprint.detection.blazeface import BlazeFaceShort
    from faceprint.detection.blazeface_mtcnn import BlazeFaceShortMTCNN

    short = get_detector("blazeface-short-mtcnn")
    assert isinstance(short, BlazeFaceShortMTCNN) and short.whole_pass is BlazeFaceShort
    assert short.fingerprint != hybrid.fingerprint
    worst = []
    for name in GRID_PEOPLE:
        image = _read(lfw_image(lfw_dir, name, 1))
        ours, theirs = short.detect(image), hybrid.detect(image)[0]
        assert len(ours) == 1 and ours[0].detector == "blazeface-short-mtcnn" and ours[0].score > 0.99
        _check_landmarks(ours[0])
        worst.append(max(np.hypot(*np.subtract(ours[0].landmarks[k], theirs.landmarks[k])) for k in theirs.landmarks))
    # ONet re-places each box; BlazeFace's two models give it slightly different boxes to start from
    assert np.median(worst) < 3.0 and max(worst) < 10.0, worst
    tiles = [_read(lfw_image(lfw_dir, name, 1)) for name in GRID_PEOPLE]
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(3)], axis=0)
    # ~100 px faces in 1000 px, a tenth of the side: one 128 px pass finds only some, the tiles all
    assert len(BlazeFaceShort().detect(grid)) < len(GRID_PEOPLE)
    faces = [f for f in short.detect(grid) if f.score >= SURE]
    cells = {(int((f.box[1] + f.box[3]) / 2 // 250), int((f.box[0] + f.box[2]) / 2 // 250)) for f in faces}
    assert len(faces) == len(GRID_PEOPLE) and len(cells) == len(GRID_PEOPLE)
    with pytest.raises(FaceprintError, match="cannot be exported"):
        short.export_spec()


@pytest.mark.skipif(not CROWD.is_file(), reason=f"real footage not found at {CROWD}")
def test_the_short_range_hybrid_finds_the_defaults_faces_in_real_crowd_footage(hybrid):
    """Small, downcast, blurred faces of real 1080p footage: the full-range tiles find them (with
    short-range tiles the detector lost 45 of 108 such faces, benchmarks/crowd_detection.py)."""
    from faceprint.video import Source

    short = get_detector("blazeface-short-mtcnn")
    found = 0
    for frame in Source(CROWD, live=False).frames():
        if frame.index in (0, 50, 100):
            ours, theirs = short.detect(frame.image), hybrid.detect(frame.image)
            assert len(theirs) >= 4
            assert overlap(np.array([f.box for f in theirs]), np.array([f.box for f in ours])).max(axis=1).min() >= 0.5
            found += len(theirs)
    assert found >= 15


def test_a_sweep_spreads_the_tiled_passes_over_steps(hybrid, lfw_dir, monkeypatch):
    """Video's search for newcomers: each step runs the whole-image pass and at most SWEEP_TILES
    windows, and a round of steps finds every face a full detection finds."""
    from faceprint.detection.blazeface import BlazeFace
    from faceprint.detection.blazeface_mtcnn import SWEEP_TILES

    tiles = [_read(lfw_image(lfw_dir, name, 1)) for name in GRID_PEOPLE]
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(3)], axis=0)

    def cells(faces):
        return {(int((f.box[1] + f.box[3]) / 2 // 250), int((f.box[0] + f.box[2]) / 2 // 250))
                for f in faces if f.score >= SURE}
    passes = []
    infer = BlazeFace._infer
    monkeypatch.setattr(BlazeFace, "_infer", lambda self, *a: passes.append(1) or infer(self, *a))
    full = cells(hybrid.detect(grid))
    windows = len(passes) - 1
    assert len(full) == len(GRID_PEOPLE) and windows > SWEEP_TILES  # the grid needs more tiles than a step runs
    found, steps = set(), -(-windows // SWEEP_TILES)
    for step in range(steps):
        passes.clear()
        found |= cells(hybrid.sweep(grid, step))
        assert len(passes) <= 1 + SWEEP_TILES
    assert found == full


def test_small_faces_in_a_large_image_need_tiles(astronaut):
    # a large face (which BlazeFace finds in one pass, so no fallback) and a ~55 px one, 1/29 of
    # the long side, far below one pass's reach: tiled passes down to min_face_size find it
    canvas = np.full((1200, 1600, 3), 90, np.uint8)
    canvas[100:700, 100:700] = cv2.resize(astronaut, (600, 600), interpolation=cv2.INTER_AREA)
    canvas[700:1000, 1100:1400] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)

    def small(detector):
        return [f for f in detector.detect(canvas) if f.score >= SURE and f.box[0] > 1000]

    assert len([f for f in BlazeFaceMTCNN(max_tiles=1).detect(canvas) if f.score >= SURE]) == 1
    assert small(BlazeFaceMTCNN(max_tiles=1)) == []
    found = small(BlazeFaceMTCNN(min_face_size=40))
    assert len(found) == 1
    x1, y1, x2, y2 = found[0].box
    assert 1100 < x1 < x2 < 1400 and 700 < y1 < y2 < 1000
    _check_landmarks(found[0])


@pytest.mark.parametrize("kind", ["black", "noise"])
def test_no_faces_in_blank_or_noise(hybrid, kind):
    rng = np.random.default_rng(7)
    image = np.zeros((480, 640, 3), np.uint8) if kind == "black" else rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert hybrid.detect(image) == []


def test_rejects_bad_input(hybrid):
    with pytest.raises(ImageError):
        hybrid.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError):
        hybrid.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        BlazeFaceMTCNN(min_face_size=5)
