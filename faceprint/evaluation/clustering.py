"""Clustering scores: pairwise and BCubed precision, recall and F1 against the true people, and
``faceprint eval cluster``'s report (every LFW image clustered by each method, then scored)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from ..errors import FaceprintError
from ..lfw import lfw_people, relative
from .lfw import Progress, embed_for_report, fingerprints


def pairwise_prf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 over pairs of items: of the pairs put together, how many are one
    person; of one person's pairs, how many were put together. ``pred`` -1 is an item alone.

    Dominated by the biggest people (pairs grow with the square of their size); 1.0 where nothing
    is to be counted (no pair put together, or no person with two items).
    """
    from sklearn.metrics.cluster import pair_confusion_matrix

    c = pair_confusion_matrix(np.asarray(truth), _alone_apart(pred))
    return _prf(c[1, 1], c[1, 1] + c[0, 1], c[1, 1], c[1, 1] + c[1, 0])


def bcubed_prf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """BCubed precision, recall, F1 (Bagga & Baldwin): per item, the share of its cluster that is its
    person and of its person that is in its cluster, averaged over items. ``pred`` -1 is an item alone.

    Every face weighs the same, so people seen once count as much as the famous ones.
    """
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(np.asarray(truth), _alone_apart(pred), sparse=True).tocsr()
    people, clusters = np.asarray(table.sum(axis=1)).ravel(), np.asarray(table.sum(axis=0)).ravel()
    cells = table.tocoo()
    together = cells.data.astype(np.float64) ** 2
    n = table.sum()
    return _prf(float((together / clusters[cells.col]).sum()), n, float((together / people[cells.row]).sum()), n)


def _alone_apart(pred: np.ndarray) -> np.ndarray:
    """``pred`` with every -1 given a label of its own."""
    pred = np.array(pred, dtype=np.int64)
    alone = pred < 0
    pred[alone] = pred.max(initial=-1) + 1 + np.arange(alone.sum())
    return pred


def _prf(precision_hits: float, claimed: float, recall_hits: float, relevant: float) -> tuple[float, float, float]:
    """Precision, recall (1.0 where nothing was claimed / there was nothing to find) and their F1."""
    precision = precision_hits / claimed if claimed else 1.0
    recall = recall_hits / relevant if relevant else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def cluster_report(lfw: Path, methods: list[str], detector: str, embedder: str, *, threshold: float | None = None,
                   limit: int | None = None, workers: int = 1, command: str = "",
                   progress: Progress | None = None, faces: Path | None = None) -> dict:
    """Cluster every LFW image's central face with each method (``threshold``, when given, for each)
    and score the clusters against the people's names. An image with no face stays in the truth
    as a face alone, so it costs recall rather than vanishing. ``faces``: a ``faceprint embed``
    dataset of the images to read the faces from instead of embedding them."""
    from ..clustering import make_estimator

    estimators = {m: make_estimator(m, threshold, embedder) for m in methods}  # bad names fail before any work
    people = lfw_people(lfw, limit)
    images = [p for paths in people.values() for p in paths]
    truth = np.array([n for n, paths in people.items() for _ in paths])
    run = embed_for_report(images, detector, embedder, workers, progress=progress, faces=faces)
    found = np.array([run.vectors[str(p)] is not None for p in images])
    if not found.any():
        raise FaceprintError(f"{lfw}: no face found in any image")
    X = np.stack([run.vectors[str(p)] for p, f in zip(images, found) if f])
    runs = []
    for name, estimator in estimators.items():
        start = time.perf_counter()
        labels = estimator.fit_predict(X)
        seconds = time.perf_counter() - start
        pred = np.full(len(images), -1)
        pred[found] = labels
        clusters = int(pred.max(initial=-1) + 1)
        runs.append({"method": name, "params": estimator.get_params(),
                     "bcubed": dict(zip(("precision", "recall", "f1"), bcubed_prf(truth, pred))),
                     "pairwise": dict(zip(("precision", "recall", "f1"), pairwise_prf(truth, pred))),
                     "clusters": clusters + int((pred < 0).sum()), "clusters_2plus": clusters,
                     "faces_alone": int((pred < 0).sum()), "cluster_seconds": seconds})
    sizes = np.array([len(paths) for paths in people.values()])
    return {"detector": detector, "embedder": embedder, "images": len(images), "people": len(people),
            "people_2plus": int((sizes > 1).sum()),
            "no_face_images": [relative(p, lfw) for p, f in zip(images, found) if not f],
            "no_face_policy": "kept in the ground truth, each as a face alone (a cluster of its own)",
            "runs": runs, "seconds_per_image": run.seconds_per_image, "embeddings_cached": run.cached,
            "pipeline": fingerprints(detector, embedder), "machine": _machine(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "command": command}


def _machine() -> str:
    """CPU model, cores and system, for benchmark reports."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
