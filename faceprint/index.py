"""Search: the k nearest faceprints of a query among many, exact while small, approximate when large.

Embeddings are unit vectors, so nearest by cosine distance is nearest by inner product. Below
``APPROX_FROM`` vectors the index is a float32 matrix and a search is one matrix product: exact.
A single query reads the whole matrix, so its time grows with the gallery (0.4 ms at 5,000
512-d faces, 4 ms at 20,000, 22 ms at 100,000 on one core here). From ``APPROX_FROM`` on, search
has two stages. The first proposes ``candidates`` faces from the faces' first ``REDUCED_DIMS``
principal components (fitted on the faces present when it is built, kept with the index); their
full vectors, kept in float16 beside it, rank them exactly, so the answer's order and distances
are exact. The default embedder's faceprints span about 150 of their 512 dimensions (128
principal components hold 97% of the variance of all LFW faceprints).

A gallery's first stage (``"scan"``) reads every face: a 32-byte code each (the components,
randomly rotated so every part carries as much, quantised in 64 parts of 4 bits: faiss's
product-quantisation fast scan, lookup tables in SIMD registers), so no face is missed because a
graph walk never reached it. Among a million faces it gave exact search's answer for each of 1,000
probes, in 3-4 ms a query on one core here (0.7-1 ms at 100,000). ``knn_graph`` (every
face a query, for clustering) uses it too. A usearch HNSW graph (``"graph"``) is the other first
stage, kept to be measured beside it: face embeddings are a graph's hard case (a stranger is
about equally far from many faces), and among a million faces it missed neighbours that the scan
finds, a gallery's known people and a clustered person's own photos alike. Measurements:
``benchmarks/search.py``, ``docs/benchmarks.md`` (Search). Keys are caller-chosen integers (the
gallery uses face ids).
"""

from __future__ import annotations

import json
import logging
from importlib import import_module
from pathlib import Path

import numpy as np

from .atomic import atomic_file, atomic_write
from .matching import unit_rows

log = logging.getLogger(__name__)

#: Size at which the index switches from exact to two-stage search: a query of exact search
#: costs 0.3 ms at 5,000 faces and 4 ms at 20,000; the two-stage one, about 0.6 ms at 10,000.
APPROX_FROM = 10_000
#: Principal components the first stage compares. At 100,000 faces, exact search over the first
#: 128 ranks the true nearest face in its top 16 for every one of 1,000 probes; over 96, in its
#: top 64 for 99.3%; over 64, for 92%.
REDUCED_DIMS = 128
#: The scan's code: the rotated components in this many parts (2 components each), 4 bits (16
#: centroids) a part, so 32 bytes a face. 32 parts read half the memory (1.5 against 2.4 ms at a
#: million faces) but code some real faces badly: in one of two fits, 3 of 500 known people's
#: faces fell below rank 4,096 of the scan's ranking among a million.
SCAN_PARTS = 64
#: Faces the scan proposes for exact re-ranking. Among 1,000,000 faces, the farthest down the
#: scan's ranking that a known person's exact nearest face fell was 95 (Gaussian distractors) and
#: 449 (blends), for 500 probes each; re-ranking 512 costs about 0.3 ms.
SCAN_CANDIDATES = 512
#: Faces the graph proposes for re-ranking: four times the 16 that exact search over the
#: components needs, for the graph's own misordering.
CANDIDATES = 64
#: HNSW graph degree, build depth, search depth. At 100,000 faces, degree 16 / build depth 64 found
#: the exact nearest face for 80% of probes (search depth 128), 32 / 128 for 93%; search depth
#: 128 / 256 / 512 then gives 93% / 98% / 99.4% in 2.0 / 2.9 / 4.6 ms. At 1,000,000: 69% / 82% /
#: 91% (docs/benchmarks.md, Search).
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 256
#: The scan's components and code are fitted again, on every face it then holds, each time the
#: index has grown this many times over since they were: a gallery that began with 10,000 faces of
#: one kind and grew to a million of another is coded for what it holds (seconds at a million).
_REFIT_GROWTH = 4
#: Fewest faces the first stage is fitted on (a part's 16 centroids need 16 faces); below it, exact.
_FIT_MIN = 16
_EXACT_BLOCK = 4096  # query rows per matrix product, so a big batch never builds a huge matrix
_BLOCK = 65_536  # faces reduced, or graph queries run, at once: 32 MB of components, never a copy of all
_FIT_BLOCK = 16_384  # stored faces read back as float32 at once while fitting (32 MB), and the code's sample


class Scan:
    """A gallery's first stage: every face's 32-byte code read for each query (faiss fast scan).

    The components are first turned by a seeded random rotation, which spreads the leading ones'
    variance over all ``SCAN_PARTS`` parts of the code; the code is fitted on a sample of the faces.
    ``candidates``: faces proposed for exact re-ranking.
    """

    name = "scan"
    #: removal closes the gap (the scan's rows are the store's slots, in order)
    compacts = True
    #: the code is fitted again as the index grows (``_REFIT_GROWTH``)
    refits = True

    def __init__(self, candidates: int = SCAN_CANDIDATES) -> None:
        self.candidates = candidates
        self._index = None

    def basis(self, components: np.ndarray) -> np.ndarray:
        rotation, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((components.shape[1],) * 2))
        return components @ rotation

    def points(self, y: np.ndarray, mean_norm: float, *, queries: bool) -> np.ndarray:
        """A face's centred components and a query's components: their inner products rank faces as
        the inner product over the components does (they differ by the same number for every face)."""
        return np.ascontiguousarray(y, np.float32)

    def build(self, sample: np.ndarray) -> None:
        self._index = _scan_index(sample.shape[1], sample)

    def add(self, slots: np.ndarray, points: np.ndarray) -> None:
        _faiss_threads()
        self._index.add(points)

    def remove(self, slots: np.ndarray) -> None:
        self._index.remove_ids(_faiss().IDSelectorBatch(slots))

    def search(self, points: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """``(slots, counts)``: each query's proposals (-1 padded) and how many there are."""
        _faiss_threads()
        _, slots = self._index.search(points, want)
        return slots, (slots >= 0).sum(axis=1)

    def __len__(self) -> int:
        return self._index.ntotal

    def dump(self) -> bytes:
        return _faiss().serialize_index(self._index).tobytes()

    def restore(self, data: np.ndarray) -> None:
        self._index = _faiss().deserialize_index(data)


class Graph:
    """The other first stage, measured beside the scan (``benchmarks/search.py --first-stage graph``):
    a usearch HNSW graph over the components. It was the gallery's until 2026-11-29 and
    ``knn_graph``'s until 2026-11-30, and missed faces the scan finds in both.

    ``dtype`` is how it stores them (``"i8"``, ``"f16"``, ``"f32"``); ``connectivity``,
    ``expansion_add`` and ``expansion_search`` are its degree, build depth and search depth (the
    last settable on a built graph: a benchmark times several on one); ``candidates``: faces
    proposed for exact re-ranking.
    """

    name = "graph"
    compacts = False  # a removed face's node stays, unreachable, until the index is rebuilt
    refits = False

    def __init__(self, candidates: int = CANDIDATES, dtype: str = "i8", connectivity: int = CONNECTIVITY,
                 expansion_add: int = EXPANSION_ADD, expansion_search: int = EXPANSION_SEARCH) -> None:
        self.candidates = candidates
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._expansion_search = expansion_search
        self._index = None

    @property
    def expansion_search(self) -> int:
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, depth: int) -> None:
        self._expansion_search = depth
        if self._index is not None:
            self._index.expansion_search = depth

    def basis(self, components: np.ndarray) -> np.ndarray:
        return components

    def points(self, y: np.ndarray, mean_norm: float, *, queries: bool) -> np.ndarray:
        """The graph compares by cosine: a face becomes its centred components plus one coordinate
        that brings every face to the same length, ``1 + |mean|`` (no unit vector's centred
        components are longer); a query becomes its components plus a zero. Cosine between the two
        is then the inner product over the components, divided by the same number for every face."""
        if queries:
            return np.hstack([y, np.zeros((len(y), 1), np.float32)])
        fill = (1.0 + mean_norm) ** 2 - np.einsum("ij,ij->i", y, y)
        return np.hstack([y, np.sqrt(np.maximum(fill, 0.0))[:, None]]).astype(np.float32)

    def build(self, sample: np.ndarray) -> None:
        self._index = _usearch_index()(ndim=sample.shape[1], metric="cos", dtype=self.dtype,
                                       connectivity=self.connectivity, expansion_add=self.expansion_add,
                                       expansion_search=self._expansion_search)

    def add(self, slots: np.ndarray, points: np.ndarray) -> None:
        self._index.add(slots, points, threads=_threads())

    def remove(self, slots: np.ndarray) -> None:
        self._index.remove(slots)

    def search(self, points: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        found = self._index.search(points, want, threads=_threads())
        slots = np.asarray(found.keys, np.int64).reshape(len(points), -1)  # 1-d for a single query
        counts = np.asarray(getattr(found, "counts", [slots.shape[1]])).reshape(-1)  # a single query's has none
        return slots, counts

    def __len__(self) -> int:
        return len(self._index)

    def dump(self) -> bytes:
        return self._index.save()

    def restore(self, data: np.ndarray) -> None:
        self._index = _usearch_index().restore(data.tobytes())
        if self._index is None:
            raise ValueError("not a usearch index")
        self._index.expansion_search = self._expansion_search  # not saved in the graph file


_STAGES = {"scan": Scan, "graph": Graph}


class FaceIndex:
    """Cosine k-nearest-neighbour search over unit vectors keyed by non-negative integers.

    ``approx_from`` sets the size at which the index becomes two-stage (``0``: as soon as it holds
    ``_FIT_MIN`` faces, ``None``: never); ``first_stage`` is a ``Scan`` (every face's compact code,
    for a gallery) or a ``Graph`` (HNSW, for ``knn_graph``), or the name of one with its defaults.
    Each holds its own settings, the number of faces it proposes for exact re-ranking among them.
    """

    upserts = False  # add never replaces: a key added twice is held twice (faceprint.gallery.vectors.replay)

    def __init__(self, dims: int, *, approx_from: int | None = APPROX_FROM, first_stage: str | Scan | Graph = "scan"
                 ) -> None:
        if isinstance(first_stage, str):
            if first_stage not in _STAGES:
                raise ValueError(f"first_stage must be 'scan' or 'graph', not {first_stage!r}")
            first_stage = _STAGES[first_stage]()
        self.dims = int(dims)
        self.approx_from = approx_from
        self.first_stage = first_stage
        self._keys = np.zeros(0, np.int64)  # exact: the matrix's row keys; two-stage: each slot's key (-1 once removed, graph)
        self._matrix = np.zeros((0, self.dims), np.float32)  # exact: float32 rows; two-stage: float16, by slot
        self._used = 0  # two-stage: slots handed out (the scan's are its row numbers; the graph's are never reused)
        self._mean = self._basis = None  # two-stage: the principal components the first stage compares
        self._fitted = 0  # two-stage: faces held when they were fitted
        self._staged = False  # the first stage built (two-stage search)

    @property
    def approximate(self) -> bool:
        return self._staged

    def __len__(self) -> int:
        if not self._staged:
            return len(self._keys)
        return self._used if self.first_stage.compacts else len(self.first_stage)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(keys), self.dims)
        if self._staged:
            self._add_to_stage(keys, vectors)
            return
        total = len(self._keys) + len(keys)
        if self.approx_from is not None and total >= max(self.approx_from, _FIT_MIN):
            # straight into the first stage: a million faces are never held in float32 twice
            self._to_stage(np.concatenate([self._keys, keys]),
                           np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors)
            return
        self._keys = np.concatenate([self._keys, keys])
        self._matrix = np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors.copy()

    def remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64).reshape(-1)
        if not self._staged:
            keep = ~np.isin(self._keys, keys)
            self._keys, self._matrix = self._keys[keep], self._matrix[keep]
            return
        slots = np.flatnonzero(np.isin(self._keys[:self._used], keys))
        if not len(slots):
            return
        self.first_stage.remove(slots)
        if not self.first_stage.compacts:
            self._keys[slots] = -1  # the row stays, unreachable, until the index is rebuilt
            return
        # the first stage closed the gap keeping the order, and so do keys and store
        kept = np.setdiff1d(np.arange(self._used), slots)
        # moved down a block at a time: a row is only ever written over after it has been read
        # (kept[i] >= i), so a million faces are never copied whole (1 GB more at the peak)
        for start in range(int(slots[0]), len(kept), _BLOCK):
            rows = kept[start:start + _BLOCK]
            self._keys[start:start + len(rows)], self._matrix[start:start + len(rows)] = self._keys[rows], self._matrix[rows]
        self._used = len(kept)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, distances)``, each ``(Q, k)``, nearest first; -1 and inf where there are fewer than k."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        if len(self) == 0 or len(queries) == 0:
            return keys, dist
        if self._staged:  # in blocks: a million queries (a k-NN graph) are never copied whole
            for start in range(0, len(queries), _BLOCK):
                part = slice(start, start + _BLOCK)
                self._search_stage(unit_rows(queries[part]), keys[part], dist[part])
            return keys, dist
        n = min(k, len(self._keys))
        for start in range(0, len(queries), _EXACT_BLOCK):
            d = 1.0 - unit_rows(queries[start:start + _EXACT_BLOCK]) @ self._matrix.T
            top = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.argsort(d, axis=1)[:, :n]
            top_d = np.take_along_axis(d, top, axis=1)
            order = np.argsort(top_d, axis=1, kind="stable")
            keys[start:start + len(d), :n] = self._keys[np.take_along_axis(top, order, axis=1)]
            dist[start:start + len(d), :n] = np.clip(np.take_along_axis(top_d, order, axis=1), 0.0, 2.0)
        return keys, dist

    # -- two-stage search ----------------------------------------------------------------------
    def _to_stage(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Move to two stages: every face so far into the store, then the first stage fitted on them."""
        self._keys, self._matrix, self._used = np.zeros(0, np.int64), np.zeros((0, self.dims), np.float16), 0
        self._store(keys, vectors)
        self._fit()

    def _fit(self) -> None:
        """Fit the principal components (and the first stage) on every face in the store, and put
        them all into a new first stage."""
        def rows():
            return (self._matrix[s:min(s + _FIT_BLOCK, self._used)].astype(np.float32) for s in range(0, self._used, _FIT_BLOCK))

        self._mean = (sum(r.sum(0, dtype=np.float64) for r in rows()) / self._used).astype(np.float32)
        # eigenvectors of the scatter matrix: a full basis even from fewer faces than REDUCED_DIMS
        scatter = np.zeros((self.dims, self.dims))
        for r in rows():
            centred = r - self._mean
            scatter += centred.T @ centred
        _, vecs = np.linalg.eigh(scatter)
        self._basis = np.ascontiguousarray(self.first_stage.basis(vecs[:, ::-1][:, :min(REDUCED_DIMS, self.dims)]),
                                           np.float32)
        sample = self._matrix[:self._used:max(1, self._used // _FIT_BLOCK)][:_FIT_BLOCK].astype(np.float32)
        self.first_stage.build(self._reduce(sample))
        self._staged, self._fitted = True, self._used
        for start, r in zip(range(0, self._used, _FIT_BLOCK), rows()):
            self._index_rows(np.arange(start, start + len(r)), r)

    def _reduce(self, vectors: np.ndarray, *, queries: bool = False) -> np.ndarray:
        """The first stage's points: faces' centred components, queries' components, as it takes them."""
        y = vectors @ self._basis if queries else (vectors - self._mean) @ self._basis
        return self.first_stage.points(y, float(np.linalg.norm(self._mean)), queries=queries)

    def _add_to_stage(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        slots = self._store(keys, vectors)
        if self.first_stage.refits and self._used >= _REFIT_GROWTH * self._fitted:
            self._fit()  # the code, fitted again on what the index now holds
        else:
            self._index_rows(slots, vectors)

    def _store(self, keys: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Put faces in the next slots of the key array and the float16 store; their slots."""
        slots = self._used + np.arange(len(keys))
        self._used += len(keys)
        if self._used > len(self._keys):  # an eighth spare, at most a block: growing copies nothing (see _grown)
            capacity = max(self._used + min(self._used // 8, _BLOCK), 1024)
            self._keys, self._matrix = _grown(self._keys, capacity), _grown(self._matrix, capacity)
        self._keys[slots], self._matrix[slots] = keys, vectors
        return slots

    def _index_rows(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        """Put stored faces into the first stage (the scan's rows are its slots, in order)."""
        for start in range(0, len(slots), _BLOCK):
            part = slice(start, start + _BLOCK)
            self.first_stage.add(slots[part], self._reduce(vectors[part]))

    def _search_stage(self, queries: np.ndarray, keys: np.ndarray, dist: np.ndarray) -> None:
        """Fill ``keys``/``dist`` with the first stage's candidates, re-ranked by their full vectors."""
        want = min(max(self.first_stage.candidates, keys.shape[1]), self._used)
        slots, counts = self.first_stage.search(self._reduce(queries, queries=True), want)
        n = keys.shape[1]
        nk = _numkong()
        for i, (row, count) in enumerate(zip(slots, counts)):
            row = row[:count]
            # the float16 rows' inner products with SIMD: numpy converts float16 ten times slower
            d = 1.0 - np.asarray(nk.cdist(self._matrix[row], queries[i:i + 1].astype(np.float16), metric="dot"))[:, 0]
            order = np.argsort(d, kind="stable")[:n]
            keys[i, :len(order)] = self._keys[row[order]]
            dist[i, :len(order)] = np.clip(d[order], 0.0, 2.0)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path, stamp: dict) -> None:
        """Write the index and, last, a ``stamp`` (what it was built from) beside it, atomically.

        A reader trusts the index only if the stamp matches what it expects; a crash between the
        two writes leaves an old stamp, which then fails that check and forces a rebuild.
        """
        path = Path(path)
        if self._staged:
            arrays = dict(keys=self._keys[:self._used], matrix=self._matrix[:self._used], mean=self._mean,
                          basis=self._basis, fitted=np.int64(self._fitted),
                          stage=np.frombuffer(self.first_stage.dump(), np.uint8))
        else:
            arrays = dict(keys=self._keys, matrix=self._matrix)
        with atomic_file(path) as f:
            np.savez(f, **arrays)
        meta = dict(stamp, dims=self.dims, approximate=self.approximate, first_stage=self.first_stage.name,
                    dtype=getattr(self.first_stage, "dtype", None), count=len(self))
        atomic_write(_stamp_path(path), json.dumps(meta).encode())

    @classmethod
    def load(cls, path: Path, expect: dict, **options) -> tuple[FaceIndex, dict] | None:
        """The index saved at ``path`` and its stamp, if the stamp holds every item of ``expect``
        and the index has the first stage ``options`` ask for."""
        path = Path(path)
        try:
            meta = json.loads(_stamp_path(path).read_text())
            if any(meta.get(k) != v for k, v in expect.items()) or not path.is_file():
                return None
            index = cls(meta["dims"], **options)
            if meta["approximate"] and meta.get("first_stage") != index.first_stage.name:
                return None  # another first stage (or one saved before there was a choice): rebuilt
            with np.load(path) as data:
                index._keys, index._matrix = data["keys"], data["matrix"]
                if meta["approximate"]:
                    index._used, index._mean, index._basis = len(index._keys), data["mean"], data["basis"]
                    index._fitted = int(data["fitted"])
                    index.first_stage.restore(data["stage"])
                    index._staged = True
        except FileNotFoundError:
            return None  # never saved: the caller builds it from its database
        except Exception as e:  # noqa: BLE001 - numpy/zipfile/usearch/faiss each fail their own way on a torn file
            log.info("saved index %s unreadable (%s): rebuilding it", path, e)
            return None  # torn or foreign file: the caller rebuilds from its database
        return (index, meta) if len(index) == meta["count"] else None


#: Size from which ``knn_graph`` searches in two stages. Every row is a query here, so exact search
#: reads the matrix once per block of 4,096 queries instead of once per query: at 50,000 faces
#: exact (391 queries/s in batches) cost about what an approximate index did (then an HNSW graph:
#: 50 s to build, then 906/s).
KNN_APPROX_FROM = 50_000
#: Faces the scan proposes for each face's neighbours in ``knn_graph``: among a million faces, the
#: scan ranked every known person's nearest face within its first 256 (docs/benchmarks.md, Search).
#: The HNSW graph it replaced (degree 16, build/search depth 128) left 23 of the 1,239 same-person
#: pairs of the clustering benchmark unconnected among a million Gaussian distractors, pairs as
#: close as 0.08 (docs/benchmarks.md, Batch).
KNN_CANDIDATES = 256


def knn_graph(vectors: np.ndarray, k: int, *, approx_from: int | None = KNN_APPROX_FROM
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: ``(indices, cosine distances)``, each ``(N, k)``, -1/inf padded.

    Built on ``FaceIndex``, blockwise, so grouping 100k faces never forms a 100k x 100k matrix.
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    stage = Scan(candidates=max(KNN_CANDIDATES, k + 1))
    index = FaceIndex(vectors.shape[1], approx_from=approx_from, first_stage=stage)
    index.add(np.arange(len(vectors)), vectors)
    keys, dist = index.search(vectors, k + 1)
    # drop each row's own entry (usually first, but ties or the first stage may place it elsewhere)
    own = keys == np.arange(len(vectors))[:, None]
    own[:, -1] |= ~own.any(axis=1)  # not found: drop the farthest instead
    keep = ~own
    return keys[keep].reshape(len(vectors), k), dist[keep].reshape(len(vectors), k)


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


def _faiss():
    import faiss

    return faiss


def _faiss_threads() -> None:
    """faiss's thread count is process-wide: set before each call, as ``FACEPRINT_THREADS`` may change."""
    _faiss().omp_set_num_threads(_threads())


def _numkong():
    import numkong

    return numkong


def _scan_index(dims: int, sample: np.ndarray):
    """An empty fast-scan index whose code (``SCAN_PARTS`` parts of 4 bits) is fitted on ``sample``."""
    faiss = _faiss()
    _faiss_threads()
    index = faiss.IndexPQFastScan(dims, SCAN_PARTS, 4, faiss.METRIC_INNER_PRODUCT)
    index.pq.cp.min_points_per_centroid = 1  # fitted from _FIT_MIN faces on, without faiss's warning below 624
    index.train(sample)
    return index


def _threads() -> int:
    from .runtime import threads

    return threads()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")
