"""Speed side by side: face_recognition 1.3.0 against faceprint, same images, same machine, one run.

    make bench-speed                                   # all 7,701 LFW pair images (about 27 min on 2 cores)
    make bench-speed BENCH_ARGS="--images 200"         # a quick check on an evenly spaced subset

which runs

    .venv/bin/python benchmarks/speed.py --lfw ../shared/datasets/lfw --fr-python benchmarks/.venv-fr/bin/python \\
        --fr-blas-python benchmarks/.venv-fr-blas/bin/python --out benchmarks/results/speed.json

Pipelines: face_recognition's HOG detector (all images), twice: on the prebuilt ``dlib-bin`` wheel
(no BLAS) and on dlib compiled here from PyPI's source against Debian's OpenBLAS (``--fr-blas-python``,
the stronger anchor: its ResNet runs on BLAS); its ``cnn`` detector (``--cnn-images``, an evenly
spaced sample, it is ~30x slower on a CPU); faceprint's default (``get_pipeline()``), the
fusion faceplugin+dlib-resnet with the default detector, and its fast ones (BlazeFace short range
with MobileFace, and with the MobileFaceNet from expo). Each image is processed end to end (decode -> detect ->
align/landmarks -> embed every face found) by ``--workers`` fresh processes, one per core, each
single-threaded (``FACEPRINT_THREADS=1``, ``OMP/OPENBLAS/MKL_NUM_THREADS=1``), on interleaved
halves of the list. The workers load their models, warm up on one image, and start together, so
images/s is steady-state throughput; start-up is measured apart as cold start (a fresh process
alone: import + model load + first image, models already cached; median of ``--cold-repeats``).

Per-image times are kept for every pipeline, so the ratio to face_recognition is computed image
by image and LFW pair by pair (a pair's two images' times summed) on exactly the same files, as
well as from throughput. face_recognition runs in its own venv (``benchmarks/speed_fr.py``),
faceprint in the project's (``--worker`` mode of this file).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # for the faceprint worker's cold start: before numpy or faceprint load

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import cpu_model, serve  # beside this script

HERE = Path(__file__).resolve().parent
SINGLE_THREAD = {"FACEPRINT_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1"}
#: name -> (python: "fr" or "fp", detector or face_recognition model, embedder)
PIPELINES = {
    "face_recognition-hog": ("fr", "hog", "dlib-resnet"),
    "face_recognition-hog-blas": ("fr-blas", "hog", "dlib-resnet"),  # dlib built with OpenBLAS
    "face_recognition-cnn": ("fr", "cnn", "dlib-resnet"),
    "faceprint-default": ("fp", None, None),  # whatever get_pipeline() gives
    "faceprint-fusion": ("fp", "blazeface-mtcnn", "faceplugin+dlib-resnet"),  # the most accurate (99.53%)
    "faceprint-fast": ("fp", "blazeface-short", "mobilefacenet"),
    "faceprint-fast-expo": ("fp", "blazeface-short", "expo-mobilefacenet"),
    # the default's ONet landmarks and embedder, BlazeFace's short-range model proposing (99.38%)
    "faceprint-short-mtcnn": ("fp", "blazeface-short-mtcnn", "faceplugin"),
}
#: what every faceprint pipeline is compared with: face_recognition on dlib without and with BLAS
BASELINES = ("face_recognition-hog", "face_recognition-hog-blas")


# -- the faceprint worker (same protocol as speed_fr.py) -------------------------------------------

def worker(mode: str, detector: str, embedder: str, list_path: str, out_path: str) -> None:
    import numpy as np

    from faceprint.embedding import Embedder
    from faceprint.imageio import load_image
    from faceprint.pipeline import get_pipeline

    paths = [p for p in Path(list_path).read_text().split("\n") if p]
    pipe = get_pipeline() if detector == "-" else get_pipeline(detector, embedder)
    embedder_ = pipe.embedder  # loaded lazily otherwise; cold start counts it
    # Pipeline.embed calls embed_faces where the embedder has it; the base version is align +
    # embed_crops, which are timed apart here; an override (a fusion) is timed as a whole.
    base = getattr(Embedder, "embed_faces", None)
    split = base is None or getattr(type(embedder_), "embed_faces", None) is base
    t_loaded = time.perf_counter()

    def one(path: str) -> dict:
        # Pipeline.embed's steps (decode, detect, align, embed), timed apart
        c, t = time.process_time(), time.perf_counter()
        image = load_image(path)
        t1 = time.perf_counter()
        faces = pipe.detector.detect(image)
        t2 = time.perf_counter()
        if split:
            crops = np.stack([a.pixels for a in pipe.align(image, faces)]) if faces else None
            t3 = time.perf_counter()
            n = len(embedder_.embed_crops(crops)) if faces else 0
        else:  # an embedder that aligns for itself (e.g. a fusion): align is counted in embed
            t3 = t2
            n = len(embedder_.embed_faces(image, faces)) if faces else 0
        t4 = time.perf_counter()
        return {"decode": t1 - t, "detect": t2 - t1, "align": t3 - t2, "embed": t4 - t3, "total": t4 - t, "cpu": time.process_time() - c, "faces": n}

    serve(mode, paths, one, out_path, T0, t_loaded, {"pipeline": f"{pipe.detector.name}+{embedder_.name}"})


# -- the parent ------------------------------------------------------------------------------------

def _command(kind: str, model: str | None, embedder: str | None, mode: str, list_path: str, out: str,
             pythons: dict[str, str]) -> list[str]:
    if kind != "fp":  # face_recognition, in the venv of its dlib build
        return [pythons[kind], str(HERE / "speed_fr.py"), mode, model, list_path, out]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", mode, model or "-", embedder or "-",
            list_path, out]


def _env() -> dict[str, str]:
    return {**os.environ, **SINGLE_THREAD}


def cold_start(kind, model, embedder, path: str, pythons: dict[str, str], repeats: int, tmp: Path) -> dict:
    """A fresh process, alone on the machine: import + model load + first image (median of repeats)."""
    lst = tmp / "cold.txt"
    lst.write_text(path + "\n")
    runs = []
    for i in range(repeats):
        out = tmp / f"cold-{i}.json"
        t = time.perf_counter()
        subprocess.run(_command(kind, model, embedder, "cold", str(lst), str(out), pythons), env=_env(), check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        runs.append({**json.loads(out.read_text()), "process_wall_s": wall})
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} | {"repeats": repeats}


def throughput(kind, model, embedder, paths: list[str], workers: int, pythons: dict[str, str], tmp: Path) -> dict:
    """``workers`` processes on interleaved shares of ``paths``, released together once all are loaded."""
    procs, outs = [], []
    for w in range(workers):
        lst, out = tmp / f"list-{w}.txt", tmp / f"out-{w}.json"
        lst.write_text("\n".join(paths[w::workers]) + "\n")
        outs.append(out)
        procs.append(subprocess.Popen(_command(kind, model, embedder, "run", str(lst), str(out), pythons),
                                      env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"worker failed to start: {p.args}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"worker failed: {p.args}")
    results = [json.loads(o.read_text()) for o in outs]
    times = {k: v for r in results for k, v in r["times"].items()}
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    faces = sum(t["faces"] for t in times.values())
    ms = lambda key: round(1000 * statistics.fmean(t[key] for t in times.values()), 2)
    summary = {
        "images": len(times),
        "workers": workers,
        "wall_s": round(wall, 2),
        "images_per_s": round(len(times) / wall, 2),
        "ms_per_image_per_core": {"mean": ms("total"),
                                  "median": round(1000 * statistics.median(t["total"] for t in times.values()), 2)},
        # CPU time is less inflated than wall time when other jobs share the cores
        "cpu_ms_per_image_mean": ms("cpu"),
        "stages_ms_mean": {k: ms(k) for k in ("decode", "detect", "align", "embed")},
        "embed_ms_per_face": round(1000 * sum(t["embed"] for t in times.values()) / max(faces, 1), 2),
        "faces": faces,
        "images_without_face": sum(t["faces"] == 0 for t in times.values()),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
    }
    if "pipeline" in results[0]:
        summary["pipeline"] = results[0]["pipeline"]
    return {"summary": summary, "times": {k: v["total"] for k, v in times.items()},
            "cpu": {k: v["cpu"] for k, v in times.items()}}


def _quantiles(values: list[float]) -> dict:
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 2)
    return {"median": round(statistics.median(values), 2), "p10": pick(0.1), "p90": pick(0.9), "n": len(values)}


def ratios(base: dict[str, float], other: dict[str, float], pairs: list[tuple[str, str]]) -> dict:
    """How many times faster ``other`` is than ``base``: per image, and per LFW pair (both images' times)."""
    common = [p for p in other if p in base]
    out = {"per_image": _quantiles([base[p] / other[p] for p in common])}
    both = [(a, b) for a, b in pairs if a in base and b in base and a in other and b in other]
    if both:
        out["per_pair"] = _quantiles([(base[a] + base[b]) / (other[a] + other[b]) for a, b in both])
    out["total_time"] = round(sum(base[p] for p in common) / sum(other[p] for p in common), 2)
    return out


def _cpu_ratio(base: dict[str, float], other: dict[str, float]) -> float:
    """Total CPU seconds of ``base`` over ``other`` on their common images."""
    common = [p for p in other if p in base]
    return round(sum(base[p] for p in common) / sum(other[p] for p in common), 2)


def _spread(paths: list[str], n: int) -> list[str]:
    """``n`` evenly spaced items, so a subset covers the whole (alphabetical) list of people."""
    if n >= len(paths):
        return paths
    return [paths[int(i * len(paths) / n)] for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, required=True, help="LFW folder with pairs.txt and images/")
    ap.add_argument("--fr-python", default=str(HERE / ".venv-fr" / "bin" / "python"),
                    help="python of the venv with face_recognition on the dlib-bin wheel (make bench-speed builds it)")
    ap.add_argument("--fr-blas-python", default=str(HERE / ".venv-fr-blas" / "bin" / "python"),
                    help="python of the venv with face_recognition on dlib built with OpenBLAS (make bench-speed builds it)")
    ap.add_argument("--images", type=int, help="an evenly spaced subset of the pair images, for quick checks")
    ap.add_argument("--cnn-images", type=int, default=100, help="sample for face_recognition's cnn detector")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    ap.add_argument("--cold-repeats", type=int, default=3)
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset of " + ", ".join(PIPELINES))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from faceprint.evaluation import read_pairs

    lfw_pairs = [(str(p.a), str(p.b)) for p in read_pairs(args.lfw)]
    every = sorted({p for pair in lfw_pairs for p in pair})
    paths = _spread(every, args.images) if args.images else every
    cnn_paths = _spread(paths, args.cnn_images)
    names = [n for n in args.pipelines.split(",") if n]
    unknown = set(names) - set(PIPELINES)
    if unknown:
        raise SystemExit(f"unknown pipelines: {', '.join(sorted(unknown))}")
    pythons = {"fr": args.fr_python, "fr-blas": args.fr_blas_python}
    for kind in {PIPELINES[n][0] for n in names} - {"fp"}:
        if not Path(pythons[kind]).exists():
            raise SystemExit(f"{pythons[kind]} not found: `make bench-speed` builds face_recognition's venvs")

    report = {
        "command": " ".join(["python", *(shlex.quote(a) for a in sys.argv)]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
                    "python": platform.python_version()},
        "threads_per_worker": SINGLE_THREAD,
        "images": {"all": len(paths), "cnn_sample": len(cnn_paths), "source": "unique images of LFW pairs.txt"},
        "load_average": {"start": [round(v, 2) for v in os.getloadavg()]},
        "pipelines": {},
    }
    per_image: dict[str, dict[str, float]] = {}
    per_image_cpu: dict[str, dict[str, float]] = {}

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for name in names:
            kind, model, embedder = PIPELINES[name]
            subset = cnn_paths if name == "face_recognition-cnn" else paths
            load_before = [round(v, 2) for v in os.getloadavg()]
            print(f"{name}: {len(subset)} images, {args.workers} workers (load {load_before[0]})", flush=True)
            cold = cold_start(kind, model, embedder, subset[0], pythons, args.cold_repeats, tmp)
            run = throughput(kind, model, embedder, subset, args.workers, pythons, tmp)
            per_image[name] = run["times"]
            per_image_cpu[name] = run["cpu"]
            entry = {**run["summary"], "cold_start": cold, "load_average_before": load_before}
            report["pipelines"][name] = entry
            print(f"  {json.dumps(entry)}", flush=True)
            save()

        cnn = per_image.get("face_recognition-cnn")
        for name, entry in report["pipelines"].items():
            for baseline in BASELINES:
                base = per_image.get(baseline)
                if base is not None and (name.startswith("faceprint") or name == BASELINES[1] and baseline == BASELINES[0]):
                    entry[f"vs_{baseline}"] = {
                        "throughput": round(entry["images_per_s"] / report["pipelines"][baseline]["images_per_s"], 2),
                        **ratios(base, per_image[name], lfw_pairs),
                        "cpu_time": _cpu_ratio(per_image_cpu[baseline], per_image_cpu[name])}
            if cnn is not None and name.startswith("faceprint"):
                entry["vs_face_recognition-cnn"] = ratios(cnn, per_image[name], lfw_pairs)
    report["load_average"]["end"] = [round(v, 2) for v in os.getloadavg()]
    save()
    print(json.dumps({n: {k: e.get(k) for k in ("images_per_s", "embed_ms_per_face", *(f"vs_{b}" for b in BASELINES))}
                      for n, e in report["pipelines"].items()}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:7])
    else:
        main()
