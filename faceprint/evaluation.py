"""Evaluation the field trusts: LFW View 2, ten folds, threshold chosen on the other nine.

Every one of the 6,000 pairs is scored. An image where the detector finds no face gets no
embedding, and a pair with such an image is scored at the largest possible distance (2.0): a
same-person pair then counts as an error, a different-person pair as correct. Nothing is dropped.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FaceprintError
from .imageio import load_image
from .matching import cosine_distance
from .pipeline import get_pipeline
from .runtime import process_map
from .types import Face
from .zoo import cache_dir

MISSING_DISTANCE = 2.0


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def read_pairs(lfw: Path, folds: int | None = None, per_fold: int | None = None) -> list[Pair]:
    """LFW's ``pairs.txt``: a header ``10 300``, then per fold 300 same and 300 different pairs.

    ``folds`` keeps the first folds, ``per_fold`` the first N same and N different pairs of each:
    a small subset that still spans the protocol, for quick checks and CI.
    """
    lines = (lfw / "pairs.txt").read_text().split("\n")
    n_folds, n = (int(v) for v in lines[0].split())
    img = lambda name, i: lfw / "images" / name / f"{name}_{int(i):04d}.jpg"  # noqa: E731
    pairs, rows = [], [line.split() for line in lines[1:] if line.strip()]
    for fold in range(n_folds if folds is None else min(folds, n_folds)):
        chunk = rows[fold * 2 * n:(fold + 1) * 2 * n]
        keep = n if per_fold is None else min(per_fold, n)
        for r in chunk[:keep]:
            pairs.append(Pair(img(r[0], r[1]), img(r[0], r[2]), True, fold))
        for r in chunk[n:n + keep]:
            pairs.append(Pair(img(r[0], r[1]), img(r[2], r[3]), False, fold))
    return pairs


def central(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The subject of an LFW image: the face nearest the centre (LFW crops are centred on it)."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def _embed_chunk(args: tuple[str, str, list[str]]) -> dict[str, np.ndarray | None]:
    detector, embedder, paths = args
    pipe = get_pipeline(detector, embedder)
    out: dict[str, np.ndarray | None] = {}
    for p in paths:
        image = load_image(p)
        faces = pipe.detector.detect(image)
        out[p] = pipe.embed(image, [central(faces, image.shape)])[0].vector if faces else None
    return out


def cache_path(unique: list[str], detector: str, embedder: str) -> tuple[Path, str]:
    """Where the embeddings of ``unique`` images by this pipeline are cached, and the fingerprint.

    The key covers the models' weight hashes, code revisions and settings (flip, ...), not only
    their names, so changed weights or code never reuse stale vectors.
    """
    fingerprint = " | ".join(fingerprints(detector, embedder).values())
    key = hashlib.sha256("\n".join([fingerprint, *unique]).encode()).hexdigest()[:16]
    return cache_dir() / "eval" / f"{detector}+{embedder}-{key}.npz", fingerprint


def part_names(detector: str, embedder: str) -> list[str]:
    """The embedders whose caches a run reads: a fusion's parts, or the embedder itself."""
    emb = get_pipeline(detector, embedder).embedder
    return [p.name for p in emb.parts] if getattr(emb, "parts", None) else [embedder]


def is_cached(paths: list[Path], detector: str, embedder: str) -> bool:
    unique = sorted({str(p) for p in paths})
    return all(cache_path(unique, detector, e)[0].is_file() for e in part_names(detector, embedder))


def fingerprints(detector: str, embedder: str) -> dict[str, str]:
    """What the cache key covers, for the report: each model's name, revision, settings, weight hashes."""
    pipe = get_pipeline(detector, embedder)
    return {"detector": pipe.detector.fingerprint, "embedder": pipe.embedder.fingerprint}


def embed_images(paths: list[Path], detector: str, embedder: str, workers: int = 1,
                 progress: Callable[[int], None] | None = None, cache: bool = True
                 ) -> tuple[dict[str, np.ndarray | None], float]:
    """Embeddings of each image's central face (None where no face) and seconds per image.

    With ``cache``, results are kept per pipeline and image set so re-runs are quick. A fusion
    embedder (one with ``parts``) is built from its parts' cached embeddings: the vectors are the
    same as running it whole (``tests/test_eval.py`` checks), and each part's cache is reused.
    Its time per image is the sum of the parts' (so detection is counted once per part).
    """
    unique = sorted({str(p) for p in paths})
    emb = get_pipeline(detector, embedder).embedder
    if getattr(emb, "parts", None):
        runs = [embed_images(paths, detector, part.name, workers, progress, cache) for part in emb.parts]
        combined = {p: None if any(r[0][p] is None for r in runs) else emb.combine([r[0][p] for r in runs])
                    for p in unique}
        return combined, sum(r[1] for r in runs)
    saved, fingerprint = cache_path(unique, detector, embedder)
    if cache and saved.is_file():
        data = np.load(saved, allow_pickle=False)
        if str(data["fingerprint"]) != fingerprint:
            raise FaceprintError(f"{saved}: made by another pipeline version; delete it")
        return _unpack(data, unique), float(data["seconds_per_image"])
    chunks = [unique[i:i + 64] for i in range(0, len(unique), 64)]
    result: dict[str, np.ndarray | None] = {}
    start = time.perf_counter()
    for part in process_map(_embed_chunk, [(detector, embedder, c) for c in chunks], workers):
        result.update(part)
        progress and progress(len(part))
    per_image = (time.perf_counter() - start) * workers / max(len(unique), 1)
    if not cache:
        return result, per_image
    saved.parent.mkdir(parents=True, exist_ok=True)
    dims = next((len(v) for v in result.values() if v is not None), 1)
    matrix = np.stack([result[p] if result[p] is not None else np.zeros(dims, np.float32) for p in unique])
    found = np.array([result[p] is not None for p in unique])
    tmp = saved.with_suffix(".tmp.npz")
    np.savez(tmp, paths=np.array(unique), matrix=matrix, found=found, seconds_per_image=per_image,
             fingerprint=fingerprint)
    os.replace(tmp, saved)
    return result, per_image


def _unpack(data, unique: list[str]) -> dict[str, np.ndarray | None]:
    if list(data["paths"]) != unique:
        raise FaceprintError("evaluation cache does not match the image list; delete it")
    return {p: (v if ok else None) for p, v, ok in zip(unique, data["matrix"], data["found"])}


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
        t = _threshold_at_far(impostor, far)
        points.append(OperatingPoint(far, t, float((genuine <= t).mean())))
    return points, len(impostor), len(genuine)


def _threshold_at_far(impostor_sorted: np.ndarray, far: float) -> float:
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
    t = _threshold_at_far(diff, far)
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


# -- clustering ------------------------------------------------------------------------------------
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


# -- open-set identification (1:N) -----------------------------------------------------------------
def lfw_people(lfw: Path) -> dict[str, list[Path]]:
    """Every LFW image, by person (folder name), in file order."""
    root = lfw / "images"
    if not root.is_dir():
        raise FaceprintError(f"{lfw}: no images/ folder here (point --lfw at the LFW folder)")
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(root.iterdir()) if d.is_dir()}
    return {name: paths for name, paths in people.items() if paths}


@dataclass(frozen=True)
class OpenSetSplit:
    """Gallery: one image per person with at least two; probes: their other images (known) and
    every image of the people with only one (unknown: they must come back as nobody)."""

    gallery: list[tuple[str, Path]]
    known: list[tuple[str, Path]]
    unknown: list[Path]


def open_set_split(people: dict[str, list[Path]], vectors: dict[str, np.ndarray | None]) -> OpenSetSplit:
    """The split, enrolling each person's first image that has a face (their others are probes)."""
    gallery, known, unknown = [], [], []
    for name, paths in people.items():
        if len(paths) == 1:
            unknown.append(paths[0])
            continue
        enrol = next((p for p in paths if vectors.get(str(p)) is not None), paths[0])
        gallery.append((name, enrol))
        known += [(name, p) for p in paths if p != enrol]
    return OpenSetSplit(gallery, known, unknown)


def open_set_identification(split: OpenSetSplit, vectors: dict[str, np.ndarray | None],
                            fars: tuple[float, ...] = (1e-2, 1e-3), thresholds: dict[str, float] | None = None
                            ) -> dict:
    """Rank-1 accuracy and DIR at FAR, the open-set measures (Grother & Phillips, NIST FRVT 1:N).

    DIR (detection and identification rate) at a threshold is the share of known probes whose
    nearest gallery face is their own person *and* within the threshold; FAR is the share of
    unknown probes whose nearest gallery face is within it (they would be named wrongly). A probe
    with no face found counts as answered "unknown": a miss if known, correct if unknown.
    ``thresholds`` adds DIR and FAR at given named thresholds (e.g. the shipped one).
    """
    from .index import FaceIndex

    enrolled = [(n, p) for n, p in split.gallery if vectors.get(str(p)) is not None]
    index = FaceIndex(len(next(vectors[str(p)] for _, p in enrolled)), approx_from=None)
    index.add(np.arange(len(enrolled)), np.stack([vectors[str(p)] for _, p in enrolled]))
    names = np.array([n for n, _ in enrolled])

    def nearest(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        has = np.array([vectors.get(str(p)) is not None for p in paths], bool)
        who, dist = np.full(len(paths), "", object), np.full(len(paths), np.inf)
        if has.any():
            keys, d = index.search(np.stack([vectors[str(p)] for p, h in zip(paths, has) if h]), 1)
            who[has], dist[has] = names[keys[:, 0]], d[:, 0]
        return who, dist

    k_who, k_dist = nearest([p for _, p in split.known])
    right = k_who == np.array([n for n, _ in split.known], object)
    _, u_dist = nearest(split.unknown)
    u_sorted = np.sort(u_dist)

    def point(t: float) -> dict:
        return {"threshold": t, "dir": float((right & (k_dist <= t)).mean()), "far": float((u_dist <= t).mean())}

    return {
        "gallery": len(enrolled), "known_probes": len(split.known), "unknown_probes": len(split.unknown),
        "no_face": {"gallery": len(split.gallery) - len(enrolled),
                    "known": int(np.isinf(k_dist).sum()), "unknown": int(np.isinf(u_dist).sum())},
        "rank1": float(right.mean()),
        "dir_at_far": [dict(point(_threshold_at_far(u_sorted, far)), target_far=far) for far in fars],
        "at_thresholds": {k: point(t) for k, t in (thresholds or {}).items()},
    }


# -- video: per-frame identity, identity switches ------------------------------------------------
@dataclass(frozen=True)
class VideoScore:
    """How a watched clip compares with its ground truth (``faceprint.video.synth`` writes one).

    ``accuracy``: of the face-frames in view and not occluded, the share whose face was tracked and
    named right (an enrolled person's name, or unknown for a stranger); a missed face counts as
    wrong. ``switches_per_track``: times a true person's face changed track id, averaged over people.
    ``renames_per_track``: name changes after the first, averaged over the tracker's tracks.
    """

    face_frames: int
    correct: int
    missed: int
    accuracy: float
    switches_per_track: float
    renames_per_track: float
    tracks: int
    people: int

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def video_score(truth: list[dict], frames: list[list[dict]], min_iou: float = 0.3) -> VideoScore:
    """``truth``: the ``.truth.jsonl`` lines; ``frames[i]``: frame i's tracked faces as
    ``TrackedFace.to_dict()`` (``track``, ``box``, ``name``)."""
    from scipy.optimize import linear_sum_assignment

    from .video.tracker import iou_matrix

    face_frames = correct = missed = 0
    track_of: dict[int, list[int]] = {}  # true person -> track ids it was matched to, frame by frame
    names_of: dict[int, list[str | None]] = {}  # track id -> its name, frame by frame
    for t, found in zip(truth, frames):
        for f in found:
            names_of.setdefault(f["track"], []).append(f["name"])
        faces = [f for f in t["faces"] if not f["occluded"]]
        if not faces:
            continue
        face_frames += len(faces)
        if not found:
            missed += len(faces)
            continue
        iou = iou_matrix(np.array([f["box"] for f in faces], float), np.array([f["box"] for f in found], float))
        rows, cols = linear_sum_assignment(-iou)
        hit = {r: c for r, c in zip(rows, cols) if iou[r, c] >= min_iou}
        missed += len(faces) - len(hit)
        for r, c in hit.items():
            correct += found[c]["name"] == faces[r]["name"]
            track_of.setdefault(faces[r]["track"], []).append(found[c]["track"])
    switches = [sum(a != b for a, b in zip(ids, ids[1:])) for ids in track_of.values()]
    renames = [sum(a != b for a, b in zip(n, n[1:])) for n in names_of.values()]
    return VideoScore(face_frames, correct, missed, correct / face_frames if face_frames else 0.0,
                      float(np.mean(switches)) if switches else 0.0, float(np.mean(renames)) if renames else 0.0,
                      len(names_of), len(track_of))
