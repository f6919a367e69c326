"""RetinaFace on real faces: the same faces and points as the default detector, and masked faces it keeps."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.boxes import overlap
from faceprint.detection import get_detector
from faceprint.detection.retinaface import RetinaFace
from faceprint.errors import ImageError
from faceprint.lfw import central
from faceprint.testing.masks import put_mask

from .conftest import lfw_image
from .test_mtcnn import GRID_PEOPLE, _check_landmarks, _read

#: LFW photos (the first of each) whose subject, under the seed-0 drawn mask, BlazeFace + ONet and
#: MTCNN all lose: the first three of 7 such among every 50th person (115 photos), in name order
MASKED_LOST = [("Daniela_Cicarelli", 1), ("Denise_Locke", 1), ("Janet_Horvath", 1)]


@pytest.fixture(scope="module")
def retinaface() -> RetinaFace:
    return get_detector("retinaface")


def test_same_faces_and_points_as_the_default(retinaface, lfw_dir):
    default = get_detector()
    worst, overlaps = [], []
    for name in GRID_PEOPLE:
        image = _read(lfw_image(lfw_dir, name, 1))
        ours, theirs = central(retinaface.detect(image), image.shape), central(default.detect(image), image.shape)
        assert ours.detector == "retinaface" and ours.score > 0.99
        _check_landmarks(ours)
        worst.append(max(np.hypot(*np.subtract(ours.landmarks[k], theirs.landmarks[k])) for k in theirs.landmarks))
        overlaps.append(_iou(ours.box, theirs.box))
    # measured: each face's farthest point 1.1-4.8 px (median 2.4) from ONet's on ~100 px faces;
    # boxes IoU 0.75-0.95 (the two detectors' boxes frame a face alike)
    assert np.median(worst) < 4.0 and max(worst) < 8.0, worst
    assert min(overlaps) > 0.65, overlaps


def test_finds_masked_faces_mtcnn_loses(retinaface, lfw_dir):
    """Drawn masks (generated: ``faceprint.testing.masks``) on LFW faces; the default detector, whose
    last resort RetinaFace is, finds them too, under its own name."""
    default, mtcnn = get_detector(), get_detector("mtcnn")
    for name, n in MASKED_LOST:
        image = _read(lfw_image(lfw_dir, name, n))
        subject = central(default.detect(image), image.shape)
        masked = put_mask(image, subject, seed=0)
        assert mtcnn.detect(masked) == [], name
        assert any(_iou(f.box, subject.box) >= 0.5 for f in retinaface.detect(masked)), name
        assert [f.detector for f in default.detect(masked) if _iou(f.box, subject.box) >= 0.5] == ["blazeface-mtcnn"], name


@pytest.mark.parametrize("kind", ["black", "noise"])
def test_no_faces_in_blank_or_noise(retinaface, kind):
    rng = np.random.default_rng(7)
    image = np.zeros((480, 640, 3), np.uint8) if kind == "black" else rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert retinaface.detect(image) == []


def test_a_wide_image_maps_back_to_its_pixels(retinaface, lfw_dir):
    """The face placed right of centre in a wide canvas: the box moves with it, in image pixels."""
    image = _read(lfw_image(lfw_dir, GRID_PEOPLE[0], 1))
    wide = np.zeros((250, 1000, 3), np.uint8)
    wide[:, 600:850] = image
    alone, placed = retinaface.detect(image)[0], retinaface.detect(wide)[0]
    assert np.allclose(np.add(alone.box, [600, 0, 600, 0]), placed.box, atol=8), (alone.box, placed.box)


def test_rejects_bad_input(retinaface):
    with pytest.raises(ImageError):
        retinaface.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError):
        retinaface.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        RetinaFace(score_threshold=2.0)


def _iou(a, b) -> float:
    return float(overlap(np.array([a]), np.array([b]))[0, 0])
