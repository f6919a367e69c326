"""draw_faces marks what it should, where it should, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.draw import draw_faces
from faceprint.types import Face

FACE = Face(
    box=(170.0, 40.0, 290.0, 190.0),
    score=0.99,
    landmarks={"left_eye": (205.0, 100.0), "right_eye": (255.0, 100.0), "nose": (230.0, 130.0)},
)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def test_box_and_landmarks_only_near_the_face(astronaut):
    before = astronaut.copy()
    out = draw_faces(astronaut, [FACE])
    np.testing.assert_array_equal(astronaut, before)  # input untouched
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    diff = changed(out, astronaut)
    x0, y0, x1, y1 = (int(v) for v in FACE.box)
    assert diff[y0, x0 + 10 : x1 - 10].mean() > 0.9 and diff[y0 + 10 : y1 - 10, x1].mean() > 0.9  # box edges
    for x, y in FACE.landmarks.values():
        assert diff[int(y), int(x)]
    margin = 6
    far = np.ones_like(diff)
    far[y0 - margin : y1 + margin, x0 - margin : x1 + margin] = False
    assert not diff[far].any()
    assert not diff[y0 + 15 : y1 - 15, x0 + 15 : x0 + 30].any()  # box interior away from dots


def test_label_renders_above_box(astronaut):
    plain = draw_faces(astronaut, [FACE])
    labelled = draw_faces(astronaut, [FACE], labels=["Eileen 0.31"])
    band = changed(labelled, plain)
    ys, xs = np.nonzero(band)
    assert len(ys) > 200
    assert ys.max() <= FACE.box[1] and xs.min() >= FACE.box[0] - 5
    # Text is drawn in a different colour than the band: more than one colour inside it.
    assert len(np.unique(labelled[ys, xs], axis=0)) > 2


def test_label_below_renders_under_box_and_inside_at_the_bottom_edge(astronaut):
    """``below``: a second answer for the same face, under its box, so it hides nothing above it."""
    plain = draw_faces(astronaut, [FACE])
    ys, xs = np.nonzero(changed(draw_faces(astronaut, [FACE], labels=["Eileen 0.31"], below=True), plain))
    assert len(ys) > 200 and ys.min() >= FACE.box[3] and xs.min() >= FACE.box[0] - 5
    h = astronaut.shape[0]
    bottom = Face(box=(10.0, h - 100.0, 120.0, float(h)), score=0.9)
    ys, _ = np.nonzero(changed(draw_faces(astronaut, [bottom], labels=["Ann"], below=True),
                               draw_faces(astronaut, [bottom])))
    assert len(ys) > 100 and h - 60 <= ys.min() and ys.max() < h


def test_label_at_top_edge_and_non_ascii(astronaut):
    top = Face(box=(10.0, 0.0, 120.0, 100.0), score=0.9)
    out = draw_faces(astronaut, [top, FACE], labels=["José", None])
    assert changed(out, draw_faces(astronaut, [top, FACE]))[:40, 10:120].sum() > 100


def test_scales_with_image_size(astronaut):
    big = np.kron(astronaut, np.ones((8, 8, 1), np.uint8))  # 4096x4096
    scaled = Face(box=tuple(v * 8 for v in FACE.box), score=0.9)
    thin = changed(draw_faces(astronaut, [FACE]), astronaut).sum()
    thick = changed(draw_faces(big, [scaled]), big).sum()
    assert thick > 30 * thin  # lines got thicker, not just longer (8x longer alone would be 8x)


def test_label_count_must_match(astronaut):
    with pytest.raises(ValueError):
        draw_faces(astronaut, [FACE], labels=["a", "b"])
