import numpy as np
import pytest

from faceprint.alignment import ARCFACE_112, DLIB_150, align, scaled_template, umeyama
from faceprint.errors import FaceprintError
from faceprint.types import Face


def _similarity(scale, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1, 0, 0, 0), (2.5, 0.3, 10, -4), (0.4, -2.0, 100, 50), (1.3, np.pi, -7, 3)])
def test_umeyama_recovers_a_known_similarity(scale, angle, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    m = _similarity(scale, angle, tx, ty)
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-9)


def test_umeyama_two_points_fix_the_transform():
    m = _similarity(0.7, 0.5, 3, 9)
    src = np.array([[10.0, 20.0], [40.0, 22.0]])
    np.testing.assert_allclose(umeyama(src, src @ m[:, :2].T + m[:, 2]), m, atol=1e-9)


def test_umeyama_least_squares_with_noise_is_close():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (50, 2))
    m = _similarity(1.7, 0.2, 5, 5)
    dst = src @ m[:, :2].T + m[:, 2] + rng.normal(0, 0.5, (50, 2))
    fit = umeyama(src, dst)
    residual = lambda t: ((src @ t[:, :2].T + t[:, 2] - dst) ** 2).sum()  # noqa: E731
    assert residual(fit) <= residual(m)  # least squares: no worse than the truth itself
    np.testing.assert_allclose(fit[:, :2], m[:, :2], atol=0.01)
    np.testing.assert_allclose(fit[:, 2], m[:, 2], atol=0.3)


def test_umeyama_never_reflects():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    dst = src * [-1, 1]  # a mirror image: the best similarity is not the reflection
    assert np.linalg.det(umeyama(src, dst)[:, :2]) > 0


def test_umeyama_rejects_degenerate_input():
    with pytest.raises(ValueError):
        umeyama(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        umeyama(np.zeros((1, 2)), np.zeros((1, 2)))


def test_align_puts_landmarks_on_the_template():
    # paint dots at known landmark places in a rotated, scaled face, then check they land on the template
    m = _similarity(2.0, 0.4, 60, 30)
    inv = np.vstack([m, [0, 0, 1]])
    names = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    pts = {n: tuple(inv[:2, :2] @ np.array(ARCFACE_112[n]) + inv[:2, 2]) for n in names}
    img = np.zeros((400, 400, 3), np.uint8)
    for x, y in pts.values():
        img[round(y) - 2:round(y) + 3, round(x) - 2:round(x) + 3] = 255
    face = Face(box=(0, 0, 400, 400), score=1.0, landmarks=pts)
    crop = align(img, face, ARCFACE_112, 112).pixels
    assert crop.shape == (112, 112, 3)
    for n in names:
        x, y = ARCFACE_112[n]
        assert crop[round(y), round(x)].mean() > 100, n


def test_align_uses_only_common_points_and_refuses_too_few():
    face = Face(box=(0, 0, 10, 10), score=1.0, landmarks={"left_eye": (3.0, 4.0), "nose_base": (5.0, 8.0)})
    m = align(np.zeros((50, 50, 3), np.uint8), face, DLIB_150, 150).matrix
    assert m.shape == (2, 3)
    with pytest.raises(FaceprintError, match="too few"):
        align(np.zeros((50, 50, 3), np.uint8), Face((0, 0, 1, 1), 1.0, {"left_eye": (1.0, 1.0)}), ARCFACE_112, 112)


def test_scaled_template_keeps_shape():
    t = scaled_template(ARCFACE_112, 112, 224)
    assert t["left_eye"] == pytest.approx((ARCFACE_112["left_eye"][0] * 2, ARCFACE_112["left_eye"][1] * 2))
