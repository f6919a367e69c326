"""LFW on disk: View 2's pairs, the images by person, and each image's subject (its central face).

Read by the benchmarks (``faceprint.evaluation``), by the int8 calibration (``faceprint.zoo.quantize``)
and by batch output readers; it reads files only, no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import FaceprintError
from .types import Face


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
    if not (lfw / "pairs.txt").is_file():
        raise FaceprintError(f"{lfw}: no pairs.txt here (point --lfw at the LFW folder)")
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


def pair_images(pairs: list[Pair]) -> list[Path]:
    """The images the pairs use, each once."""
    return list({p for pair in pairs for p in (pair.a, pair.b)})


def lfw_people(lfw: Path, limit: int | None = None) -> dict[str, list[Path]]:
    """Every LFW image, by person (folder name), in file order; the first ``limit`` people only
    when given (quick checks)."""
    root = lfw / "images"
    if not root.is_dir():
        raise FaceprintError(f"{lfw}: no images/ folder here (point --lfw at the LFW folder)")
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(root.iterdir()) if d.is_dir()}
    people = {name: paths for name, paths in people.items() if paths}
    return dict(list(people.items())[:limit]) if limit else people


def relative(path: Path, root: Path) -> str:
    """``path`` as reports list it: relative to the LFW folder when inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def central(faces: list[Face], shape: tuple[int, ...]) -> Face:
    """The subject of an LFW image: the face nearest the centre (LFW crops are centred on it)."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
