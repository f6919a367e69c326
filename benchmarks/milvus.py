"""Enrol and search latency of a gallery whose vectors are in Milvus Lite, beside the in-memory index.

    python benchmarks/milvus.py                      # 5,000 faces; FLAT and HNSW on Milvus Lite, and memory
    python benchmarks/milvus.py --faces 2000 --uri http://127.0.0.1:19530   # a Milvus server instead

A SQLite gallery is filled with ``--faces`` synthetic 512-d unit vectors written straight to the
database (latency depends on the count and the dimension, not on the faces). Then, per backend, in a
fresh gallery object: the first search (the index built or uploaded from the database), single-vector
searches (p50/p95), one batch of 100 vectors, and enrolments: a face written to the database and the
index caught up with it (what the next search after an enrolment pays), p50/p95. Finally a restart:
a new gallery object's first search (memory: the saved index loaded; Milvus: the stamp checked, the
log caught up).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from faceprint import Gallery
from faceprint.gallery.store import NewFace, open_store

EMBEDDER, DIMS = "faceplugin", 512


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _add(store, i: int, vector: np.ndarray) -> int:
    return store.add_face(NewFace(f"p{i // 4}", EMBEDDER, vector, hashlib.sha256(str(i).encode()).hexdigest(),
                                  box=[0, 0, 1, 1], landmarks={}, detector="bench"))


def _ms(times: list[float]) -> dict:
    t = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(t, 50)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2)}


def run(db: Path, vectors: str | None, faces: int, searches: int, enrols: int) -> dict:
    probes = _vectors(searches, 1)
    out = {}
    with Gallery(db, embedder=EMBEDDER, vectors=vectors) as g:
        t = time.perf_counter()
        g.search(probes[:1])
        out["first_search_s"] = round(time.perf_counter() - t, 2)
        times = []
        for p in probes:
            t = time.perf_counter()
            g.search(p[None])
            times.append(time.perf_counter() - t)
        out["search"] = _ms(times)
        t = time.perf_counter()
        g.search(probes[:100], 1)
        out["batch100_ms"] = round((time.perf_counter() - t) * 1000, 1)
        writes, syncs = [], []
        new = _vectors(enrols, 2)
        for i, v in enumerate(new):
            t = time.perf_counter()
            _add(g.store, faces + i + 10**6, v)
            t1 = time.perf_counter()
            with g._index_lock:
                g._synced_index()
            writes.append(t1 - t)
            syncs.append(time.perf_counter() - t1)
        out["enrol_db_write"] = _ms(writes)
        out["enrol_index_catch_up"] = _ms(syncs)
        times = []
        for p in probes[:50]:
            t = time.perf_counter()
            g.search(p[None])
            times.append(time.perf_counter() - t)
        out["search_after_enrols"] = _ms(times)
    with Gallery(db, embedder=EMBEDDER, vectors=vectors) as g:
        t = time.perf_counter()
        g.search(probes[:1])
        out["restart_first_search_s"] = round(time.perf_counter() - t, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--enrols", type=int, default=100)
    ap.add_argument("--uri", help="a Milvus server to measure instead of Milvus Lite")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="faceprint-milvus-bench-"))
    try:
        results = {}
        backends = {"memory": None} | ({"milvus server": args.uri} if args.uri else
                                       {"milvus lite FLAT": str(root / "flat.db"),
                                        "milvus lite HNSW": str(root / "hnsw.db") + "?index=HNSW"})
        for name, uri in backends.items():
            db = root / f"{name.replace(' ', '_')}.sqlite"
            store = open_store(db)
            for i, v in enumerate(_vectors(args.faces, 0)):
                _add(store, i, v)
            store.close()
            results[name] = run(db, uri, args.faces, args.searches, args.enrols)
            print(name, json.dumps(results[name]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
