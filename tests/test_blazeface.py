"""BlazeFace on real faces, plus a check that the ONNX conversion computes what the .tflite does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.detection.blazeface import KEYPOINTS, BlazeFace, weighted_nms


@pytest.fixture(scope="module")
def detector() -> BlazeFace:
    return BlazeFace()


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def single_faces(lfw_dir: Path, detector: BlazeFace) -> list[np.ndarray]:
    """36 LFW images (different people) that each hold exactly one detectable face.

    Many LFW photos show a second, cut-off person at the border; filtering on the image alone
    keeps the mosaic's expected count honest.
    """
    out = []
    for path in sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[::37]:
        image = _read(path)
        if len(detector.detect(image)) == 1:
            out.append(image)
            if len(out) == 36:
                return out
    pytest.fail("fewer than 36 single-face LFW images found")


def _mosaic(images: list[np.ndarray], k: int) -> np.ndarray:
    return np.concatenate([np.concatenate(images[r * k:(r + 1) * k], axis=1) for r in range(k)], axis=0)


def _one_per_cell(faces, k: int, cell: int = 250) -> bool:
    counts = np.zeros((k, k), int)
    for f in faces:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        counts[int(cy // cell), int(cx // cell)] += 1
    return bool((counts == 1).all())


def _check_geometry(face) -> None:
    lm = face.landmarks
    assert set(lm) == set(KEYPOINTS)
    x1, y1, x2, y2 = face.box
    for name in ("left_eye", "right_eye", "nose", "mouth"):
        assert x1 <= lm[name][0] <= x2 and y1 <= lm[name][1] <= y2, name
    # Image-side naming: ear, eye, eye, ear from left to right on an upright face.
    assert lm["left_ear"][0] < lm["left_eye"][0] < lm["nose"][0] < lm["right_eye"][0] < lm["right_ear"][0]
    eyes_y = (lm["left_eye"][1] + lm["right_eye"][1]) / 2
    assert eyes_y < lm["nose"][1] < lm["mouth"][1]


def test_astronaut_one_face(detector: BlazeFace, astronaut: np.ndarray) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.detector == "blazeface" and face.score > 0.8
    # Eileen Collins' face sits around x 175-280, y 70-175 in the 512x512 portrait.
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < 200 and 250 < x2 < 300 and 50 < y1 < 100 and 150 < y2 < 200
    _check_geometry(face)
    eyes = np.subtract(face.landmarks["right_eye"], face.landmarks["left_eye"])
    assert 30 < np.hypot(*eyes) < 55  # interocular distance for a ~105 px face


def test_mirrored_face_keeps_image_side_names(detector: BlazeFace, astronaut: np.ndarray) -> None:
    """Flipping the image must mirror the box and keep ``left_eye`` on the image's left."""
    face = detector.detect(astronaut)[0]
    flipped = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(flipped) == 1
    _check_geometry(flipped[0])
    w = astronaut.shape[1]
    mirrored = (w - face.box[2], face.box[1], w - face.box[0], face.box[3])
    assert np.allclose(flipped[0].box, mirrored, atol=4)


def test_letterbox_maps_back_to_pixels(detector: BlazeFace, astronaut: np.ndarray) -> None:
    """A non-square crop finds the same face, shifted by the crop offset (within a few pixels)."""
    face = detector.detect(astronaut)[0]
    crop = np.ascontiguousarray(astronaut[20:320, 100:300])  # 300x200, letterboxed left and right
    faces = detector.detect(crop)
    assert len(faces) == 1
    expected = np.subtract(face.box, (100, 20, 100, 20))
    assert np.allclose(faces[0].box, expected, atol=6)
    for name in KEYPOINTS[:4]:
        assert np.allclose(faces[0].landmarks[name], np.subtract(face.landmarks[name], (100, 20)), atol=4)


@pytest.mark.parametrize("image", [
    np.zeros((480, 640, 3), np.uint8),
    np.full((250, 250, 3), 255, np.uint8),
    np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8),
], ids=["black", "white", "noise"])
def test_blank_image_has_no_face(detector: BlazeFace, image: np.ndarray) -> None:
    assert detector.detect(image) == []


def test_lfw_mosaic_3x3(detector: BlazeFace, single_faces: list[np.ndarray]) -> None:
    """9 faces in a 750x750 mosaic (faces ~28 px at the 192 input): all found in one pass.

    At 4x4 (~21 px) the single pass starts to miss faces; that is what ``tiles`` is for.
    """
    faces = detector.detect(_mosaic(single_faces, 3))
    assert len(faces) == 9 and _one_per_cell(faces, 3)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for f in faces:
        _check_geometry(f)


def test_lfw_mosaic_6x6_with_tiles(single_faces: list[np.ndarray]) -> None:
    """36 faces in a 1500x1500 mosaic: the whole-image pass finds about two thirds, a 3x3 tile
    pass recovers the rest, and the weighted merge leaves one face per person."""
    mosaic = _mosaic(single_faces, 6)
    assert len(BlazeFace().detect(mosaic)) < 36  # the reason tiling exists
    faces = BlazeFace(tiles=3).detect(mosaic)
    assert len(faces) == 36 and _one_per_cell(faces, 6)


def test_score_threshold(astronaut: np.ndarray) -> None:
    assert BlazeFace(score_threshold=0.999).detect(astronaut) == []
    with pytest.raises(ValueError):
        BlazeFace(score_threshold=1.5)


def test_weighted_nms_blends_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    points = np.stack([boxes[:, :2], boxes[:, 2:]], axis=1)[:, :, :]
    out = weighted_nms(boxes, scores, points, 0.3)
    assert len(out) == 2
    (box, score, pts), (box2, score2, _) = out
    assert score == pytest.approx(0.9) and score2 == pytest.approx(0.8)
    assert np.allclose(box, [0.25, 0.25, 10.25, 10.25])  # (0.9*0 + 0.3*1) / 1.2
    assert np.allclose(pts[0], [0.25, 0.25]) and np.allclose(box2, boxes[2])


@pytest.mark.parametrize("name", ["blazeface", "blazeface-short"])
def test_conversion_matches_tflite_interpreter(name: str, astronaut: np.ndarray, lfw_dir: Path) -> None:
    """The cached ONNX model and MediaPipe's .tflite, run by LiteRT, agree on real inputs."""
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (reference TFLite interpreter) is not installed")
    from faceprint import zoo
    from faceprint.detection import get_detector

    detector = get_detector(name)
    interpreter = litert.Interpreter(model_path=str(zoo.get(name).path("model")))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    outs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    images = [astronaut] + [_read(p) for p in sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[::500]]
    for image in images:
        canvas = detector._letterbox(image)[0]
        x = (canvas.astype(np.float32) * (2.0 / 255.0) - 1.0)[None]
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        ref = [interpreter.get_tensor(outs[name]) for name in detector._outputs]
        feed = x.transpose(0, 3, 1, 2) if detector._nchw else x
        got = detector._session.run(detector._outputs, {detector._input: np.ascontiguousarray(feed)})
        # regressor is in input pixels (0..192 or 0..128), classifier in logits
        assert np.abs(got[0] - ref[0]).max() < 5e-3
        assert np.abs(got[1] - ref[1]).max() < 5e-4


@pytest.mark.parametrize("shape", [(720, 1280), (1500, 1500), (2000, 600)])
def test_tile_windows_cover_the_image(shape: tuple[int, int]) -> None:
    detector = BlazeFace(tiles=3)
    h, w = shape
    covered = np.zeros(shape, bool)
    for x, y, side in detector.windows(h, w, 3):
        assert 0 <= x and 0 <= y and x + side <= max(w, side) and y + side <= max(h, side)
        covered[y:y + side, x:x + side] = True
    assert covered.all()


def test_registered_by_name() -> None:
    from faceprint.detection import get_detector

    assert isinstance(get_detector("blazeface"), BlazeFace)


def test_no_tiles_on_small_images(astronaut: np.ndarray) -> None:
    detector = BlazeFace(tiles=4)
    assert detector.windows(250, 250, 4) == []
    windows = detector.windows(512, 512, 4)  # 3 across: 205 px windows, still >= 192
    assert len(windows) == 9 and all(side >= 192 for *_, side in windows)
    assert len(detector.detect(astronaut)) == 1


def test_short_range_finds_faces_that_fill_the_frame(lfw_dir: Path) -> None:
    """The short-range model finds the LFW faces the full-range one misses, with sane keypoints,
    and its anchors follow MediaPipe's two-map layout (16x16 x 2 + 8x8 x 6 = 896)."""
    from faceprint.detection import get_detector
    from faceprint.detection.blazeface import BlazeFaceShort, _anchors

    short = get_detector("blazeface-short")
    assert isinstance(short, BlazeFaceShort) and short.size == 128 and len(short._anchors) == 896
    centres = _anchors(896, 128)
    assert np.allclose(centres[:2], [[0.5 / 16, 0.5 / 16]] * 2) and np.allclose(centres[512], [0.5 / 8, 0.5 / 8])
    full = BlazeFace()
    for name, n in [("Alex_Barros", 2), ("Colin_Montgomerie", 4), ("Grady_Little", 1)]:
        image = _read(lfw_dir / "images" / name / f"{name}_{n:04d}.jpg")
        assert full.detect(image) == []
        faces = short.detect(image)
        assert len(faces) == 1 and faces[0].detector == "blazeface-short" and faces[0].score > 0.7
        _check_geometry(faces[0])
        x1, y1, x2, y2 = faces[0].box
        assert 60 < (x1 + x2) / 2 < 190 and 60 < (y1 + y2) / 2 < 190  # LFW centres the face
