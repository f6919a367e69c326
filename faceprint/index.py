"""Search: the k nearest faceprints of a query among many, exact while small, approximate when large.

Embeddings are unit vectors, so nearest by cosine distance is nearest by inner product. Below
``APPROX_FROM`` vectors the index is a float32 matrix and a search is one matrix product: exact.
A single query reads the whole matrix, so its time grows with the gallery (0.4 ms at 5,000
512-d faces, 4 ms at 20,000, 22 ms at 100,000 on one core here); from ``APPROX_FROM`` on, the
index is a usearch HNSW graph storing float16 vectors, whose query time grows only slowly.
Graph search is approximate, and face embeddings are its hard case (high-dimensional, and a
stranger is about equally far from everyone), so the graph is built denser and searched deeper
than usearch's defaults. Measurements: ``benchmarks/search.py``, ``docs/benchmarks.md`` (Search).
Keys are caller-chosen integers (the gallery uses face ids).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Size at which the index switches from exact to approximate search: a query of exact search
#: costs 0.4 ms at 5,000 faces and 4 ms at 20,000; the graph's, 0.55 ms at 10,000 (recall 1.0).
APPROX_FROM = 10_000
#: HNSW graph degree, build depth, search depth. At 100k real + synthetic faces, degree 16 / depth
#: 64 (about usearch's defaults) found the exact nearest face for 88% of known probes, 32 / 128
#: for 98% (docs/benchmarks.md, Search).
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 128
_EXACT_BLOCK = 4096  # query rows per matrix product, so a big batch never builds a huge matrix


class FaceIndex:
    """Cosine k-nearest-neighbour search over unit vectors keyed by non-negative integers.

    ``approx_from`` sets the size at which the index becomes a usearch HNSW graph (``0``: always,
    ``None``: never) and ``dtype`` how that graph stores vectors (``"f16"``, ``"i8"``, ``"f32"``).
    """

    def __init__(self, dims: int, *, approx_from: int | None = APPROX_FROM, dtype: str = "f16",
                 connectivity: int = CONNECTIVITY, expansion_search: int = EXPANSION_SEARCH) -> None:
        self.dims = int(dims)
        self.approx_from = approx_from
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_search = expansion_search
        self._keys = np.zeros(0, np.int64)
        self._matrix = np.zeros((0, self.dims), np.float32)
        self._hnsw = None  # usearch.index.Index once approximate

    @property
    def approximate(self) -> bool:
        return self._hnsw is not None

    def __len__(self) -> int:
        return len(self._hnsw) if self._hnsw is not None else len(self._keys)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(keys), self.dims)
        if self._hnsw is not None:
            self._hnsw.add(keys, vectors, threads=_threads())
            return
        self._keys = np.concatenate([self._keys, keys])
        self._matrix = np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors.copy()
        if self.approx_from is not None and len(self._keys) >= self.approx_from:
            self._to_graph()

    def remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        if self._hnsw is not None:
            self._hnsw.remove(keys)
            return
        keep = ~np.isin(self._keys, keys)
        self._keys, self._matrix = self._keys[keep], self._matrix[keep]

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, distances)``, each ``(Q, k)``, nearest first; -1 and inf where there are fewer than k."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        keys = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        if len(self) == 0 or len(queries) == 0:
            return keys, dist
        if self._hnsw is not None:
            found = self._hnsw.search(queries, k, threads=_threads())
            got_keys = np.asarray(found.keys).reshape(len(queries), -1)  # 1-d for a single query
            got_dist = np.asarray(found.distances).reshape(len(queries), -1)
            n = min(k, got_keys.shape[1])
            counts = getattr(found, "counts", [got_keys.shape[1]])  # a single query's Matches has none
            ok = np.arange(n)[None, :] < np.asarray(counts).reshape(-1, 1)
            keys[:, :n] = np.where(ok, got_keys[:, :n], -1)
            dist[:, :n] = np.where(ok, got_dist[:, :n], np.inf)
            return keys, dist
        n = min(k, len(self._keys))
        for start in range(0, len(queries), _EXACT_BLOCK):
            d = 1.0 - queries[start:start + _EXACT_BLOCK] @ self._matrix.T
            top = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.argsort(d, axis=1)[:, :n]
            top_d = np.take_along_axis(d, top, axis=1)
            order = np.argsort(top_d, axis=1, kind="stable")
            keys[start:start + len(d), :n] = self._keys[np.take_along_axis(top, order, axis=1)]
            dist[start:start + len(d), :n] = np.clip(np.take_along_axis(top_d, order, axis=1), 0.0, 2.0)
        return keys, dist

    def _to_graph(self) -> None:
        from usearch.index import Index

        self._hnsw = Index(ndim=self.dims, metric="cos", dtype=self.dtype, connectivity=self.connectivity,
                           expansion_add=EXPANSION_ADD, expansion_search=self.expansion_search)
        if len(self._keys):
            self._hnsw.add(self._keys, self._matrix, threads=_threads())
        self._keys, self._matrix = np.zeros(0, np.int64), np.zeros((0, self.dims), np.float32)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path, stamp: dict) -> None:
        """Write the index and, last, a ``stamp`` (what it was built from) beside it, atomically.

        A reader trusts the index only if the stamp matches what it expects; a crash between the
        two writes leaves an old stamp, which then fails that check and forces a rebuild.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if self._hnsw is not None:
            self._hnsw.save(str(tmp))
        else:
            with open(tmp, "wb") as f:
                np.savez(f, keys=self._keys, matrix=self._matrix)
        _fsync(tmp)
        os.replace(tmp, path)
        meta = dict(stamp, dims=self.dims, approximate=self.approximate, dtype=self.dtype, count=len(self))
        _atomic_write(_stamp_path(path), json.dumps(meta).encode())

    @classmethod
    def load(cls, path: Path, expect: dict, **options) -> tuple[FaceIndex, dict] | None:
        """The index saved at ``path`` and its stamp, if the stamp holds every item of ``expect``."""
        path = Path(path)
        try:
            meta = json.loads(_stamp_path(path).read_text())
            if any(meta.get(k) != v for k, v in expect.items()) or not path.is_file():
                return None
            index = cls(meta["dims"], **options)
            if meta["approximate"]:
                from usearch.index import Index

                index._hnsw = Index.restore(str(path))
                if index._hnsw is None:
                    return None
                index._hnsw.expansion_search = index.expansion_search
            else:
                with np.load(path) as data:
                    index._keys, index._matrix = data["keys"], data["matrix"]
        except Exception:  # noqa: BLE001 - numpy/zipfile/usearch each fail their own way on a torn file
            return None  # missing, torn or foreign file: the caller rebuilds from its database
        return (index, meta) if len(index) == meta["count"] else None


#: Size from which ``knn_graph`` uses the graph index. Every row is a query here, so exact search
#: reads the matrix once per block of 4,096 queries instead of once per query: at 50,000 faces
#: exact (391 queries/s in batches) and graph (50 s to build, then 906/s) cost about the same.
GRAPH_APPROX_FROM = 50_000


def knn_graph(vectors: np.ndarray, k: int, *, approx_from: int | None = GRAPH_APPROX_FROM
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: ``(indices, cosine distances)``, each ``(N, k)``, -1/inf padded.

    Built on ``FaceIndex``, blockwise, so grouping 100k faces never forms a 100k x 100k matrix.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    index = FaceIndex(vectors.shape[1], approx_from=approx_from)
    index.add(np.arange(len(vectors)), vectors)
    keys, dist = index.search(vectors, k + 1)
    # drop each row's own entry (usually first, but ties or graph search may place it elsewhere)
    own = keys == np.arange(len(vectors))[:, None]
    own[:, -1] |= ~own.any(axis=1)  # not found: drop the farthest instead
    keep = ~own
    return keys[keep].reshape(len(vectors), k), dist[keep].reshape(len(vectors), k)


def _threads() -> int:
    from .runtime import threads

    return threads()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
