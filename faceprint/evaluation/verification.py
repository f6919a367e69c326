"""Verification (1:1) the field trusts: LFW View 2, ten folds, threshold chosen on the other nine;
AUC, TAR at FAR, the thresholds that hold each FAR, and the ROC and distance plots.

Every one of the 6,000 pairs is scored. An image where the detector finds no face gets no
embedding, and a pair with such an image is scored at the largest possible distance (2.0): a
same-person pair then counts as an error, a different-person pair as correct. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceprintError
from ..matching import cosine_distance
from ..lfw import Pair, pair_images, read_pairs, relative
from .lfw import Progress, embed_for_report, fingerprints

MISSING_DISTANCE = 2.0

#: Version of the `eval lfw` JSON report; bump only when a key changes meaning or goes away
#: (docs/benchmarks.md, "Report schema", lists every key).
LFW_REPORT_SCHEMA = "faceprint.eval.lfw/1"


def pair_distances(pairs: list[Pair], vectors: dict[str, np.ndarray | None]) -> np.ndarray:
    d = np.empty(len(pairs))
    for i, p in enumerate(pairs):
        a, b = vectors[str(p.a)], vectors[str(p.b)]
        d[i] = MISSING_DISTANCE if a is None or b is None else float(cosine_distance(a, b)[0, 0])
    return d


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy, midway between neighbouring distances."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate([[order[0] - 1e-6], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-6]])
    # accuracy at each candidate, vectorised: same pairs below + different pairs above
    s, d = np.sort(distances[same]), np.sort(distances[~same])
    correct = np.searchsorted(s, candidates, side="right") + (len(d) - np.searchsorted(d, candidates, side="right"))
    return float(candidates[int(np.argmax(correct))])


@dataclass(frozen=True)
class FoldResult:
    accuracies: list[float]
    thresholds: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))

    @property
    def threshold(self) -> float:
        """The threshold to ship: the median of the ten folds' choices."""
        return float(np.median(self.thresholds))


def ten_fold(pairs: list[Pair], distances: np.ndarray) -> FoldResult:
    folds = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    accs, ths = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        t = best_threshold(distances[train], same[train]) if train.any() else best_threshold(distances, same)
        ths.append(t)
        accs.append(float(((distances[test] <= t) == same[test]).mean()))
    return FoldResult(accs, ths)


@dataclass(frozen=True)
class OperatingPoint:
    far: float
    threshold: float
    tar: float


#: The false-accept rates `eval thresholds` measures: an embedder's ``ModelSpec.far_thresholds``.
FAR_TABLE = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def operating_points(vectors: dict[str, np.ndarray | None], fars: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
                     ) -> tuple[list[OperatingPoint], int, int]:
    """Thresholds that hold each false-accept rate, over every pair of the embedded images.

    LFW's 3,000 different-person pairs cannot resolve a FAR below 1e-3; every cross-identity pair
    of the 7,701 pair images (about 30 million) can. Identity is the image's folder name. Returns
    the points and the numbers of impostor and genuine pairs they rest on.
    """
    keys = [k for k, v in vectors.items() if v is not None]
    ids = np.array([Path(k).parent.name for k in keys])
    v = np.stack([vectors[k] for k in keys])
    impostor_parts, genuine_parts = [], []
    for start in range(0, len(keys), 1024):  # row blocks keep memory at ~1024 x N floats
        d = cosine_distance(v[start:start + 1024], v)
        rows, cols = np.nonzero(np.triu(np.ones_like(d, dtype=bool), k=start + 1))
        same = ids[start + rows] == ids[cols]
        impostor_parts.append(d[rows[~same], cols[~same]])
        genuine_parts.append(d[rows[same], cols[same]])
    impostor = np.sort(np.concatenate(impostor_parts))
    genuine = np.concatenate(genuine_parts)
    points = []
    for far in fars:
        t = threshold_at_far(impostor, far)
        points.append(OperatingPoint(far, t, float((genuine <= t).mean())))
    return points, len(impostor), len(genuine)


def threshold_at_far(impostor_sorted: np.ndarray, far: float) -> float:
    """The largest threshold letting through at most ``far`` of the (sorted) impostor distances."""
    k = int(np.floor(far * len(impostor_sorted) + 1e-9))  # impostor pairs allowed through
    return float(np.nextafter(impostor_sorted[k], -np.inf)) if k < len(impostor_sorted) else float(impostor_sorted[-1])


def auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve: the chance a same pair is closer than a different pair (ties half)."""
    _, inverse, counts = np.unique(distances, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid_rank = (ends - (counts - 1) / 2)[inverse]  # 1-based average rank, small distance first
    n_same, n_diff = int(same.sum()), int((~same).sum())
    # ranks of the different pairs, from the top: how many same pairs each one beats
    u = mid_rank[~same].sum() - n_diff * (n_diff + 1) / 2
    return float(u / (n_same * n_diff))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> dict:
    """True-accept rate at the largest threshold whose false-accept rate is at most ``far``.

    With N different pairs the FAR moves in steps of 1/N: LFW's 3,000 resolve it only down to
    ~1e-3, where the TAR rests on the 3 closest impostor pairs.
    """
    diff = np.sort(distances[~same])
    t = threshold_at_far(diff, far)
    return {"far": far, "threshold": t, "tar": float((distances[same] <= t).mean()),
            "far_measured": float((diff <= t).mean())}


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAR and TAR at every distinct threshold, for plotting."""
    t = np.unique(distances)
    s, d = np.sort(distances[same]), np.sort(distances[~same])
    return np.searchsorted(d, t, side="right") / len(d), np.searchsorted(s, t, side="right") / len(s)


def write_plots(out: Path, title: str, distances: np.ndarray, same: np.ndarray, threshold: float) -> list[Path]:
    """``roc.png`` (log FAR axis, as the field plots it) and ``distances.png`` (same vs different)."""
    try:
        import matplotlib
    except ImportError:
        raise FaceprintError("--plots needs matplotlib: pip install 'faceprint[plots]'") from None

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    far, tar = roc_curve(distances, same)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    keep = far > 0
    ax.plot(far[keep], tar[keep], lw=1.5)
    low = float(tar[keep].min()) if keep.any() else 0.0
    ax.set(xscale="log", xlim=(1 / max((~same).sum(), 1), 1), ylim=(max(0.0, np.floor(low * 50) / 50 - 0.02), 1.002),
           xlabel="false accept rate (different pairs accepted)", ylabel="true accept rate", title=f"ROC: {title}")
    ax.grid(True, which="both", alpha=0.3)
    roc = out / "roc.png"
    fig.tight_layout()
    fig.savefig(roc, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    found = distances < MISSING_DISTANCE
    bins = np.linspace(0, float(distances[found].max()) if found.any() else 2.0, 60)
    ax.hist(distances[same & found], bins=bins, alpha=0.6, label=f"same person ({int(same.sum())})")
    ax.hist(distances[~same & found], bins=bins, alpha=0.6, label=f"different people ({int((~same).sum())})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    missing = f" ({int((~found).sum())} pair(s) with no face, scored 2.0, not shown)" if (~found).any() else ""
    ax.set(xlabel="cosine distance" + missing, ylabel="pairs", title=f"Pair distances: {title}")
    ax.legend(fontsize=8)
    hist = out / "distances.png"
    fig.tight_layout()
    fig.savefig(hist, dpi=110)
    plt.close(fig)
    return [roc, hist]


def lfw_report(lfw: Path, detector: str, embedder: str, *, folds: int | None = None,
               pairs_per_fold: int | None = None, workers: int = 1, cache: bool = True, plots: Path | None = None,
               command: str = "", progress: Progress | None = None) -> dict:
    """``faceprint eval lfw``'s report (schema :data:`LFW_REPORT_SCHEMA`): 10-fold accuracy with the
    threshold chosen on the other folds, AUC, TAR@FAR, what had no face, and how it was made;
    with ``plots``, ``roc.png`` and ``distances.png`` written there."""
    pairs = read_pairs(lfw, folds, pairs_per_fold)
    images = pair_images(pairs)
    run = embed_for_report(images, detector, embedder, workers, cache, progress)
    d = pair_distances(pairs, run.vectors)
    same = np.array([p.same for p in pairs])
    res = ten_fold(pairs, d)
    missing = {p for p, v in run.vectors.items() if v is None}
    n_diff = int((~same).sum())
    report = {
        "schema": LFW_REPORT_SCHEMA,
        "detector": detector, "embedder": embedder, "pairs": len(pairs), "folds": len(res.accuracies),
        "pairs_per_fold": pairs_per_fold or (len(pairs) // max(len(res.accuracies), 1) // 2),
        "accuracy_mean": res.mean, "accuracy_std": res.std, "fold_accuracies": res.accuracies,
        "fold_thresholds": res.thresholds, "threshold": res.threshold,
        "threshold_selection": "on the other folds" if len(res.accuracies) > 1 else "on the same fold (only one)",
        "auc": auc(d, same),
        "tar_at_far": [tar_at_far(d, same, far) for far in (1e-2, 1e-3)],
        "far_resolution": 1 / n_diff,
        "far_note": f"{n_diff} different-person pairs resolve FAR only down to ~1e-3 (steps of "
                    f"{1 / n_diff:.1e}: FAR 1e-3 rests on {int(n_diff * 1e-3)} accepted impostor pairs); "
                    "`faceprint eval thresholds` measures lower FARs over all cross-identity pairs",
        "images": len(images), "no_face_images": sorted(relative(Path(p), lfw) for p in missing),
        "no_face_pairs": int(sum(str(p.a) in missing or str(p.b) in missing for p in pairs)),
        "no_face_policy": f"pair distance set to {MISSING_DISTANCE}",
        "seconds_per_image": run.seconds_per_image,
        "embeddings_cached": run.cached,
        "pipeline": fingerprints(detector, embedder),
        "plots": [],
        "command": command,
    }
    if plots:
        report["plots"] = [str(p) for p in write_plots(plots, f"{detector} + {embedder}", d, same, res.threshold)]
    return report


def thresholds_report(lfw: Path, detector: str, embedder: str, *, folds: int | None = None,
                      pairs_per_fold: int | None = None, workers: int = 1, cache: bool = True,
                      progress: Progress | None = None) -> dict:
    """``faceprint eval thresholds``'s report: the threshold that holds each FAR over every
    cross-identity pair of the pairs' images, and the TAR and FRR it leaves."""
    images = pair_images(read_pairs(lfw, folds, pairs_per_fold))
    run = embed_for_report(images, detector, embedder, workers, cache, progress)
    points, n_imp, n_gen = operating_points(run.vectors, FAR_TABLE)
    return {"detector": detector, "embedder": embedder, "images": len(images),
            "impostor_pairs": n_imp, "genuine_pairs": n_gen, "far_resolution": 1 / max(n_imp, 1),
            "points": [{**p.__dict__, "frr": 1 - p.tar} for p in points]}
