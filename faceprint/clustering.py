"""Group unlabelled faces by person: scikit-learn style estimators over unit-norm embeddings.

Both methods start from the same sparse graph, each face's ``k`` nearest others
(``faceprint.index.knn_graph``: exact while small, the gallery's scan of compact codes when
large), so no N x N matrix is formed.
``labels_`` numbers the groups of two or more faces 0, 1, ... biggest first; -1 marks a face that
joined nobody (a person seen once, or a face too far from everyone).

Default thresholds are cosine distances calibrated for the default embedder (faceplugin) on LFW
(13,233 images, 5,749 people): each grid was searched on one half of the people (alternate names in
sorted order) and checked on the other, and the value with the best mean BCubed F1 over the two
halves was kept. The numbers and commands are in ``docs/benchmarks.md`` (Clustering).
``cluster_embeddings`` scales them to another embedder by the ratio of its identification
threshold to faceplugin's (checked on expo-mobilefacenet, whose best Chinese-whispers threshold on
LFW's pair images is 0.36-0.38; the scaled default is 0.38).
"""

from __future__ import annotations

import heapq
import html
import os
from pathlib import Path

import cv2
import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_array

from . import zoo
from .boxes import widened
from .errors import FaceprintError
from .imageio import load_image, save_image
from .index import knn_graph
from .matching import unit_rows
from .types import Image

#: The embedder the default thresholds were calibrated for.
CALIBRATED_FOR = "faceplugin"
#: Context kept round a face in a contact-sheet thumbnail, as a share of its box on each side.
THUMB_MARGIN = 0.25
#: Chinese whispers' passes at most (a pass that changes no label ends it sooner)
WHISPER_PASSES = 20
#: How much closer ``AverageLinkage`` requires links to be at each step of splitting a group too big
#: to cut exactly. Steps of 0.01 / 0.02 / 0.05 gave BCubed F1 0.969 / 0.972 / 0.972 in the
#: million-face benchmark (a one-off run on its saved HNSW graph, before the merge was added).
_SPLIT_STEP = 0.02
_BLOCK = 65_536  # cluster pairs whose mean distance is computed at once
#: A pair's mean distance, recomputed, is stale (a cluster grew) when it is this much above the queued one
#: (float32 sums round by less); a pair that close to its queued distance merges now.
_STALE = 1e-5


class ChineseWhispers(ClusterMixin, BaseEstimator):
    """Label propagation on the graph of faces closer than ``threshold``: the dlib baseline.

    What dlib's ``chinese_whispers_clustering`` and face_recognition's examples do, on the k-NN
    graph instead of all pairs: every face starts as its own label, then, in random order, takes
    the label most common among its neighbours, until nothing changes or ``iterations`` passes.
    Fast and simple, but one edge between two people can merge them (chaining), so the threshold
    must be strict. Default 0.48: the best mean BCubed F1 over the two halves of LFW (grid
    0.42-0.52 step 0.01; best 0.48 on one half, 0.47 on the other), well below faceplugin's
    verification threshold (0.72): among thousands of people a stranger's nearest face is often close.
    """

    _distances = ("threshold",)

    def __init__(self, threshold: float = 0.48, k: int = 30, iterations: int = WHISPER_PASSES,
                 random_state: int = 0):
        self.threshold = threshold
        self.k = k
        self.iterations = iterations
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: None = None) -> ChineseWhispers:
        X = _unit_rows(X)
        labels = _whispers(_graph(X, self.k, self.threshold), self.iterations, self.random_state)
        self.labels_ = _by_size(labels)
        return self


class AverageLinkage(ClusterMixin, BaseEstimator):
    """Average-linkage agglomeration inside the groups that the graph of faces closer than ``link`` connects.

    Faces closer than ``link`` are joined into connected groups (as single linkage would); within
    each group, exact average linkage (scipy) merges clusters while their mean pairwise distance
    stays below ``threshold``. The mean over all pairs is what stops chaining: a stranger hanging
    on one close edge sits far from the rest on average and is cut off, while two halves of one
    person, mean distance ~0.5, still merge.

    A group larger than ``max_dense`` faces (exact linkage's memory grows with its square; among a
    million faces one group held a quarter of them) is split by its links: those longer than
    ``link`` minus a step are dropped, step by step, until every piece is small enough to cut
    exactly, and then clusters with a link between them are merged by the same rule, least mean
    distance first while it is below ``threshold`` (computed from the clusters' sums, the faces
    being unit length), so that a person split by a dropped link is joined again. Chinese whispers
    used to split such a group, and the pieces it left too big became clusters that joined
    different people (docs/benchmarks.md, Batch).

    Defaults ``link`` 0.50 and ``threshold`` 0.60: the best mean BCubed F1 over the two halves of
    LFW (grid ``link`` 0.44-0.52 x ``threshold`` 0.52-0.65; best (0.50, 0.60) on one half and
    (0.52, 0.58) on the other). One threshold for both (plain average linkage on the graph) was
    worse than Chinese whispers; separating them is what puts this method ahead of it.
    """

    _distances = ("threshold", "link")

    def __init__(self, threshold: float = 0.60, link: float = 0.50, k: int = 30, max_dense: int = 5000):
        self.threshold = threshold
        self.link = link
        self.k = k
        self.max_dense = max_dense

    def fit(self, X: np.ndarray, y: None = None) -> AverageLinkage:
        X = _unit_rows(X)
        graph = _graph(X, self.k, self.link)
        _, component = connected_components(graph, directed=False)
        labels, next_label = np.arange(len(X)), len(X)
        for members in _members(component):
            if len(members) > 1:
                sub = self._cut(X, graph, members)
                labels[members] = next_label + sub
                next_label += sub.max() + 1
        self.labels_ = _by_size(labels)
        return self

    def _cut(self, X: np.ndarray, links: sparse.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Labels (0, 1, ...) of one connected group, the faces ``X[rows]``, given every face's
        ``links`` (similarities). ``X`` is never copied whole: among a million faces one group can
        hold nearly all of them."""
        if len(rows) <= self.max_dense:
            return self._exact_cut(X[rows])
        labels = self._split(X, links, rows, self.link - _SPLIT_STEP)
        return _merge_along(X, links[rows][:, rows], labels, self.threshold, rows)

    def _split(self, X: np.ndarray, links: sparse.csr_matrix, rows: np.ndarray, link: float) -> np.ndarray:
        """Labels of the faces ``X[rows]``: the pieces their ``links`` (between all of ``X``) closer
        than ``link`` connect, each cut exactly if small enough, else split again a step closer."""
        closer = links[rows][:, rows]  # a copy: its longer links are dropped in place
        closer.data[closer.data <= 1.0 - link] = 0
        closer.eliminate_zeros()
        _, piece_of = connected_components(closer, directed=False)
        del closer  # not held through the recursion below: a million faces' links are gigabytes
        labels, next_label = np.zeros(len(rows), np.int64), 0
        for piece in _members(piece_of):
            if len(piece) <= self.max_dense:
                sub = self._exact_cut(X[rows[piece]])
            elif link > _SPLIT_STEP:
                sub = self._split(X, links, rows[piece], link - _SPLIT_STEP)
            else:  # thousands of near-identical faces: left apart, for the merge to join
                sub = np.arange(len(piece))
            labels[piece] = next_label + sub
            next_label += int(sub.max()) + 1
        return labels

    def _exact_cut(self, X: np.ndarray) -> np.ndarray:
        """Labels (0, 1, ...) from exact average linkage cut at ``threshold``."""
        if len(X) == 1:
            return np.zeros(1, np.int64)
        return fcluster(linkage(X.astype(np.float64), "average", metric="cosine"), self.threshold,
                        criterion="distance") - 1


def _merge_along(X: np.ndarray, links: sparse.csr_matrix, labels: np.ndarray, threshold: float,
                 rows: np.ndarray) -> np.ndarray:
    """Average linkage over the clusters ``labels`` of unit-length faces ``X[rows]``, along ``links``: the
    two linked clusters of least mean pairwise cosine distance merge while it is below ``threshold``.
    The mean is ``1 - sum_a . sum_b / (n_a n_b)``, so each cluster is its sum and its size.

    The linked pairs are numpy arrays sorted by mean distance, not a heap of Python tuples: among
    a million faces there can be 30 million of them (gigabytes as tuples). A pair's distance is
    computed again only if one of its clusters grew since, and then it is queued again, on a heap;
    the next pair is the lesser of the two heads, so the order is a single heap's."""
    k = int(labels.max()) + 1
    sums = np.asarray(sparse.csr_matrix((np.ones(len(rows), np.float32), (labels, rows)),
                                        shape=(k, len(X))) @ X, np.float32)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    coo = sparse.triu(links, k=1, format="coo")  # the links are symmetric: each once
    a, b = labels[coo.row].astype(np.int32), labels[coo.col].astype(np.int32)  # int32 and sorted in place:
    del coo  # 30 million links' keys are sorted, not copied twice as np.unique does
    key = np.minimum(a, b).astype(np.int64) * k
    key += np.maximum(a, b)
    del a, b
    key.sort()
    key = key[np.r_[True, key[1:] != key[:-1]] & (key // k != key % k)]  # each linked pair of clusters once
    p, q = (key // k).astype(np.int32), (key % k).astype(np.int32)
    del key
    mean = np.empty(len(p), np.float32)
    for start in range(0, len(p), _BLOCK):
        i, j = p[start:start + _BLOCK], q[start:start + _BLOCK]
        mean[start:start + _BLOCK] = 1.0 - np.einsum("ij,ij->i", sums[i], sums[j]) / (counts[i] * counts[j])
    keep = mean < threshold
    p, q, mean = p[keep], q[keep], mean[keep]
    order = np.lexsort((q, p, mean))
    queued = _in_order(mean[order], p[order], q[order])
    del p, q, mean, order
    requeued: list[tuple[float, int, int]] = []
    parent, grown = list(range(k)), bytearray(k)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    head = next(queued, None)
    while head is not None or requeued:
        if requeued and (head is None or requeued[0] < head):
            was, i, j = heapq.heappop(requeued)
        else:
            (was, i, j), head = head, next(queued, None)
        a, b = root(i), root(j)
        if a == b:
            continue
        if a != i or b != j or grown[a] or grown[b]:  # one of them grew since it was queued
            now = 1.0 - float(sums[a] @ sums[b]) / (counts[a] * counts[b])
            if now > was + _STALE:  # queued again at its distance now
                if now < threshold:
                    heapq.heappush(requeued, (now, a, b))
                continue
        parent[b] = a
        sums[a] += sums[b]
        counts[a] += counts[b]
        grown[a] = 1
    roots = np.array([root(i) for i in range(k)])
    return np.unique(roots[labels], return_inverse=True)[1]


def _in_order(mean: np.ndarray, p: np.ndarray, q: np.ndarray):
    """``(mean, p, q)`` tuples, converted to Python a block at a time (not all at once: millions of pairs)."""
    for start in range(0, len(mean), _BLOCK):
        end = start + _BLOCK
        yield from zip(mean[start:end].tolist(), p[start:end].tolist(), q[start:end].tolist())


def _whispers(graph: sparse.csr_matrix, iterations: int, random_state: int) -> np.ndarray:
    """Chinese whispers on ``graph``: in a random order, each linked face takes the label most of its
    neighbours have, until a pass changes nothing (or ``iterations`` passes); a face with no link
    keeps its own."""
    neighbours = np.split(graph.indices, graph.indptr[1:-1])
    labels = np.arange(graph.shape[0])
    linked = np.flatnonzero(np.diff(graph.indptr))
    rng = np.random.default_rng(random_state)
    for _ in range(iterations):
        changed = False
        for i in rng.permutation(linked):
            values, counts = np.unique(labels[neighbours[i]], return_counts=True)
            best = values[np.argmax(counts)]
            if best != labels[i]:
                labels[i], changed = best, True
        if not changed:
            break
    return labels


def _members(labels: np.ndarray) -> list[np.ndarray]:
    """The indices of each label's members, label by label."""
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)


#: ``--method NAME`` -> estimator
METHODS: dict[str, type[ChineseWhispers | AverageLinkage]] = {
    "average": AverageLinkage,
    "chinese-whispers": ChineseWhispers,
}
DEFAULT_METHOD = "average"


def make_estimator(method: str = DEFAULT_METHOD, threshold: float | None = None,
                   embedder: str = CALIBRATED_FOR) -> ChineseWhispers | AverageLinkage:
    """The estimator named ``method``, distance defaults scaled to ``embedder``, ``threshold`` (if given) set."""
    if method not in METHODS:
        raise FaceprintError(f"unknown clustering method {method!r}; use one of: {', '.join(METHODS)}")
    estimator = METHODS[method]()
    if embedder != CALIBRATED_FOR:
        scale = _identify_threshold(embedder) / _identify_threshold(CALIBRATED_FOR)
        estimator.set_params(**{p: getattr(estimator, p) * scale for p in estimator._distances})
    if threshold is not None:
        estimator.set_params(threshold=threshold)
    return estimator


def cluster_embeddings(X: np.ndarray, method: str = DEFAULT_METHOD, threshold: float | None = None,
                       embedder: str = CALIBRATED_FOR) -> np.ndarray:
    """Cluster labels of ``X`` (-1: alone), by a method from ``METHODS`` with calibrated defaults."""
    return make_estimator(method, threshold, embedder).fit_predict(X)


def crop_face(image: Image, box: list[float] | tuple[float, ...], margin: float) -> Image:
    """The face's box widened by ``margin`` of its size on each side, clipped to the image."""
    x1, y1, x2, y2 = widened(box, margin, image.shape)
    return image[y1:y2, x1:x2]


def write_contact_sheet(out_dir: Path, clusters: list[list[dict]], alone: list[dict], height: int = 96) -> Path:
    """``out_dir/index.html``: one row of face thumbnails per cluster, then the faces alone; no script.

    Faces are ``{"path", "box"}`` as ``faceprint cluster --json`` writes them. Thumbnails go to
    ``out_dir/faces/`` (each source image is decoded once); each links to its source image.
    """
    faces_dir = out_dir / "faces"
    faces_dir.mkdir(parents=True, exist_ok=True)
    for old in [*faces_dir.glob("c*_*.jpg"), *faces_dir.glob("alone_*.jpg")]:  # a previous run's sheet
        old.unlink()
    rows = [(f"c{i}", face) for i, group in enumerate(clusters) for face in group] + [("alone", f) for f in alone]
    names = [f"c{i}_{j}.jpg" for i, group in enumerate(clusters) for j in range(len(group))] \
        + [f"alone_{j}.jpg" for j in range(len(alone))]
    per_image: dict[str, list[int]] = {}
    for j, (_, face) in enumerate(rows):
        per_image.setdefault(face["path"], []).append(j)
    for path, js in per_image.items():
        image = load_image(path)
        for j in js:
            crop = crop_face(image, rows[j][1]["box"], THUMB_MARGIN)
            width = max(1, round(crop.shape[1] * height / max(crop.shape[0], 1)))
            save_image(faces_dir / names[j], cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA))
    by_row: dict[str, list[str]] = {}
    for name, (kind, face) in zip(names, rows):
        href = html.escape(Path(os.path.relpath(face["path"], out_dir)).as_posix(), quote=True)
        by_row.setdefault(kind, []).append(f'<a href="{href}"><img src="faces/{name}" height="{height}" '
                                           f'title="{html.escape(face["path"], quote=True)}" alt=""></a>')
    sections = [_section("cluster", f"Person {i + 1}: {len(group)} faces", by_row[f"c{i}"])
                for i, group in enumerate(clusters)]
    if alone:
        sections.append(_section("alone", f"Alone: {len(alone)} faces like no other", by_row["alone"]))
    index = out_dir / "index.html"
    index.write_text("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>faceprint clusters</title><style>"
                     "body{font-family:sans-serif;margin:1em}h2{font-size:1em;margin:1em 0 .3em}"
                     "section div{display:flex;flex-wrap:wrap;gap:3px}img{display:block}</style></head><body>\n"
                     f"<h1>{len(clusters)} people, {len(alone)} faces alone</h1>\n" + "\n".join(sections)
                     + "\n</body></html>\n", encoding="utf-8")
    return index


def _section(kind: str, title: str, cells: list[str]) -> str:
    return f'<section class="{kind}"><h2>{html.escape(title)}</h2><div>{"".join(cells)}</div></section>'


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = check_array(X, dtype=np.float32, ensure_min_samples=1)
    # embeddings already are unit length: a million are not copied (nor squared whole, as norm would)
    if np.allclose(np.sqrt(np.einsum("ij,ij->i", X, X)), 1.0, atol=1e-4):
        return X
    return unit_rows(X)


def _graph(X: np.ndarray, k: int, below: float) -> sparse.csr_matrix:
    """Symmetric sparse graph linking each face to those of its ``k`` nearest closer than ``below``,
    weighted by their cosine similarity (above ``1 - below``: positive, so present, for any ``below``
    up to 1, the distance of orthogonal faces)."""
    n = len(X)
    index, distance = knn_graph(X, max(1, min(k, n - 1)))
    keep = (index >= 0) & (distance < below)
    rows = np.repeat(np.arange(n, dtype=np.int32), index.shape[1])[keep.ravel()]  # int32: a million faces' links
    graph = sparse.coo_matrix((1.0 - distance[keep].astype(np.float32), (rows, index[keep].astype(np.int32))),
                              shape=(n, n)).tocsr()
    return graph.maximum(graph.T).tocsr()


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel groups of two or more 0, 1, ... biggest first (ties: first face first); -1 for the rest."""
    _, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return np.where(counts[inverse] > 1, rank[inverse], -1)


def _identify_threshold(embedder: str) -> float:
    return zoo.get(embedder).identify_threshold
