"""The pairwise-matrix NMS (used up to ``_MATRIX_MAX`` boxes) keeps exactly what the per-box loop keeps."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.detection import _nms


@pytest.mark.parametrize("mode", ["union", "min"])
def test_matrix_and_loop_agree(mode, monkeypatch):
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 200))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(0, 40, (n, 2)) * (rng.random((n, 1)) > 0.05)  # some empty boxes
        boxes, scores = np.concatenate([xy, xy + wh], axis=1), np.round(rng.random(n), 2)  # with ties
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        matrix = _nms.nms(boxes, scores, threshold, mode)
        with monkeypatch.context() as m:
            m.setattr(_nms, "_MATRIX_MAX", 0)
            loop = _nms.nms(boxes, scores, threshold, mode)
        assert matrix.tolist() == loop.tolist()
