"""Batch embedding and clustering at scale: `faceprint embed` local vs Ray, then clustering from Parquet.

    python benchmarks/batch.py --lfw ../shared/datasets/lfw   # -> benchmarks/results/batch.json
    python benchmarks/batch.py --photos 100 --sizes 20000      # quick
    python benchmarks/batch.py --sizes                         # throughput only, clustering rows kept
    python benchmarks/batch.py --engines local --sizes 100000 1000000 --distractors blends \
        --out benchmarks/results/batch-blends.json             # clustering among structured distractors

Throughput: the first ``--photos`` LFW images (people in sorted order) through `faceprint embed`
with the local engine (``--workers`` processes) and with Ray (a local Ray started by the command,
``--workers`` actors), each as a user runs it, in a fresh process: the seconds include loading the
models and, for Ray, starting Ray (``first_batch_s``: until the first batch was committed;
``steady_photos_per_s``: the photos after it over the time from its commit to the last one's). ``ray-nice0`` is Ray with its workers at nice 0: Ray starts them at
nice 15, which on a machine shared with other work hands their CPU to everyone else. The datasets
must hold the same faces (checked). The 1-minute load average before and after each run is
recorded: the machine may be shared.

Clustering: the local run's Parquet dataset plus synthetic distractors up to each ``--sizes``
total, written as Parquet parts into a copy of the dataset, then, in a fresh process per size,
`load_faces` (read) and the default clustering method (k-NN graph through ``faceprint.index``:
approximate from 50,000 faces) timed, with the process's peak RSS. Distractors are a Gaussian with
the mean and the Ledoit-Wolf shrunk covariance of the real faceprints (a few hundred faces do not
fit a 512 x 512 covariance), L2-normalised, seeded: the hard case, with none of the structure of
real faces. ``--distractors blends`` (as in benchmarks/search.py): each the normalised sum of two
different faces of LFW people none of whose photos is clustered (their faceprints from the
evaluation cache, embedded once by the same pipeline), so a blend lies near two real faces of other
people. Scored on the LFW photos' central faces (as `faceprint eval cluster` does): BCubed
precision/recall/F1 against the folder names, and how many LFW faces ended up in a cluster with a
distractor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # beside this script
from search import blends  # beside this script too: the same structured distractors

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 50_000  # distractors per Parquet part
BATCH = 16  # photos per batch in the throughput runs


def lfw_photos(lfw: Path, n: int) -> list[Path]:
    found: list[Path] = []
    for person in sorted((lfw / "images").iterdir()):
        found += sorted(person.glob("*.jpg"))
        if len(found) >= n:
            break
    return found[:n]


def embed_run(photos: list[Path], out: Path, run: str, workers: int) -> dict:
    """One `faceprint embed` as a user runs it. ``ray-nice0``: Ray with its workers at nice 0, not 15."""
    engine, env = run.split("-")[0], {"PYTHONPATH": str(ROOT)}
    if run == "ray-nice0":
        env["RAY_worker_niceness"] = "0"
    load_before = os.getloadavg()[0]
    started, wall_started = time.perf_counter(), time.time()
    p = subprocess.run([sys.executable, "-m", "faceprint", "embed", *map(str, photos), "--out", str(out), "--engine",
                        engine, "--workers", str(workers), "--batch-size", str(BATCH), "--json"],
                       capture_output=True, text=True, env={**os.environ, **env})
    wall = time.perf_counter() - started
    if p.returncode not in (0, 1):
        raise SystemExit(p.stderr)
    summary = json.loads(p.stdout)
    # start-up: until the first batch is committed (models loaded, and for Ray, Ray and its actors started)
    committed = sorted(f.stat().st_mtime for f in (out / "photos").glob("part-*.parquet"))
    first = committed[0] - wall_started
    # past start-up: the photos after the first batch over the time from its commit to the last's,
    # what the engine sustains once running (Ray's overhead without Ray's start)
    steady = (summary["embedded"] - BATCH) / (committed[-1] - committed[0]) if len(committed) > 1 else None
    row = {"run": run, "engine": engine, "workers": workers, "photos": summary["embedded"], "faces": summary["faces"],
           "failed": len(summary["failed"]), "seconds": round(wall, 2),
           "photos_per_s": round(summary["embedded"] / wall, 3),
           "first_batch_s": round(first, 2), "steady_photos_per_s": steady and round(steady, 3),
           "load_avg_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}}
    print(f"{run:9} x{workers}: {row['photos']} photos, {row['faces']} faces in {wall:.1f} s = "
          f"{row['photos_per_s']:.2f} photos/s ({steady or 0:.2f} after the first batch), first batch after {row['first_batch_s']} s "
          f"(load {row['load_avg_1min']})", flush=True)
    return row


def blend_pool(lfw: Path, dataset: Path) -> np.ndarray:
    """Faceprints of every LFW photo of the people none of whose photos is in ``dataset``."""
    from faceprint import evaluation as ev
    from faceprint.batch import read_photos
    from faceprint.detection import DEFAULT_DETECTOR
    from faceprint.embedding import DEFAULT_EMBEDDER

    taken = {Path(p).parent.name for p in read_photos(dataset).column("path").to_pylist()}
    people = ev.lfw_people(lfw)  # all of LFW, as benchmarks/search.py embeds it: one cache for both
    vectors, _ = ev.embed_images([p for photos in people.values() for p in photos], DEFAULT_DETECTOR, DEFAULT_EMBEDDER)
    pool = [vectors[str(p)] for person, photos in people.items() if person not in taken for p in photos]
    return np.stack([v for v in pool if v is not None])


def with_distractors(dataset: Path, out: Path, size: int, pool: np.ndarray | None = None) -> int:
    """A copy of ``dataset`` topped up to ``size`` faces with seeded synthetic ones, Gaussian or, given
    a ``pool`` of real faceprints, blends of two of them; how many were added."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.covariance import ledoit_wolf

    from faceprint.batch import face_schema, load_faces, photo_schema

    shutil.copytree(dataset, out)
    _, real, manifest = load_faces(dataset)
    count = max(0, size - len(real))

    def gaussian():
        mean, (cov, _) = real.mean(0), ledoit_wolf(real)
        factor = np.linalg.cholesky(cov + 1e-6 * np.eye(len(cov))).T.astype(np.float32)
        for i, start in enumerate(range(0, count, CHUNK)):
            x = mean + np.random.default_rng([7, i]).standard_normal((min(CHUNK, count - start), len(mean)),
                                                                      dtype=np.float32) @ factor
            yield start, x / np.linalg.norm(x, axis=1, keepdims=True)

    schema, number = face_schema(manifest["dims"]), 90_000
    for i, (start, x) in enumerate(gaussian() if pool is None else blends(pool, count, seed=7, chunk=CHUNK)):
        n = len(x)
        paths = pa.array([f"synthetic/{start + j}" for j in range(n)])
        sha = pa.array(["0" * 64] * n)
        faces = pa.table({"path": paths, "sha256": sha, "face": pa.array(np.zeros(n, np.int32)),
                          "box": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(4 * n, np.float32)), 4),
                          "landmarks": pa.array([[]] * n, schema.field("landmarks").type),
                          "score": pa.array(np.ones(n, np.float32)), "detector": pa.array(["synthetic"] * n),
                          "embedder": pa.array([manifest["embedder"]] * n),
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), manifest["dims"])},
                         schema=schema)
        photos = pa.table({"path": paths, "sha256": sha, "size": pa.array(np.zeros(n, np.int64)),
                           "mtime_ns": pa.array(np.zeros(n, np.int64)), "width": pa.nulls(n, pa.int32()),
                           "height": pa.nulls(n, pa.int32()), "status": pa.array(["ok"] * n),
                           "faces": pa.array(np.ones(n, np.int32)), "error": pa.nulls(n, pa.string())},
                          schema=photo_schema())
        pq.write_table(faces, out / "faces" / f"part-{number + i:05d}.parquet")
        pq.write_table(photos, out / "photos" / f"part-{number + i:05d}.parquet")
    return count


def cluster_child(dataset: str, method: str) -> dict:
    """In a fresh process: read the dataset, cluster it, score the LFW part; time and peak RSS."""
    from faceprint import evaluation as ev
    from faceprint.batch import load_faces, read_photos
    from faceprint.clustering import make_estimator

    t0 = time.perf_counter()
    faces, X, manifest = load_faces(dataset)
    t1, c1 = time.perf_counter(), time.process_time()
    labels = make_estimator(method, None, manifest["embedder"]).fit_predict(X)
    t2, c2 = time.perf_counter(), time.process_time()
    real = np.array([not f["path"].startswith("synthetic/") for f in faces])
    # each LFW photo's central face, as `faceprint eval cluster` scores it
    shapes = {r["path"]: (r["width"], r["height"]) for r in read_photos(dataset).to_pylist() if r["width"]}
    best: dict[str, tuple[float, int]] = {}
    for i in np.flatnonzero(real):
        (x1, y1, x2, y2), (w, h) = faces[i]["box"], shapes[faces[i]["path"]]
        off = ((x1 + x2) / 2 - w / 2) ** 2 + ((y1 + y2) / 2 - h / 2) ** 2
        if faces[i]["path"] not in best or off < best[faces[i]["path"]][0]:
            best[faces[i]["path"]] = (off, i)
    central = np.array(sorted(i for _, i in best.values()))
    truth = np.array([Path(faces[i]["path"]).parent.name for i in central])
    tainted = set(labels[~real][labels[~real] >= 0].tolist())
    p, r, f1 = ev.bcubed_prf(truth, labels[central])
    # where the distractors sit: their nearest real face, against a real face's nearest other photo's
    Xr, sample = X[real], np.flatnonzero(~real)[:2000]
    paths = np.array([f["path"] for f in faces])[real]
    real_d = 1 - Xr @ Xr.T
    real_d[paths[:, None] == paths[None, :]] = np.inf
    spread = {"distractor_to_nearest_real_median": float(np.median((1 - X[sample] @ Xr.T).min(1))) if len(sample)
              else None, "real_to_nearest_other_photo_median": float(np.median(real_d.min(1)))}
    return {"faces": len(X), "lfw_faces": int(real.sum()), "lfw_scored": len(central), "method": method,
            "read_s": round(t1 - t0, 2), "cluster_s": round(t2 - t1, 2),
            "cluster_cpu_s": round(c2 - c1, 2),
            "peak_rss_mb": round(_rss_mb(), 1), "bcubed": {"precision": p, "recall": r, "f1": f1},
            "lfw_faces_with_a_distractor": int(sum(labels[i] in tainted for i in central)),
            "distractors_in_clusters": int((labels[~real] >= 0).sum()), "distances": spread,
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="*", default=[0, 100_000])
    ap.add_argument("--method", default="average")
    ap.add_argument("--distractors", choices=("gaussian", "blends"), default="gaussian",
                    help="Gaussian samples (the hard case) or blends of two real faces of other LFW people")
    ap.add_argument("--engines", nargs="*", default=["local", "ray", "ray-nice0", "ray-nice0", "ray", "local"],
                    help="runs in this order (there and back: the load on a shared machine drifts): local, ray, "
                         "ray-nice0 (Ray's workers at nice 0 instead of its default 15)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(cluster_child(*args.child)))
        return
    work = Path(tempfile.mkdtemp(prefix="faceprint-batch-"))
    try:
        photos = lfw_photos(args.lfw, args.photos)
        outs = [work / f"{i}-{engine}" for i, engine in enumerate(args.engines)]
        runs = [embed_run(photos, out, engine, args.workers) for out, engine in zip(outs, args.engines)]
        if len(runs) > 1:
            from faceprint.batch import read_faces

            tables = [read_faces(out).sort_by([("path", "ascending"), ("face", "ascending")]) for out in outs]
            same = all(t.equals(tables[0]) for t in tables[1:])
            print(f"same faces from every engine: {same}", flush=True)
        else:
            same = None
        clustering = []
        pool = blend_pool(args.lfw, outs[0]) if args.distractors == "blends" and args.sizes else None
        for size in args.sizes:
            mix = work / f"mix-{size}"
            added = with_distractors(outs[0], mix, size, pool)
            p = subprocess.run([sys.executable, __file__, "--child", str(mix), args.method], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if p.returncode:
                raise SystemExit(p.stderr)
            row = {"distractors": added, "distractor_kind": args.distractors,
                   **({"blend_pool": len(pool)} if pool is not None else {}),
                   **json.loads(p.stdout.strip().splitlines()[-1])}
            b = row["bcubed"]
            print(f"cluster {row['faces']:>9,} faces ({added:,} synthetic): read {row['read_s']} s, "
                  f"cluster {row['cluster_s']} s, peak RSS {row['peak_rss_mb']:.0f} MB, BCubed on "
                  f"{row['lfw_scored']} LFW photos P {b['precision']:.4f} R {b['recall']:.4f} F1 {b['f1']:.4f}, "
                  f"{row['lfw_faces_with_a_distractor']} LFW faces with a distractor (load {row['load_avg_1min']})",
                  flush=True)
            clustering.append(row)
            shutil.rmtree(mix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/batch.py " + " ".join(sys.argv[1:])
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
                         f"Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"), "commands": {"throughput": command, "clustering": command},
              "throughput": runs, "same_faces": same, "clustering": clustering}
    if not args.sizes and args.out.is_file():  # throughput only: keep the clustering rows measured before
        before = json.loads(args.out.read_text())
        report["clustering"] = before["clustering"]
        report["commands"]["clustering"] = before.get("commands", {}).get("clustering", before.get("command"))
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
