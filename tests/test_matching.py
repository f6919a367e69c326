import numpy as np
import pytest

from faceprint.index import FaceIndex
from faceprint.matching import cosine_distance, to_metric, verify_vectors


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
