"""Open-set identification (1:N) on all of LFW: one photo enrolled per person, their other photos
as known probes, the people photographed once as strangers who must come back as nobody."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import zoo
from ..errors import FaceprintError
from ..lfw import lfw_people
from ..matching import DEFAULT_FPIR, open_set_threshold
from .lfw import Progress, embed_for_report
from .verification import threshold_at_far


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
    from ..index import FaceIndex

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
        "dir_at_far": [dict(point(threshold_at_far(u_sorted, far)), target_far=far) for far in fars],
        "at_thresholds": {k: point(t) for k, t in (thresholds or {}).items()},
    }


def identify_report(lfw: Path, detector: str, embedder: str, *, limit: int | None = None, workers: int = 1,
                    cache: bool = True, command: str = "", progress: Progress | None = None,
                    faces: Path | None = None, fpir: float | None = None) -> dict:
    """``faceprint eval identify``'s report: rank-1 and DIR at FAR on the open-set split, and at the
    embedder's thresholds: 1:1 verification's, FAR 1e-4 per comparison, and the one a gallery of
    this size uses (``fpir``: as for ``Gallery``; None, the default policy), whose FAR column is
    the share of strangers it names. ``faces``: as for ``cluster_report``."""
    people = lfw_people(lfw, limit)
    images = [p for paths in people.values() for p in paths]
    run = embed_for_report(images, detector, embedder, workers, cache, progress, faces)
    spec = zoo.get(embedder)
    split = open_set_split(people, run.vectors)
    if len(split.gallery) == 0 or len(split.unknown) == 0:
        raise FaceprintError("too few people for open-set identification (need some with one photo and some with more)")
    size = sum(run.vectors.get(str(p)) is not None for _, p in split.gallery)
    thresholds = {"verify": spec.threshold, "far_1e-4": spec.identify_threshold,
                  "gallery": open_set_threshold(spec.far_thresholds, size, fpir)}
    return {"detector": detector, "embedder": embedder, "people": len(people), "images": len(images),
            "fpir_target": DEFAULT_FPIR if fpir is None else fpir,
            **open_set_identification(split, run.vectors, thresholds=thresholds),
            "seconds_per_image": run.seconds_per_image, "command": command}
