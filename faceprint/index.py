"""Search: the k nearest faceprints of a query among many, exact while small, approximate when large.

Embeddings are unit vectors, so nearest by cosine distance is nearest by inner product. Below
``APPROX_FROM`` vectors the index is a float32 matrix and a search is one matrix product: exact.
A single query reads the whole matrix, so its time grows with the gallery (0.4 ms at 5,000
512-d faces, 4 ms at 20,000, 22 ms at 100,000 on one core here). From ``APPROX_FROM`` on, search
has two stages. A usearch HNSW graph over the faces' first ``REDUCED_DIMS`` principal components
(fitted on the faces present when the graph is built, kept with the index) proposes
``CANDIDATES`` faces; their full vectors, kept in float16 beside the graph, rank them exactly.
The default embedder's faceprints span about 150 of their 512 dimensions (128 principal
components hold 97% of the variance of all LFW faceprints), so the graph's distances cost a
quarter of full ones and the graph builds about three times faster, while the re-ranking makes the
answer's order and distances exact. Graph search is approximate, and face embeddings are its
hard case (a stranger is about equally far from many faces), so the graph is built denser and
searched deeper than usearch's defaults. Measurements: ``benchmarks/search.py``,
``docs/benchmarks.md`` (Search). Keys are caller-chosen integers (the gallery uses face ids).
"""

from __future__ import annotations

import json
import logging
from importlib import import_module
from pathlib import Path

import numpy as np

from .atomic import atomic_file, atomic_write

log = logging.getLogger(__name__)

#: Size at which the index switches from exact to two-stage search: a query of exact search
#: costs 0.3 ms at 5,000 faces and 4 ms at 20,000; the two-stage one, 0.57 ms at 10,000.
APPROX_FROM = 10_000
#: Principal components the graph searches in. At 100,000 faces, exact search over the first 128
#: ranks the true nearest face in its top 16 for every one of 1,000 probes; over 96, in its top 64
#: for 99.3%; over 64, for 92%.
REDUCED_DIMS = 128
#: Faces the graph proposes for exact re-ranking: four times the 16 that exact search over the
#: components needs, for the graph's own misordering. From search depth 256 on, the re-ranked top
#: hit was exact whenever the true face was among the candidates (10,000 faces).
CANDIDATES = 64
#: HNSW graph degree, build depth, search depth. At 100,000 faces, degree 16 / build depth 64 found
#: the exact nearest face for 80% of probes (search depth 128), 32 / 128 for 93%; search depth
#: 128 / 256 / 512 then gives 93% / 98% / 99.4% in 2.0 / 2.9 / 4.6 ms. At 1,000,000: 69% / 82% /
#: 91% (docs/benchmarks.md, Search).
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 256
_EXACT_BLOCK = 4096  # query rows per matrix product, so a big batch never builds a huge matrix
_BLOCK = 65_536  # faces reduced, or graph queries run, at once: 32 MB of components, never a copy of all
_RERANK_BLOCK = 256  # queries re-ranked at once: 256 x 64 candidates x 512 floats is 32 MB


class FaceIndex:
    """Cosine k-nearest-neighbour search over unit vectors keyed by non-negative integers.

    ``approx_from`` sets the size at which the index becomes two-stage (``0``: always, ``None``:
    never); ``dtype`` is how the graph stores its reduced vectors (``"i8"``, ``"f16"``, ``"f32"``);
    ``connectivity``, ``expansion_add`` and ``expansion_search`` are the graph's degree, build depth
    and search depth, ``candidates`` how many faces it proposes for re-ranking.
    """

    upserts = False  # add never replaces: a key added twice is held twice (faceprint.gallery.vectors.replay)

    def __init__(self, dims: int, *, approx_from: int | None = APPROX_FROM, dtype: str = "i8",
                 connectivity: int = CONNECTIVITY, expansion_add: int = EXPANSION_ADD,
                 expansion_search: int = EXPANSION_SEARCH, candidates: int = CANDIDATES) -> None:
        self.dims = int(dims)
        self.approx_from = approx_from
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._expansion_search = expansion_search
        self.candidates = candidates
        self._keys = np.zeros(0, np.int64)  # exact: the matrix's row keys; two-stage: each slot's key, -1 once removed
        self._matrix = np.zeros((0, self.dims), np.float32)  # exact: float32 rows; two-stage: float16, by slot
        self._used = 0  # two-stage: slots handed out (the graph's keys are slots, never reused)
        self._mean = self._basis = None  # two-stage: the principal components the graph searches in
        self._hnsw = None  # usearch.index.Index once approximate

    @property
    def expansion_search(self) -> int:
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, depth: int) -> None:
        """Graph search depth; settable on a built index (a benchmark times several on one graph)."""
        self._expansion_search = depth
        if self._hnsw is not None:
            self._hnsw.expansion_search = depth

    @property
    def approximate(self) -> bool:
        return self._hnsw is not None

    def __len__(self) -> int:
        return len(self._hnsw) if self._hnsw is not None else len(self._keys)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(keys), self.dims)
        if self._hnsw is not None:
            self._add_to_graph(keys, vectors)
            return
        if self.approx_from is not None and len(self._keys) + len(keys) >= max(self.approx_from, 1):
            # straight into the graph: a million faces are never held in float32 twice
            self._to_graph(np.concatenate([self._keys, keys]),
                           np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors)
            return
        self._keys = np.concatenate([self._keys, keys])
        self._matrix = np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors.copy()

    def remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        if self._hnsw is not None:
            slots = np.flatnonzero(np.isin(self._keys[:self._used], keys))
            if len(slots):
                self._hnsw.remove(slots)
                self._keys[slots] = -1  # the row stays, unreachable, until the index is rebuilt
            return
        keep = ~np.isin(self._keys, keys)
        self._keys, self._matrix = self._keys[keep], self._matrix[keep]

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, distances)``, each ``(Q, k)``, nearest first; -1 and inf where there are fewer than k."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        if len(self) == 0 or len(queries) == 0:
            return keys, dist
        if self._hnsw is not None:  # in blocks: a million queries (a k-NN graph) are never copied whole
            for start in range(0, len(queries), _BLOCK):
                part = slice(start, start + _BLOCK)
                self._search_graph(_unit(queries[part]), keys[part], dist[part])
            return keys, dist
        n = min(k, len(self._keys))
        for start in range(0, len(queries), _EXACT_BLOCK):
            d = 1.0 - _unit(queries[start:start + _EXACT_BLOCK]) @ self._matrix.T
            top = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.argsort(d, axis=1)[:, :n]
            top_d = np.take_along_axis(d, top, axis=1)
            order = np.argsort(top_d, axis=1, kind="stable")
            keys[start:start + len(d), :n] = self._keys[np.take_along_axis(top, order, axis=1)]
            dist[start:start + len(d), :n] = np.clip(np.take_along_axis(top_d, order, axis=1), 0.0, 2.0)
        return keys, dist

    # -- two-stage search ----------------------------------------------------------------------
    def _to_graph(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Fit the principal components on these faces (all the index holds), then put them in graph and store."""
        Index = _usearch_index()
        self._mean = vectors.mean(0)
        # eigenvectors of the scatter matrix: a full basis even from fewer faces than REDUCED_DIMS
        scatter = np.zeros((self.dims, self.dims))
        for start in range(0, len(vectors), _BLOCK):
            centred = vectors[start:start + _BLOCK] - self._mean
            scatter += centred.T @ centred
        _, vecs = np.linalg.eigh(scatter)
        self._basis = np.ascontiguousarray(vecs[:, ::-1][:, :min(REDUCED_DIMS, self.dims)], np.float32)
        self._hnsw = Index(ndim=self._basis.shape[1] + 1, metric="cos", dtype=self.dtype,
                           connectivity=self.connectivity, expansion_add=self.expansion_add,
                           expansion_search=self.expansion_search)
        self._keys, self._matrix, self._used = np.zeros(0, np.int64), np.zeros((0, self.dims), np.float16), 0
        self._add_to_graph(keys, vectors)

    def _reduce(self, vectors: np.ndarray, *, queries: bool = False) -> np.ndarray:
        """Points whose cosine similarity ranks faces as the inner product over the components does.

        A face becomes its centred components plus one coordinate that brings every face to the
        same length, ``1 + |mean|`` (no unit vector's centred components are longer); a query
        becomes its components plus a zero. Cosine between the two is then the inner product
        over the components, divided by the same number for every face.
        """
        if queries:
            y = vectors @ self._basis
            return np.hstack([y, np.zeros((len(y), 1), np.float32)])
        y = (vectors - self._mean) @ self._basis
        fill = (1.0 + float(np.linalg.norm(self._mean))) ** 2 - np.einsum("ij,ij->i", y, y)
        return np.hstack([y, np.sqrt(np.maximum(fill, 0.0))[:, None]]).astype(np.float32)

    def _add_to_graph(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        slots = self._used + np.arange(len(keys))
        self._used += len(keys)
        if self._used > len(self._keys):  # an eighth spare: growing copies nothing (see _grown)
            capacity = max(self._used + self._used // 8, 1024)
            self._keys, self._matrix = _grown(self._keys, capacity), _grown(self._matrix, capacity)
        self._keys[slots], self._matrix[slots] = keys, vectors
        for start in range(0, len(keys), _BLOCK):
            part = slice(start, start + _BLOCK)
            self._hnsw.add(slots[part], self._reduce(vectors[part]), threads=_threads())

    def _search_graph(self, queries: np.ndarray, keys: np.ndarray, dist: np.ndarray) -> None:
        """Fill ``keys``/``dist`` with the graph's candidates, re-ranked by their full vectors."""
        want = max(self.candidates, keys.shape[1])
        found = self._hnsw.search(self._reduce(queries, queries=True), want, threads=_threads())
        slots = np.asarray(found.keys, np.int64).reshape(len(queries), -1)  # 1-d for a single query
        counts = np.asarray(getattr(found, "counts", [slots.shape[1]])).reshape(-1, 1)  # a single query's has none
        valid = np.arange(slots.shape[1])[None, :] < counts
        slots = np.where(valid, slots, 0)
        n = min(keys.shape[1], slots.shape[1])
        for start in range(0, len(queries), _RERANK_BLOCK):
            part = slice(start, start + _RERANK_BLOCK)
            rows = self._matrix[slots[part]].astype(np.float32)  # (queries, candidates, dims)
            d = 1.0 - np.matmul(rows, queries[part, :, None])[:, :, 0]
            d[~valid[part]] = np.inf
            order = np.argsort(d, axis=1, kind="stable")[:, :n]
            top_d = np.take_along_axis(d, order, axis=1)
            keys[part, :n] = np.where(np.isfinite(top_d), self._keys[np.take_along_axis(slots[part], order, axis=1)], -1)
            dist[part, :n] = np.where(np.isfinite(top_d), np.clip(top_d, 0.0, 2.0), np.inf)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path, stamp: dict) -> None:
        """Write the index and, last, a ``stamp`` (what it was built from) beside it, atomically.

        A reader trusts the index only if the stamp matches what it expects; a crash between the
        two writes leaves an old stamp, which then fails that check and forces a rebuild.
        """
        path = Path(path)
        if self._hnsw is not None:
            arrays = dict(keys=self._keys[:self._used], matrix=self._matrix[:self._used], mean=self._mean,
                          basis=self._basis, graph=np.frombuffer(self._hnsw.save(), np.uint8))
        else:
            arrays = dict(keys=self._keys, matrix=self._matrix)
        with atomic_file(path) as f:
            np.savez(f, **arrays)
        meta = dict(stamp, dims=self.dims, approximate=self.approximate, dtype=self.dtype, count=len(self))
        atomic_write(_stamp_path(path), json.dumps(meta).encode())

    @classmethod
    def load(cls, path: Path, expect: dict, **options) -> tuple[FaceIndex, dict] | None:
        """The index saved at ``path`` and its stamp, if the stamp holds every item of ``expect``."""
        path = Path(path)
        try:
            meta = json.loads(_stamp_path(path).read_text())
            if any(meta.get(k) != v for k, v in expect.items()) or not path.is_file():
                return None
            index = cls(meta["dims"], **options)
            with np.load(path) as data:
                index._keys, index._matrix = data["keys"], data["matrix"]
                if meta["approximate"]:
                    Index = _usearch_index()
                    index._used, index._mean, index._basis = len(index._keys), data["mean"], data["basis"]
                    index._hnsw = Index.restore(data["graph"].tobytes())
                    if index._hnsw is None:
                        return None
                    index.expansion_search = index.expansion_search  # not saved in the graph file
        except FileNotFoundError:
            return None  # never saved: the caller builds it from its database
        except Exception as e:  # noqa: BLE001 - numpy/zipfile/usearch each fail their own way on a torn file
            log.info("saved index %s unreadable (%s): rebuilding it", path, e)
            return None  # torn or foreign file: the caller rebuilds from its database
        return (index, meta) if len(index) == meta["count"] else None


#: Size from which ``knn_graph`` uses the graph index. Every row is a query here, so exact search
#: reads the matrix once per block of 4,096 queries instead of once per query: at 50,000 faces
#: exact (391 queries/s in batches) and graph (50 s to build, then 906/s) cost about the same
#: (measured with the earlier 512-d graph; the two-stage one builds about three times faster).
GRAPH_APPROX_FROM = 50_000
#: The graph ``knn_graph`` builds: degree, build depth, search depth, candidates re-ranked. Half the
#: degree and search depth of a gallery's, which must find a stranger's nearest face among many
#: about as far; clustering needs the close neighbours (same person). Among 200,000 faces (3,174 LFW
#: faces among synthetic ones), the share of the LFW faces' neighbours closer than 0.48 (Chinese
#: whispers' threshold) found, and seconds to build and search on 2 cores: build/search depth 64/64
#: 95.2% (57 + 74 s), 64/128 97.6% (55 + 126 s), 128/128 99.25% (91 + 117 s). At 100,000 faces
#: 64/64 cost Chinese whispers 1 point of BCubed recall on the LFW part (docs/benchmarks.md,
#: Batch), so the build depth stays 128.
GRAPH_CONNECTIVITY, GRAPH_EXPANSION_ADD, GRAPH_EXPANSION_SEARCH, GRAPH_CANDIDATES = 16, 128, 128, 48


def knn_graph(vectors: np.ndarray, k: int, *, approx_from: int | None = GRAPH_APPROX_FROM
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: ``(indices, cosine distances)``, each ``(N, k)``, -1/inf padded.

    Built on ``FaceIndex``, blockwise, so grouping 100k faces never forms a 100k x 100k matrix.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    index = FaceIndex(vectors.shape[1], approx_from=approx_from, connectivity=GRAPH_CONNECTIVITY,
                      expansion_add=GRAPH_EXPANSION_ADD, expansion_search=GRAPH_EXPANSION_SEARCH,
                      candidates=max(GRAPH_CANDIDATES, k + 1))
    index.add(np.arange(len(vectors)), vectors)
    keys, dist = index.search(vectors, k + 1)
    # drop each row's own entry (usually first, but ties or graph search may place it elsewhere)
    own = keys == np.arange(len(vectors))[:, None]
    own[:, -1] |= ~own.any(axis=1)  # not found: drop the farthest instead
    keep = ~own
    return keys[keep].reshape(len(vectors), k), dist[keep].reshape(len(vectors), k)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _grown(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` with ``rows`` rows, grown in place: realloc moves pages and copies nothing, so a million
    faces never exist twice (only the first growth after ``load`` copies: npz arrays are views)."""
    a = a if a.flags.owndata else a.copy()
    a.resize((rows, *a.shape[1:]), refcheck=False)
    return a


def _usearch_index():
    """usearch's ``Index``, imported after onnxruntime (``runtime``): the other way round, as in a gallery
    searched by vector before any model is loaded, onnxruntime's import segfaults (libstdc++)."""
    import_module(".runtime", __package__)
    from usearch.index import Index

    return Index


def _threads() -> int:
    from .runtime import threads

    return threads()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")
