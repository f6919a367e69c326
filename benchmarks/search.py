"""1:N search at scale: the LFW gallery plus synthetic distractors up to a million faces.

    python benchmarks/search.py --lfw ../shared/datasets/lfw --crossover --compare 0 --candidates 256 1024 \
        --out benchmarks/results/search-scan.json                  # the gallery's index (a scan of compact codes)
    python benchmarks/search.py --lfw ../shared/datasets/lfw --distractors blends --crossover --compare 0 \
        --candidates 256 1024 --out benchmarks/results/search-scan-blends.json
    python benchmarks/search.py --lfw ../shared/datasets/lfw --first-stage graph --compare 0 \
        --expansion 128 512   # the HNSW graph (knn_graph's) -> benchmarks/results/search.json
    python benchmarks/search.py --lfw ../shared/datasets/lfw --sizes 10000   # quick

Real faceprints: every LFW image through the default pipeline (cached like `faceprint eval`).
The gallery is the open-set split of `faceprint eval identify` (one photo per person with two or
more); queries are 500 known probes (their other photos) and 500 unknown ones (people with a single
photo). Distractors are synthetic: a Gaussian with the mean and covariance of all real LFW
faceprints, sampled and L2-normalised, so they spread through the same part of the sphere as real
faces (their distances to real faces are reported beside real-to-real ones). They are generated in
seeded chunks, so no process ever holds a million float32 vectors. Gaussian samples have none of the
structure real faces have (people, each a tight group of photos), which is what a graph index
relies on, so they are the hard case. ``--distractors blends`` is the more realistic set (issue 16
item 3, as in benchmarks/open_set.py): each distractor the normalised sum of the faceprints of two
different people from the single-photo people who are not probes, so no blend holds the face of
anyone searched, and each lies near two real faces. Generated: a blend resembles two people at once,
and about 3,500 photos make them all (each in some 550 blends at a million), so they are less varied
than a million real strangers.

Each size runs in a fresh process (for its RSS; BLAS single-threaded, the index on 2 threads to build and
one to answer a single query): build the index chunk by chunk, time single queries (p50/p99) and
one batch at the default setting and at each `--candidates` count (the scan) or `--expansion`
depth (the graph) on the same index, then regenerate the chunks for the exact answer (one matrix
product per chunk) and report recall@1 of the index against it (a found face exactly as near as
the nearest counts: blends repeat, the same two people drawn twice), and the open-set
identification with the distractors in the gallery (a distractor as nearest face is a wrong
answer). Each row records the 1-minute load average after the build: other work on the machine
inflates latencies. The first stage is fitted on the first batch added, the real LFW gallery;
the scan is fitted again on all it holds each time it has grown four times over. The exact
search's latency at small sizes is what sets `faceprint.index.APPROX_FROM`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 20_000  # distractors generated at once: 100k made 0.6 GB of temporaries, beside a 1M index
QUERIES = 500  # of each kind


# -- data ------------------------------------------------------------------------------------------
def real_data(lfw: Path, workers: int) -> dict:
    from faceprint import evaluation as ev
    from faceprint import zoo
    from faceprint.detection import DEFAULT_DETECTOR
    from faceprint.embedding import DEFAULT_EMBEDDER

    people = ev.lfw_people(lfw)
    vectors, _ = ev.embed_images([p for v in people.values() for p in v], DEFAULT_DETECTOR, DEFAULT_EMBEDDER, workers)
    split = ev.open_set_split(people, vectors)
    gallery = [(n, p) for n, p in split.gallery if vectors[str(p)] is not None]
    rng = np.random.default_rng(0)
    known = [split.known[i] for i in rng.permutation(len(split.known)) if vectors[str(split.known[i][1])] is not None]
    unknown = [p for p in (split.unknown[i] for i in rng.permutation(len(split.unknown))) if vectors[str(p)] is not None]
    known, unknown, pool = known[:QUERIES], unknown[:QUERIES], unknown[QUERIES:]
    everything = np.stack([v for v in vectors.values() if v is not None])
    names = [n for n, _ in gallery]
    return {
        "gallery": np.stack([vectors[str(p)] for _, p in gallery]),
        "gallery_names": np.array(names),
        "queries": np.stack([vectors[str(p)] for _, p in known] + [vectors[str(p)] for p in unknown]),
        "query_names": np.array([n for n, _ in known] + [""] * len(unknown)),
        "mean": everything.mean(0),
        "cov": np.cov(everything, rowvar=False),
        "real": everything,
        "pool": np.stack([vectors[str(p)] for p in pool]),
        "pipeline": f"{DEFAULT_DETECTOR} + {DEFAULT_EMBEDDER}",
        "identify_threshold": zoo.get(DEFAULT_EMBEDDER).identify_threshold,
    }


def distractors(mean: np.ndarray, cov: np.ndarray, count: int, seed: int = 1):
    """Seeded chunks of synthetic faceprints: the same chunks every time they are asked for."""
    factor = np.linalg.cholesky(cov + 1e-6 * np.eye(len(cov)))
    for i, start in enumerate(range(0, count, CHUNK)):
        n = min(CHUNK, count - start)
        z = np.random.default_rng([seed, i]).standard_normal((n, len(mean)), dtype=np.float32)
        x = mean + z @ factor.T.astype(np.float32)
        yield start, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def blends(pool: np.ndarray, count: int, seed: int = 1, chunk: int = CHUNK):
    """Seeded chunks of blends: the normalised sum of two different pool faces, the same every time
    (benchmarks/batch.py clusters among them too)."""
    n = len(pool)
    for i, start in enumerate(range(0, count, chunk)):
        rng = np.random.default_rng([seed, i])
        a = rng.integers(0, n, min(chunk, count - start))
        b = (a + 1 + rng.integers(0, n - 1, len(a))) % n  # never a itself
        x = pool[a] + pool[b]
        yield start, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fakes(d, kind: str, count: int):
    """The distractors of ``kind`` (``gaussian`` or ``blends``), from the saved data ``d``."""
    return distractors(d["mean"], d["cov"], count) if kind == "gaussian" else blends(d["pool"], count)


def distance_check(data: dict, kind: str) -> dict:
    """How the synthetic faces sit among real ones: nearest-neighbour and random-pair distances."""
    real = data["real"]
    rng = np.random.default_rng(2)
    a = real[rng.choice(len(real), 2000, replace=False)]
    fake = next(fakes(data, kind, 2000))[1]
    def stats(x: np.ndarray) -> dict:
        return {"mean": round(float(x.mean()), 4), "std": round(float(x.std()), 4), "p1": round(float(np.percentile(x, 1)), 4)}
    rr, rf = 1 - a @ real.T, 1 - fake @ real.T
    rr[rr < 1e-4] = np.inf  # an image against itself
    return {"real_to_real_random_pair": stats((1 - a @ a.T)[np.triu_indices(2000, 1)]),
            "synthetic_to_real_random_pair": stats(rf[:, :2000].ravel()),
            "real_to_nearest_other_real": stats(rr.min(1)),
            "synthetic_to_nearest_real": stats(rf.min(1))}


# -- one size, in its own process -----------------------------------------------------------------
def run_size(data_path: Path, size: int, dtype: str, library: str, settings: list[int], kind: str) -> list[dict]:
    """One index of ``size`` faces: ``library`` is ``scan`` or ``graph`` (FaceIndex's first stages;
    ``settings`` are the scan's candidate counts or the graph's search depths, timed on one
    index), ``exact`` (FaceIndex below APPROX_FROM) or ``faiss`` (faiss's HNSW)."""
    from faceprint.index import FaceIndex, Graph, Scan

    d = np.load(data_path)
    gallery, queries, gnames, qnames = d["gallery"], d["queries"], d["gallery_names"], d["query_names"]
    n_fake = size - len(gallery)
    base_rss = _rss_mb()
    os.environ["FACEPRINT_THREADS"] = "2"
    start = time.perf_counter()
    if library == "faiss":
        index = _FaissHNSW(gallery.shape[1])
    elif library == "exact":
        index = FaceIndex(gallery.shape[1], approx_from=None)
    else:
        index = FaceIndex(gallery.shape[1], approx_from=0, first_stage=Graph(dtype=dtype) if library == "graph" else Scan())
    index.add(np.arange(len(gallery)), gallery)
    for s, chunk in fakes(d, kind, n_fake):
        index.add(len(gallery) + s + np.arange(len(chunk)), chunk)
    build = time.perf_counter() - start
    rss = _rss_mb()
    load = os.getloadavg()[0]
    knob = {"scan": "candidates", "graph": "expansion_search"}.get(library)
    timed = []
    for value in settings if knob else [None]:
        if knob:
            setattr(index.first_stage, knob, value)
        timed.append((value, *_time_queries(index, queries)))

    # exact answer: running best over the gallery and regenerated chunks; and each found face's exact
    # distance, so a face identical to the nearest (blends repeat: the same two people drawn twice) counts
    best_d = 1 - queries @ gallery.T
    best_k, best_v = best_d.argmin(1), best_d.min(1)
    rows_of = np.arange(len(queries))
    found_d = [np.where(t[2] < len(gallery), best_d[rows_of, np.minimum(t[2], len(gallery) - 1)], np.inf) for t in timed]
    for s, chunk in fakes(d, kind, n_fake):
        cd = 1 - queries @ chunk.T
        better = cd.min(1) < best_v
        best_k = np.where(better, len(gallery) + s + cd.argmin(1), best_k)
        best_v = np.minimum(best_v, cd.min(1))
        for t, fd in zip(timed, found_d):
            inside = (t[2] >= len(gallery) + s) & (t[2] < len(gallery) + s + len(chunk))
            fd[inside] = cd[rows_of[inside], t[2][inside] - len(gallery) - s]
    threshold = float(d["identify_threshold"])
    common = {"size": size, "library": library, "dtype": dtype if library in ("graph", "faiss") else None,
              "build_s": round(build, 2), "rss_mb": round(rss, 1), "rss_over_baseline_mb": round(rss - base_rss, 1),
              "load_avg_1min": round(load, 2)}
    rows = []
    for (value, lat, found, dist, batch_qps), fd in zip(timed, found_d):
        hit = (found == best_k) | (fd <= best_v + 1e-6)  # 1e-6: the same vector in another chunk
        rows.append({**common, **({knob: value} if knob else {}),
            "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 4), "p99": round(float(np.percentile(lat, 99)), 4),
                           "mean": round(float(lat.mean()), 4)},
            "batch_queries_per_s": round(batch_qps, 1),
            "recall_at_1": float(hit.mean()),
            "recall_at_1_known": float(hit[qnames != ""].mean()),
            "recall_at_1_unknown": float(hit[qnames == ""].mean()),
            "found_a_tie": int((hit & (found != best_k)).sum()),
            # what a user sees: the same name (or the same "unknown") at the shipped identify threshold
            "same_answer": float((_answer(found, dist, gnames, threshold) == _answer(best_k, best_v, gnames, threshold)).mean()),
            "identification": _identification(found, dist, gnames, qnames, len(gallery)),
            "identification_exact": _identification(best_k, best_v, gnames, qnames, len(gallery))})
    return rows


def _time_queries(index, queries: np.ndarray) -> tuple:
    """Single queries on one thread (latencies in ms, top hits, their distances), then one batch on two."""
    os.environ["FACEPRINT_THREADS"] = "1"
    for q in queries[:20]:
        index.search(q, 1)  # warm-up
    lat = []
    found = np.empty(len(queries), np.int64)
    dist = np.empty(len(queries), np.float32)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        k, dd = index.search(q, 1)
        lat.append((time.perf_counter() - t) * 1000)
        found[i], dist[i] = k[0, 0], dd[0, 0]
    os.environ["FACEPRINT_THREADS"] = "2"
    t = time.perf_counter()
    index.search(queries, 1)
    return np.array(lat), found, dist, len(queries) / (time.perf_counter() - t)


def _answer(found: np.ndarray, dist: np.ndarray, gnames: np.ndarray, threshold: float) -> np.ndarray:
    n = len(gnames)
    name = np.where(found < n, gnames[np.minimum(found, n - 1)], "<distractor>")
    return np.where(dist <= threshold, name, "")


def _identification(found: np.ndarray, dist: np.ndarray, gnames: np.ndarray, qnames: np.ndarray, n_gallery: int) -> dict:
    from faceprint.evaluation import threshold_at_far

    name = np.where(found < n_gallery, gnames[np.minimum(found, n_gallery - 1)], "<distractor>")
    known = qnames != ""
    right = (name == qnames) & known
    out = {"rank1": float(right[known].mean())}
    for far in (1e-2, 1e-3):
        t = threshold_at_far(np.sort(dist[~known]), far)
        out[f"dir_at_far_{far:g}"] = float((right & (dist <= t))[known].mean())
    return out


class _FaissHNSW:
    """faiss's HNSW with float16 scalar quantisation, for the library comparison only."""

    def __init__(self, dims: int) -> None:
        import faiss

        faiss.omp_set_num_threads(2)
        self._index = faiss.IndexHNSWSQ(dims, faiss.ScalarQuantizer.QT_fp16, 16, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = 128
        self._index.hnsw.efSearch = 64
        self._ids: list[np.ndarray] = []

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, np.float32))
        self._ids.append(np.asarray(keys))

    def search(self, q: np.ndarray, k: int):
        import faiss

        faiss.omp_set_num_threads(int(os.environ.get("FACEPRINT_THREADS", "1")))
        d, i = self._index.search(np.ascontiguousarray(np.atleast_2d(q), np.float32), k)
        ids = np.concatenate(self._ids)
        return ids[i], 1 - d


def _rss_mb() -> float:
    """Peak RSS of this process since its exec (VmHWM; ru_maxrss would include the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--crossover", type=int, nargs="*", default=[5_000, 20_000, 50_000, 100_000],
                    help="sizes where exact search is timed (with --sizes, this sets APPROX_FROM)")
    ap.add_argument("--compare", type=int, default=50_000, help="size for the graph dtype / library comparison (0: skip)")
    ap.add_argument("--first-stage", choices=("scan", "graph"), default="scan",
                    help="the index's first stage at each of --sizes (the gallery's is the scan)")
    ap.add_argument("--candidates", type=int, nargs="*", default=[],
                    help="scan: candidate counts re-ranked, timed at each size besides the default (same index)")
    ap.add_argument("--expansion", type=int, nargs="*", default=[],
                    help="graph: search depths timed at each size besides the default (same graph)")
    ap.add_argument("--distractors", choices=("gaussian", "blends"), default="gaussian",
                    help="Gaussian samples (the hard case) or blends of two real faces (structured like real ones)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search.json")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        path, size, dtype, library, settings, kind = args.child
        print(json.dumps(run_size(Path(path), int(size), dtype, library, [int(x) for x in settings.split(",")], kind)))
        return
    from faceprint.index import (APPROX_FROM, CANDIDATES, CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH,
                                 REDUCED_DIMS, SCAN_CANDIDATES, SCAN_PARTS)

    os.environ.setdefault("FACEPRINT_THREADS", "1")
    data = real_data(args.lfw, args.workers)
    tmp = ROOT / "benchmarks" / ".search-data.npz"
    np.savez(tmp, **{k: v for k, v in data.items() if k not in ("real", "pipeline")})

    settings = {"scan": sorted({SCAN_CANDIDATES, *args.candidates}), "graph": sorted({EXPANSION_SEARCH, *args.expansion}),
                "exact": [0], "faiss": [0]}

    def child(size: int, library: str, dtype: str = "i8") -> list[dict]:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        p = subprocess.run([sys.executable, __file__, "--child", str(tmp), str(size), dtype, library,
                            ",".join(map(str, settings[library])), args.distractors],
                           capture_output=True, text=True, check=True, env=env)
        rows = json.loads(p.stdout.strip().splitlines()[-1])
        for r in rows:
            knob = f"candidates {r['candidates']:>5}" if "candidates" in r else f"depth {r.get('expansion_search', '-'):>4}"
            print(f"{library:6} {r['dtype'] or '-':4} {size:>9,} {knob}: build {r['build_s']:7.1f} s  "
                  f"RSS {r['rss_mb']:7.1f} MB  p50 {r['latency_ms']['p50']:.3f} ms  p99 {r['latency_ms']['p99']:.3f} ms  "
                  f"batch {r['batch_queries_per_s']:,.0f} q/s  recall@1 {r['recall_at_1']:.4f} "
                  f"(known {r['recall_at_1_known']:.3f}, unknown {r['recall_at_1_unknown']:.3f})  "
                  f"same answer {r['same_answer']:.4f}  load {r['load_avg_1min']}", flush=True)
        return rows

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/search.py " + " ".join(sys.argv[1:]),
        "pipeline": data["pipeline"],
        "index": ({"approx_from": APPROX_FROM, "first_stage": "scan", "reduced_dims": REDUCED_DIMS,
                   "code_parts": SCAN_PARTS, "code_bytes": SCAN_PARTS // 2, "candidates": SCAN_CANDIDATES}
                  if args.first_stage == "scan" else
                  {"approx_from": APPROX_FROM, "first_stage": "graph", "reduced_dims": REDUCED_DIMS,
                   "candidates": CANDIDATES, "connectivity": CONNECTIVITY, "expansion_add": EXPANSION_ADD,
                   "expansion_search": EXPANSION_SEARCH}),
        "gallery": len(data["gallery"]), "queries": {"known": int((data["query_names"] != "").sum()),
                                                     "unknown": int((data["query_names"] == "").sum())},
        "distractors": ("Gaussian with the mean and covariance of all real LFW faceprints, L2-normalised"
                        if args.distractors == "gaussian" else
                        f"blends: the normalised sum of two different faces of {len(data['pool'])} single-photo "
                        "people who are not probes"),
        "distance_check": distance_check(data, args.distractors),
        "crossover": [r for n in args.crossover for r in child(n, "exact")],
        "compare": ([r for dt in ("i8", "f16") for r in child(args.compare, "graph", dt)] + child(args.compare, "faiss", "f16")
                    if args.compare else []),
        "sizes": [r for n in args.sizes for r in child(n, args.first_stage)],
    }
    tmp.unlink()
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
