"""Strangers named as the gallery grows: the size-following identification threshold, checked on
people its false-accept table was not measured on.

    python benchmarks/open_set.py --lfw ../shared/datasets/lfw   # -> benchmarks/results/open_set.json

The gallery's default threshold (``faceprint.matching.open_set_threshold``) picks the per-comparison
FAR at which a stranger compared with N faces is named with probability FPIR (1%), assuming the
comparisons independent, from a table of measured FARs. This checks both halves of that on real
faces. LFW's people are split in two by a hash of their name. One half measures the FAR table
(every cross-identity pair of its images, as `faceprint eval thresholds` does for the shipped one).
The other half is searched: galleries of its people with two or more photos (one photo enrolled
each; seeded samples of 50 people up to all of them), probed by its strangers (people with a single
photo: FPIR, the share of them given a name) and by the enrolled people's other photos (DIR, the
share named correctly within the threshold). Then the halves swap. Rows give the threshold, the
FPIR the model promised and the one measured (the range over the seeded galleries, or for the whole
half a 95% Wilson interval over its strangers), and DIR.

Embeddings: every LFW image through the default pipeline, cached like `faceprint eval identify`.
What this cannot tell: LFW holds about 5,700 people, so galleries stop near 850 faces per half;
beyond the table's strictest point (FAR 1e-6, about 10,000 faces at 1%) the threshold is
extrapolated, and no real gallery here is large enough to check it. Each row also gives the
hindsight threshold (the one naming exactly the target share of its strangers), and a line in
log size through the real galleries' hindsight thresholds, carried to the larger sizes, is an
estimate that does not use the FAR table (``real_gallery_trend``).

Larger galleries (``--distractors``): the searched half's whole gallery topped up to each size with
blends, each the normalised sum of the faceprints of two different people of the *other* half (so
no blend is anyone searched). Blends keep the structure real faces have (each lies near two real
people, among their photos' spread), unlike Gaussian samples, and a blend resembles two people at
once; but they come from the other half's ~6,600 photos, each photo in ~300 blends at a million,
so they are far less varied than that many real people: a check of the extrapolated threshold,
not a measurement (nor a bound) of a real gallery of that size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]
FARS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
SIZES = (50, 100, 200, 400)
SAMPLES = 20  # seeded galleries per size below the half's whole


def _half(name: str) -> int:
    return hashlib.sha256(name.encode()).digest()[0] & 1


def _wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    p = k / n
    centre, spread = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round(float((centre - spread) / (1 + z * z / n)), 5), round(float((centre + spread) / (1 + z * z / n)), 5)]


def _table(vectors: dict[str, np.ndarray | None]) -> tuple[tuple[float, float], ...]:
    from faceprint.evaluation import operating_points

    points, _, _ = operating_points(vectors, FARS)
    return tuple((p.far, p.threshold) for p in points)


def _searched(people: dict[str, list[Path]], vectors: dict[str, np.ndarray | None]):
    """The searched half's open-set split, faces found only: its enrolled (name, path), its strangers'
    vectors, and its known probes' (name, vector)."""
    from faceprint.evaluation import open_set_split

    split = open_set_split(people, vectors)
    enrolled = [(n, p) for n, p in split.gallery if vectors.get(str(p)) is not None]
    strangers = np.stack([vectors[str(p)] for p in split.unknown if vectors.get(str(p)) is not None])
    probes = [(n, vectors[str(p)]) for n, p in split.known if vectors.get(str(p)) is not None]
    return enrolled, strangers, probes


def _search_half(people: dict[str, list[Path]], vectors: dict[str, np.ndarray | None],
                 table: tuple[tuple[float, float], ...], fpir: float) -> list[dict]:
    from faceprint.matching import comparison_far, open_set_threshold

    enrolled, strangers, probes = _searched(people, vectors)
    rows = []
    for size in [s for s in SIZES if s < len(enrolled)] + [len(enrolled)]:
        threshold = open_set_threshold(table, size, fpir)
        named, known, correct, each, nearest = 0, 0, 0, [], []
        samples = SAMPLES if size < len(enrolled) else 1
        for seed in range(samples):
            rng = np.random.default_rng([size, seed])
            pick = [enrolled[i] for i in sorted(rng.choice(len(enrolled), size, replace=False))]
            gallery, names = np.stack([vectors[str(p)] for _, p in pick]), np.array([n for n, _ in pick])
            nearest.append((1 - strangers @ gallery.T).min(1))
            each.append(float((nearest[-1] <= threshold).mean()))
            named += int(round(each[-1] * len(strangers)))
            chosen = set(names.tolist())
            mine = [(n, v) for n, v in probes if n in chosen]
            d = 1 - np.stack([v for _, v in mine]) @ gallery.T
            right = names[d.argmin(1)] == np.array([n for n, _ in mine])
            known += len(mine)
            correct += int((right & (d.min(1) <= threshold)).sum())
        tried = samples * len(strangers)
        rows.append({"gallery_faces": size, "galleries": samples, "threshold": round(threshold, 4),
                     "comparison_far": float(f"{comparison_far(size, fpir):.3g}"),
                     "fpir_promised": fpir, "fpir_measured": round(named / tried, 5),
                     # one gallery: a 95% Wilson interval over its strangers; several: the range over galleries
                     "fpir_spread": (_wilson(named, tried) if samples == 1
                                     else [round(min(each), 5), round(max(each), 5)]),
                     "strangers": len(strangers), "dir": round(correct / known, 4),
                     # the threshold that names exactly the target share of strangers, over all galleries
                     "hindsight_threshold": round(float(np.quantile(np.concatenate(nearest), fpir)), 4)})
    return rows


def _trend(rows: list[dict], sizes: list[int]) -> dict:
    """An estimate independent of the FAR table: the hindsight threshold of real galleries, a line in
    log10(size) carried to the blended sizes. Errs strict, since the real curve flattens as it grows."""
    slope, intercept = np.polyfit(np.log10([r["gallery_faces"] for r in rows]), [r["hindsight_threshold"] for r in rows], 1)
    return {"per_decade": round(float(slope), 4),
            "at": {str(n): round(float(intercept + slope * np.log10(n)), 4) for n in sizes}}


def _with_blends(people: dict[str, list[Path]], other: dict[str, list[Path]], vectors: dict[str, np.ndarray | None],
                 table: tuple[tuple[float, float], ...], fpir: float, sizes: list[int]) -> list[dict]:
    """The searched half's whole gallery plus blends of the other half's people, up to each size."""
    from faceprint.matching import comparison_far, open_set_threshold

    enrolled, strangers, known = _searched(people, vectors)
    gallery, names = np.stack([vectors[str(p)] for _, p in enrolled]), np.array([n for n, _ in enrolled] + [""])
    probes, truth = np.stack([v for _, v in known]), np.array([n for n, _ in known])
    pool = [(n, vectors[str(p)]) for n, paths in other.items() for p in paths if vectors.get(str(p)) is not None]
    owner, pool_vectors = np.array([n for n, _ in pool]), np.stack([v for _, v in pool])
    rng = np.random.default_rng(17)
    rows = []
    for size in sizes:
        count = size - len(enrolled)
        a, b = rng.integers(len(pool), size=(2, 2 * count))
        keep = np.flatnonzero(owner[a] != owner[b])[:count]  # two different people
        blends = pool_vectors[a[keep]].astype(np.float32) + pool_vectors[b[keep]]
        blends /= np.linalg.norm(blends, axis=1, keepdims=True)
        everyone = np.concatenate([gallery, blends]).astype(np.float32)
        threshold = open_set_threshold(table, len(everyone), fpir)
        nearest = []
        for queries in (strangers, probes):
            best = [(s.argmax(1), 1 - s.max(1)) for s in (queries[i:i + 256] @ everyone.T  # one block at a time:
                                                         for i in range(0, len(queries), 256))]  # 1 GB at 1M
            nearest.append((np.concatenate([b[0] for b in best]), np.concatenate([b[1] for b in best])))
        (_, s_dist), (k_arg, k_dist) = nearest
        named = int((s_dist <= threshold).sum())
        right = names[np.minimum(k_arg, len(enrolled))] == truth  # a blend is nobody: index len(enrolled) -> ""
        # hindsight: the threshold that would have named exactly the target share of these strangers
        ideal = float(np.quantile(s_dist, fpir))
        rows.append({"gallery_faces": len(everyone), "real_faces": len(enrolled), "blends": len(blends),
                     "threshold": round(threshold, 4), "comparison_far": float(f"{comparison_far(len(everyone), fpir):.3g}"),
                     "fpir_promised": fpir, "fpir_measured": round(named / len(strangers), 5),
                     "fpir_spread": _wilson(named, len(strangers)), "strangers": len(strangers),
                     "dir": round(float((right & (k_dist <= threshold)).mean()), 4),
                     "known_probes_taken_by_a_blend": int((k_arg >= len(enrolled)).sum()),
                     "hindsight": {"threshold": round(ideal, 4), "dir": round(float((right & (k_dist <= ideal)).mean()), 4)}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--fpir", type=float, default=0.01)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--distractors", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                    help="gallery sizes to top the searched half's gallery up to with blends (none: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "open_set.json")
    args = ap.parse_args()
    from faceprint import zoo
    from faceprint.detection import DEFAULT_DETECTOR
    from faceprint.embedding import DEFAULT_EMBEDDER
    from faceprint.evaluation import embed_images, lfw_people

    people = lfw_people(args.lfw)
    vectors, _ = embed_images([p for v in people.values() for p in v], DEFAULT_DETECTOR, DEFAULT_EMBEDDER, args.workers)
    halves = [{n: v for n, v in people.items() if _half(n) == h} for h in (0, 1)]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/open_set.py " + " ".join(sys.argv[1:]),
        "pipeline": f"{DEFAULT_DETECTOR} + {DEFAULT_EMBEDDER}",
        "shipped_table": zoo.get(DEFAULT_EMBEDDER).far_thresholds,
        "halves": [],
    }
    for measured, searched in ((0, 1), (1, 0)):
        table = _table({str(p): vectors[str(p)] for paths in halves[measured].values() for p in paths})
        rows = _search_half(halves[searched], vectors, table, args.fpir)
        blended = _with_blends(halves[searched], halves[measured], vectors, table, args.fpir, args.distractors)
        report["halves"].append({"table_from_half": measured, "searched_half": searched,
                                 "people": {"table": len(halves[measured]), "searched": len(halves[searched])},
                                 "table": [[f, round(t, 4)] for f, t in table], "rows": rows,
                                 "real_gallery_trend": _trend(rows, args.distractors),
                                 "with_blends": blended})
        for r in blended:
            print(f"table {measured} -> gallery {searched} + blends: {r['gallery_faces']:>6} faces threshold "
                  f"{r['threshold']:.4f} FPIR {r['fpir_measured'] * 100:.2f}% {r['fpir_spread']} DIR {r['dir'] * 100:.2f}% "
                  f"(known probes taken by a blend: {r['known_probes_taken_by_a_blend']}; hindsight {r['hindsight']})",
                  flush=True)
        for r in rows:
            print(f"table {measured} -> gallery {searched}: {r['gallery_faces']:>4} faces x{r['galleries']:<2} "
                  f"threshold {r['threshold']:.4f} FPIR {r['fpir_measured'] * 100:.2f}% {r['fpir_spread']} "
                  f"(promised {args.fpir:.0%}) DIR {r['dir'] * 100:.2f}%, hindsight threshold {r['hindsight_threshold']:.4f}",
                  flush=True)
        print(f"table {measured} -> gallery {searched}: real galleries' trend {report['halves'][-1]['real_gallery_trend']}",
              flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
