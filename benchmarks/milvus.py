"""Enrol and search latency, and recall, of a gallery whose vectors are in Milvus, beside the in-memory index.

    python benchmarks/milvus.py                      # 5,000 faces; FLAT and HNSW on Milvus Lite, and memory
    python benchmarks/milvus.py --faces 100000 --uri http://127.0.0.1:19540 --out benchmarks/results/x.json
                                                     # a Milvus server instead of Milvus Lite

A SQLite gallery is filled with ``--faces`` synthetic 512-d unit vectors written straight to the
database (latency depends on the count and the dimension, not on the faces). Then, per backend, in a
fresh gallery object: the first search (the index built or uploaded from the database; on a server,
then the wait until Milvus has indexed every row, which it does in the background), single-vector
searches (p50/p95), one batch of 100 vectors, recall against exact search, and enrolments: a face
written to the database and the index caught up with it (what the next search after an enrolment
pays), p50/p95. Finally a restart: a new gallery object's first search (memory: the saved index
loaded; Milvus: the stamp checked, the log caught up).

Recall: the share of the exact top-k (cosine, brute force over every stored vector) that the index
returns, for two kinds of probe: "near", a stored face plus noise (cosine about 0.6 to it, as a new
photo of an enrolled person), where recall@1 is whether that person's face comes first, and "random",
unit vectors far from every face, the hard case for a graph index, where neighbours barely differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faceprint import Gallery
from faceprint.gallery.store import NewFace, open_store

EMBEDDER, DIMS, RANK = "faceplugin", 512, 160
log = logging.getLogger("benchmarks.milvus")


def _vectors(n: int, seed: int) -> np.ndarray:
    """Unit vectors shaped like faceprints: Gaussian in a 160-d subspace of the 512 (one for every set),
    variance falling off so that 128 components hold 97% of it, as for LFW faceprints (docs/benchmarks.md,
    Search). Isotropic 512-d vectors would defeat the in-memory index's 128-component first stage."""
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(DIMS, RANK)))[0]
    z = np.random.default_rng(seed).normal(size=(n, RANK)) * np.exp(-np.arange(RANK) / 80)
    v = (z @ basis.T).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _near(stored: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` stored faces plus noise: cosine about 0.6 to the face they came from."""
    rng = np.random.default_rng(seed)
    noisy = stored[rng.choice(len(stored), n, replace=False)] + 1.35 * _vectors(n, seed + 1)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def _add(store, i: int, vector: np.ndarray) -> int:
    return store.add_face(NewFace(f"p{i // 4}", EMBEDDER, vector, hashlib.sha256(str(i).encode()).hexdigest(),
                                  box=[0, 0, 1, 1], landmarks={}, detector="bench"))


def _ms(times: list[float]) -> dict:
    t = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(t, 50)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2)}


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])), 4)


def _wait_indexed(g: Gallery, timeout: float = 1800) -> float:
    """Seconds until a Milvus server has built its index over every row (it indexes sealed segments in
    the background; until then it searches them by brute force)."""
    index, start = g._synced_index(), time.perf_counter()
    while time.perf_counter() - start < timeout:
        info = index.client.describe_index(index.name, "vector")
        if info.get("pending_index_rows", 0) == 0 and info.get("indexed_rows", 0) >= info.get("total_rows", 1):
            return round(time.perf_counter() - start, 1)
        time.sleep(1)
    raise TimeoutError(f"Milvus did not index {index.name} within {timeout:.0f} s")


def _by_consistency(index, probes: np.ndarray) -> dict:
    """A server's single-vector search through pymilvus at each consistency level, p50/p95: faceprint
    searches with Strong, which waits for the server's next time tick."""
    out = {}
    for level in ("Strong", "Bounded", "Eventually"):
        times = []
        for p in probes:
            t = time.perf_counter()
            index.client.search(index.name, data=[p], limit=1, anns_field="vector", consistency_level=level,
                                search_params={"metric_type": "COSINE", "params": {"ef": 128}})
            times.append(time.perf_counter() - t)
        out[level] = _ms(times)
    return out


def run(db: Path, vectors: str | None, faces: int, stored: np.ndarray, ids: np.ndarray, searches: int,
        enrols: int, server: bool) -> dict:
    probes = _vectors(searches, 1)
    out = {}
    with Gallery(db, embedder=EMBEDDER, vectors=vectors) as g:
        t = time.perf_counter()
        g.search(probes[:1])
        out["first_search_s"] = round(time.perf_counter() - t, 2)
        if server:
            out["index_build_wait_s"] = _wait_indexed(g)
            out["server_version"] = g._synced_index().client.get_server_version()
            out["search_by_consistency"] = _by_consistency(g._synced_index(), probes)
        times = []
        for p in probes:
            t = time.perf_counter()
            g.search(p[None])
            times.append(time.perf_counter() - t)
        out["search"] = _ms(times)
        t = time.perf_counter()
        g.search(probes[:100], 1)
        out["batch100_ms"] = round((time.perf_counter() - t) * 1000, 1)
        index = g._synced_index()
        for kind, queries in (("near", _near(stored, searches, 3)), ("random", probes)):
            exact = ids[np.argsort(-(queries @ stored.T), axis=1)[:, :10]]
            found = index.search(queries, 10)[0]
            out[f"recall_{kind}"] = {"at1": _recall(found[:, :1], exact[:, :1]), "at10": _recall(found, exact)}
        writes, syncs = [], []
        for i, v in enumerate(_vectors(enrols, 2)):
            t = time.perf_counter()
            _add(g.store, faces + i + 10**6, v)
            t1 = time.perf_counter()
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
    ap.add_argument("--out", type=Path, help="write the results here as JSON")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = Path(tempfile.mkdtemp(prefix="faceprint-milvus-bench-"))
    stored = _vectors(args.faces, 0)
    results = {"command": " ".join(["python", *sys.argv]), "faces": args.faces, "dims": DIMS,
               "searches": args.searches, "enrols": args.enrols, "cpus": os.cpu_count(),
               "machine": platform.platform(), "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        backends = {"memory": None} | ({"milvus server": args.uri} if args.uri else
                                       {"milvus lite FLAT": str(root / "flat.db"),
                                        "milvus lite HNSW": str(root / "hnsw.db") + "?index=HNSW"})
        for name, uri in backends.items():
            db = root / f"{name.replace(' ', '_')}.sqlite"
            store = open_store(db)
            ids = np.array([_add(store, i, v) for i, v in enumerate(stored)], np.int64)
            store.close()
            results[name] = run(db, uri, args.faces, stored, ids, args.searches, args.enrols, name == "milvus server")
            log.info("%s %s", name, json.dumps(results[name]))
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
