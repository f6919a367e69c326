"""MTCNN on real faces: boxes and landmarks where the faces are, one detection per face, none on clutter.

``SURE`` is the score floor for "exactly N faces" checks. MTCNN's last stage passes anything over
0.7, and on these images face-like clutter (a helmet rim, a tuft of hair) sometimes scores
0.75-0.9 while every real face scores above 0.99; 0.9 sits in that gap.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceprint.detection import get_detector
from faceprint.detection._nms import nms
from faceprint.detection.mtcnn import MTCNN
from faceprint.errors import ImageError

from .conftest import lfw_image

SURE = 0.9

# Twelve people whose first LFW image holds one clear, whole face (checked by eye and against
# facenet-pytorch's MTCNN). Some LFW images also hold a cut-off face at the edge, which a grid can
# complete with its neighbour's pixels, so the list is fixed rather than drawn at random.
GRID_PEOPLE = [
    "Teresa_Heinz_Kerry", "Reinhard_Buetikofer", "Carson_Daly", "Graeme_Smith",
    "Mario_Jardel", "Vitali_Klitschko", "David_Alpay", "Bruce_Springsteen",
    "Michael_Weiss", "Lyle_Lovett", "Cindy_Klassen", "Ed_Sullivan",
]


@pytest.fixture(scope="module")
def mtcnn() -> MTCNN:
    return MTCNN()


def _read(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _check_landmarks(face) -> None:
    lm = face.landmarks
    assert set(lm) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    x1, y1, x2, y2 = face.box
    for name, (x, y) in lm.items():
        assert x1 <= x <= x2 and y1 <= y <= y2, f"{name} outside the box"
    eyes_y = (lm["left_eye"][1] + lm["right_eye"][1]) / 2
    mouth_y = (lm["mouth_left"][1] + lm["mouth_right"][1]) / 2
    assert eyes_y < lm["nose"][1] < mouth_y
    assert lm["left_eye"][0] < lm["right_eye"][0]
    assert lm["mouth_left"][0] < lm["mouth_right"][0]
    assert lm["left_eye"][0] < lm["nose"][0] < lm["right_eye"][0]


def test_astronaut_one_face(mtcnn, astronaut):
    faces = [f for f in mtcnn.detect(astronaut) if f.score >= SURE]
    assert len(faces) == 1
    face = faces[0]
    assert face.detector == "mtcnn" and face.score > 0.99
    assert all(isinstance(v, float) for v in face.box)
    # Eileen Collins' face spans about x 180-268, y 60-172 in this 512x512 portrait
    x1, y1, x2, y2 = face.box
    assert 165 < x1 < 195 and 45 < y1 < 75 and 255 < x2 < 285 and 160 < y2 < 190
    _check_landmarks(face)


def test_grid_of_lfw_faces(mtcnn, lfw_dir):
    tiles = [_read(lfw_image(lfw_dir, name, 1)) for name in GRID_PEOPLE]
    assert all(t.shape == (250, 250, 3) for t in tiles)
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(3)], axis=0)

    found = mtcnn.detect(grid)
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    faces = [f for f in found if f.score >= SURE]
    assert len(faces) == len(GRID_PEOPLE)
    tiles_hit = set()
    for face in faces:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        col, row = int(cx // 250), int(cy // 250)
        tiles_hit.add((row, col))
        # LFW crops centre the face: it lies well inside its own tile, about 80-130 px wide
        assert abs(cx - (col * 250 + 125)) < 40 and abs(cy - (row * 250 + 125)) < 50
        assert 60 < face.width < 150
        _check_landmarks(face)
    assert len(tiles_hit) == len(GRID_PEOPLE)

    # min_face_size sets the pyramid's finest scale; it is a soft floor (PNet also fires on windows
    # holding a smaller face, which regression then shrinks), but 4x the faces' size finds none
    assert MTCNN(min_face_size=400).detect(grid) == []


@pytest.mark.parametrize("kind", ["black", "grey", "noise", "blurred-noise"])
def test_no_faces_in_blank_or_noise(mtcnn, kind):
    rng = np.random.default_rng(7)
    image = {
        "black": lambda: np.zeros((480, 640, 3), np.uint8),
        "grey": lambda: np.full((300, 400, 3), 128, np.uint8),
        "noise": lambda: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "blurred-noise": lambda: cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3),
    }[kind]()
    assert mtcnn.detect(image) == []


def test_large_image(mtcnn, astronaut):
    # the portrait at twice its size, placed on a 4000x3000 canvas at (2500, 1000)
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    canvas[1000:2024, 2500:3524] = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    faces = [f for f in mtcnn.detect(canvas) if f.score >= SURE]
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    # twice the astronaut test's box, shifted
    assert 2830 < x1 < 2890 and 1090 < y1 < 1150 and 3010 < x2 < 3070 and 1320 < y2 < 1380
    _check_landmarks(faces[0])


def test_thresholds_and_small_images(astronaut):
    strict = MTCNN(thresholds=(0.6, 0.7, 0.9999999))
    assert strict.detect(astronaut) == []
    assert MTCNN().detect(np.zeros((11, 11, 3), np.uint8)) == []  # smaller than PNet's window


def test_rejects_non_rgb(mtcnn):
    with pytest.raises(ImageError):
        mtcnn.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError):
        mtcnn.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        MTCNN(min_face_size=5)


def test_registry_name():
    assert isinstance(get_detector("mtcnn"), MTCNN)


def test_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 1 overlaps box 0 with IoU 81/119 ~ 0.68; box 3 lies inside box 0 (IoU 0.16)
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.7).tolist() == [3, 0, 1, 2]
    # "min" overlap: box 3 is wholly inside box 0, so box 0 goes
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [3, 2]
    assert nms(np.empty((0, 4)), np.empty(0), 0.5).tolist() == []


def test_prelu_rewrite_changes_no_detection(mtcnn, lfw_dir, astronaut):
    """The converted networks have their PReLUs rewritten for speed (``zoo.prelu``); the detector
    run on the graphs as built before the rewrite finds exactly the same boxes, scores and
    landmarks, to the last bit, on real photos (every stage: the pyramid, RNet and ONet)."""
    import onnxruntime as ort

    from faceprint import zoo
    from faceprint.detection.mtcnn import _graph

    before = MTCNN()
    spec = zoo.get("mtcnn")
    before._sessions = {key: ort.InferenceSession(_graph(key, spec.path(key)), providers=["CPUExecutionProvider"])
                        for key in ("pnet", "rnet", "onet")}
    images = [astronaut] + [_read(lfw_image(lfw_dir, name, 1)) for name in GRID_PEOPLE[:6]]
    found = 0
    for image in images:
        a, b = mtcnn.detect(image), before.detect(image)
        assert [(f.box, f.score, f.landmarks) for f in a] == [(f.box, f.score, f.landmarks) for f in b]
        found += len(a)
    assert found >= len(images)
