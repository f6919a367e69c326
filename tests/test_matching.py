import numpy as np
import pytest
from scipy.stats import norm

from faceprint.index import FaceIndex
from faceprint.matching import comparison_far, cosine_distance, open_set_threshold, to_metric, verify_vectors


def test_cosine_distance_of_unit_vectors():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [-1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    np.testing.assert_allclose(cosine_distance(a, b), [[0, 2, 1 - np.sqrt(0.5)], [1, 1, 1 - np.sqrt(0.5)]], atol=1e-6)


def test_euclidean_matches_cosine_on_the_unit_sphere():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 64))
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    assert to_metric(cosine_distance(a, b)[0, 0], "euclidean") == pytest.approx(np.linalg.norm(a - b), rel=1e-5)


def test_verify_vectors_decides_at_the_threshold():
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.5), np.sin(0.5)])  # cosine distance 1 - cos(0.5) = 0.1224
    assert verify_vectors(a, b, 0.13, "m").same
    v = verify_vectors(a, b, 0.12, "m", metric="euclidean")
    assert not v.same and v.threshold == pytest.approx(np.sqrt(0.24))


def test_nearest_and_empty_gallery():
    index = FaceIndex(3)
    index.add(np.array([10, 11, 12]), np.eye(3, dtype=np.float32))
    keys, d = index.search(np.array([[0.0, 0.6, 0.8]]), 2)
    assert keys.tolist() == [[12, 11]] and d[0] == pytest.approx([0.2, 0.4])
    keys, d = FaceIndex(2).search(np.array([[1.0, 0.0]]), 1)
    assert keys[0, 0] == -1 and np.isinf(d[0, 0])


TABLE = ((1e-2, 0.75), (1e-3, 0.66), (1e-4, 0.58), (1e-5, 0.52), (1e-6, 0.42))


def test_comparison_far_keeps_the_share_of_strangers_named():
    for size in (1, 10, 1680, 10**6):
        far = comparison_far(size, 0.01)
        assert 1 - (1 - far) ** size == pytest.approx(0.01, rel=1e-6)
    assert comparison_far(0, 0.05) == pytest.approx(0.05)  # an empty gallery is treated as one face
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fpir"):
            comparison_far(10, bad)


def test_open_set_threshold_tightens_as_the_gallery_grows():
    sizes = (1, 100, 1000, 10_000, 100_000, 1_000_000)
    t = [open_set_threshold(TABLE, n) for n in sizes]
    assert t[0] == t[1] == 0.58  # the default never goes looser than FAR 1e-4 per comparison
    assert all(a > b for a, b in zip(t[1:], t[2:]))
    assert 0.52 < t[2] < 0.5203  # 1% of strangers among 1,000 faces: FAR 1.005e-5 per comparison
    assert t[4] < 0.42 and 0.3 < t[5] < t[4]  # past the table: stricter still, along its normal tail
    # an explicit target is taken as asked, looser than FAR 1e-4 too, but never past the loosest point
    assert open_set_threshold(TABLE, 10, fpir=0.01) == pytest.approx(0.66, abs=1e-3)
    assert open_set_threshold(TABLE, 1, fpir=0.2) == 0.75
    assert 0.0 <= open_set_threshold(TABLE, 10**12, fpir=0.01) < t[5]
    with pytest.raises(ValueError, match="no measured"):
        open_set_threshold((), 10)


def test_past_the_table_the_threshold_follows_the_normal_tail_of_every_point():
    """Impostor similarities close to normal: a table measured on such a tail is extended along it,
    and one noisy strictest point (a few impostor pairs, e.g. one person under two names) only pulls
    the line a little, instead of setting its slope alone, and the threshold is never looser than it."""
    fars = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    normal = tuple((f, 1.1 - 0.13 * norm.isf(f)) for f in fars)
    for size in (100_000, 1_000_000, 10**7):
        expected = 1.1 - 0.13 * norm.isf(comparison_far(size, 0.01))
        assert open_set_threshold(normal, size) == pytest.approx(expected, abs=1e-9)
    noisy = normal[:-1] + ((1e-6, normal[-1][1] - 0.1),)
    t = [open_set_threshold(noisy, n) for n in (10_000, 100_000, 1_000_000)]
    assert t[0] == pytest.approx(noisy[-1][1], abs=2e-3) and t[0] > t[1] > t[2]
    # the noisy point pulls the line down a little; its last segment would have given 0.06 at a million
    assert open_set_threshold(normal, 10**6) - 0.1 < t[2] < open_set_threshold(normal, 10**6)
