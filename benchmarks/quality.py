"""The learned face-quality score, fitted and judged on LFW: error versus reject with cross-fitting.

    python benchmarks/quality.py --lfw ../shared/datasets/lfw --out benchmarks/results/quality.json [--write-model]

Run from the checkout so the pair images' embeddings cached by ``faceprint eval lfw`` are found.

Faces: the default detector's face nearest the centre of each image of View 2's 6,000 pairs.
Label (a face's genuine-match quality): its mean cosine similarity to the same person's other
photos among those images (faceplugin); people with one photo there give no label. Model:
gradient-boosted regression trees (scikit-learn's HistGradientBoostingRegressor with its default
settings) of the label on ``faceprint.analysis.quality.cues``, the last of which is the length of
the raw faceprint.

Error versus reject: the default pipeline's verification errors at its calibrated threshold as the
pairs whose lower-quality face scores lowest are dropped. Each fold's pairs are scored by a model
fitted on the other 9 folds' faces only (View 2's folds share no person), so no score has seen the
labels of the pairs it ranks. Compared: the shipped model (trees x gates), a linear model (ridge,
alpha 1) of the same nine cues, the linear model of the eight cheap cues alone (the shipped formula
until 2026-11-30), trees of the eight cheap cues, each cue alone (its direction from the other folds),
the heuristic model and random order. The noise: errors removed at 10% dropped, and a bootstrap over
pairs of the cut at 10%. Last, the fit on all 10 folds: the model ``faceprint.analysis.quality``
ships (``--write-model`` writes it; otherwise the run says if it differs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_model  # noqa: E402

from faceprint.analysis import Analyzer  # noqa: E402
from faceprint.analysis.quality import (CUES, MODEL_FILE, cues, face_quality, fit_model, score_cues,  # noqa: E402
                                        tree_regressor)
from faceprint.detection import get_detector  # noqa: E402
from faceprint.embedding import DEFAULT_EMBEDDER, get_embedder  # noqa: E402
from faceprint.evaluation import embed_images, pair_distances, read_pairs  # noqa: E402
from faceprint.imageio import load_image  # noqa: E402
from faceprint.lfw import central  # noqa: E402
from faceprint.runtime import process_map  # noqa: E402

DROPS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)


def _measure(paths: list[str]) -> list[tuple | None]:
    """Per image: the cues and the heuristic score (None: no face)."""
    detector, emb = get_detector("blazeface-mtcnn"), get_embedder(DEFAULT_EMBEDDER)
    heuristic = Analyzer("quality", {"quality": "heuristic"})
    out = []
    for p in paths:
        image = load_image(p)
        faces = detector.detect(image)
        if not faces:
            out.append(None)
            continue
        face = central(faces, image.shape)
        out.append((cues(image, face, emb), heuristic.analyze(image, [face])[0].quality.score))
    return out


def linear(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Ridge (alpha 1) on standardised ``x``, its predictions for ``test``."""
    mean, scale = x.mean(0), x.std(0)
    return Ridge(alpha=1.0).fit((x - mean) / scale, y).predict((test - mean) / scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.json"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--write-model", action="store_true", help=f"write the all-folds fit to faceprint/analysis/data/{MODEL_FILE}")
    a = ap.parse_args()
    start = time.perf_counter()
    pairs = read_pairs(a.lfw)
    paths = sorted({str(p) for pair in pairs for p in (pair.a, pair.b)})
    vectors, _ = embed_images([Path(p) for p in paths], "blazeface-mtcnn", DEFAULT_EMBEDDER)
    chunks = [paths[i:i + 128] for i in range(0, len(paths), 128)]
    measured = dict(zip(paths, (r for part in process_map(_measure, chunks, a.workers) for r in part)))
    missing = [p for p in paths if measured[p] is None or vectors[p] is None]
    if missing:
        raise SystemExit(f"{len(missing)} pair images without a face: {missing[:3]}")
    idx = {p: i for i, p in enumerate(paths)}
    c = np.stack([measured[p][0] for p in paths])
    cheap = c[:, :-1]  # all but the faceprint's norm
    heuristic = np.array([measured[p][1] for p in paths])
    fold = np.zeros(len(paths), int)
    for pair in pairs:
        fold[[idx[str(pair.a)], idx[str(pair.b)]]] = pair.fold
    person = np.array([Path(p).parent.name for p in paths])
    v = np.stack([vectors[p] for p in paths])
    label = np.full(len(paths), np.nan)
    for who in np.unique(person):
        m = np.flatnonzero(person == who)
        if len(m) > 1:
            label[m] = ((v[m] @ v[m].T).sum(1) - 1) / (len(m) - 1)

    scores = {k: np.zeros(len(paths)) for k in ("learned (shipped: trees, 9 cues)", "linear, 9 cues",
                                                 "linear, 8 cheap cues (shipped until 2026-11-30)",
                                                 "trees, 8 cheap cues", *CUES)}
    for k in range(10):
        train, test = (fold != k) & np.isfinite(label), fold == k
        scores["learned (shipped: trees, 9 cues)"][test] = score_cues(c[test], fit_model(c[train], label[train], c[fold != k]))
        scores["linear, 9 cues"][test] = linear(c[train], label[train], c[test])
        scores["linear, 8 cheap cues (shipped until 2026-11-30)"][test] = linear(cheap[train], label[train], cheap[test])
        trees = tree_regressor().fit(cheap[train], label[train])
        scores["trees, 8 cheap cues"][test] = trees.predict(cheap[test])
        for j, name in enumerate(CUES):
            direction = np.sign(np.corrcoef(c[train, j], label[train])[0, 1])
            scores[name][test] = direction * c[test, j]
    scores["heuristic (old default)"] = heuristic
    rng = np.random.default_rng(16)
    scores["random (baseline)"] = rng.random(len(paths))

    a_i, b_i = np.array([idx[str(p.a)] for p in pairs]), np.array([idx[str(p.b)] for p in pairs])
    wrong = (pair_distances(pairs, vectors) < get_embedder(DEFAULT_EMBEDDER).threshold) != np.array([p.same for p in pairs])
    pair_fold = np.array([p.fold for p in pairs])
    base = wrong.mean()
    boot = rng.integers(0, len(pairs), (a.bootstrap, len(pairs)))
    curves = {}
    for name, s in scores.items():
        q = np.minimum(s[a_i], s[b_i])
        order = np.lexsort((rng.random(len(q)), q))  # ties broken at random
        dropped = order[:int(round(0.1 * len(order)))]
        rates = {f"{int(f * 100)}%": round(float(wrong[order[int(round(f * len(order))):]].mean()), 5) for f in DROPS}
        rank = np.empty(len(q), int)
        rank[order] = np.arange(len(q))
        cuts = []
        for b in boot:  # the same order, resampled pairs: drop the lowest-ranked 10% of the sample
            kept = b[np.argsort(rank[b], kind="stable")][int(round(0.1 * len(b))):]
            cuts.append(1 - wrong[kept].mean() / max(wrong[b].mean(), 1e-9))
        curves[name] = {"error_rate_after_dropping_lowest": rates, "cut_at_10pct": round(1 - rates["10%"] / base, 3),
                        "errors_removed_at_10pct": int(wrong[dropped].sum()),
                        "errors_removed_at_10pct_by_fold": np.bincount(pair_fold[dropped][wrong[dropped]],
                                                                       minlength=10).tolist(),
                        "cut_at_10pct_bootstrap_90pct": [round(float(x), 3) for x in np.quantile(cuts, [0.05, 0.95])]}

    shipped = fit_model(c[np.isfinite(label)], label[np.isfinite(label)], c)
    target = Path(__file__).resolve().parents[1] / "faceprint" / "analysis" / "data" / MODEL_FILE
    text = json.dumps(shipped, separators=(",", ":")) + "\n"
    if a.write_model:
        target.write_text(text)
    elif target.read_text() != text:
        print(f"faceprint/analysis/data/{MODEL_FILE} differs from this fit; --write-model writes it", file=sys.stderr)
    probe = [(load_image(p), ) for p in paths[:200:2]]
    detector = get_detector("blazeface-mtcnn")
    probe = [(im, central(detector.detect(im), im.shape)) for (im,) in probe]
    t_cues, t_score = [], []
    for image, face in probe:
        t0 = time.perf_counter()
        cx = cues(image, face)
        t1 = time.perf_counter()
        score_cues(cx)
        t_cues.append(t1 - t0)
        t_score.append(time.perf_counter() - t1)
        face_quality(image, face)
    report = {
        "command": " ".join(["python", "benchmarks/quality.py", *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "date": time.strftime("%Y-%m-%d"),
        "pairs": len(pairs), "images": len(paths), "labelled_faces": int(np.isfinite(label).sum()),
        "embedder": DEFAULT_EMBEDDER, "threshold": get_embedder(DEFAULT_EMBEDDER).threshold,
        "errors": int(wrong.sum()), "false_non_matches": int((wrong & np.array([p.same for p in pairs])).sum()),
        "label_pearson_r": {n: round(float(np.corrcoef(c[np.isfinite(label), j], label[np.isfinite(label)])[0, 1]), 3)
                            for j, n in enumerate(CUES)},
        "curves": curves, "shipped_model": {k: v for k, v in shipped.items() if k != "trees"},
        "ms_per_face": {"cues": round(1e3 * statistics.median(t_cues), 3),
                        "score_from_cues": round(1e3 * statistics.median(t_score), 4)},
        "seconds": round(time.perf_counter() - start, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, cv in curves.items():
        print(f"{name:28s}", " ".join(f"{x * 100:.3f}" for x in cv["error_rate_after_dropping_lowest"].values()),
              f"cut10 {cv['cut_at_10pct']:+.3f} removed {cv['errors_removed_at_10pct']} "
              f"boot90 {cv['cut_at_10pct_bootstrap_90pct']}", file=sys.stderr)


if __name__ == "__main__":
    main()
