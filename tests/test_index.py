"""The search index on real faceprints: exact and approximate agree, and the gallery's index never
disagrees with its database (removals, a crash before the index is saved, torn or foreign files)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceprint import Gallery
from faceprint.evaluation import central
from faceprint.gallery.store import NewFace, Store, open_store
from faceprint.imageio import load_image
from faceprint.index import FaceIndex, knn_graph
from faceprint.pipeline import get_pipeline

from .conftest import lfw_image
from .test_gallery import _people

EMBEDDER = "faceplugin"


@pytest.fixture(scope="module")
def faces(lfw_dir) -> dict[str, list[np.ndarray]]:
    """Real faceprints: four photos each of 40 LFW people."""
    pipe = get_pipeline(embedder=EMBEDDER)
    out = {}
    for name in _people(lfw_dir, 4, 40, skip=100):
        vecs = []
        for i in range(1, 5):
            image = load_image(lfw_image(lfw_dir, name, i))
            vecs.append(pipe.embed(image, [central(pipe.detector.detect(image), image.shape)])[0].vector)
        out[name] = vecs
    return out


def test_exact_and_approximate_agree(faces):
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    exact_keys, exact_d = knn_graph(vectors, 5, approx_from=None)
    approx_keys, approx_d = knn_graph(vectors, 5, approx_from=0)
    assert (exact_keys[:, 0] == approx_keys[:, 0]).mean() >= 0.99
    same = exact_keys == approx_keys
    assert np.abs(exact_d[same] - approx_d[same]).max() < 2e-3  # float16 in the re-ranking store
    # the nearest other photo is the same person for nearly everyone (a real-embedding sanity check)
    person = np.repeat(np.arange(len(faces)), 4)
    assert (person[exact_keys[:, 0]] == person).mean() > 0.95


def test_two_stage_among_distractors_agrees_with_exact(faces, monkeypatch):
    """The gallery's two stages (a scan of compact codes, then re-ranking) find exact search's nearest
    face for real probes among synthetic faceprints drawn like the benchmark's (a Gaussian fitted
    to real ones). The code is fitted on the first 120 real faces, then again on all 5,120 once the
    index has grown four times over.

    Built on one thread, so the test is deterministic. Real probes must find exactly what exact
    search finds; the noisy synthetic queries sit far from everything, among near-ties, so for them
    the approximate answer must be as near as the exact one, not the same face.
    """
    monkeypatch.setenv("FACEPRINT_THREADS", "1")
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    probes, enrolled = vectors[3::4], np.delete(vectors, np.s_[3::4], axis=0)
    rng = np.random.default_rng(0)
    fake = rng.multivariate_normal(vectors.mean(0), np.cov(vectors, rowvar=False), 5000).astype(np.float32)
    gallery = np.concatenate([enrolled, fake / np.linalg.norm(fake, axis=1, keepdims=True)])
    queries = np.concatenate([probes, fake[:200] + 0.5 * rng.standard_normal((200, vectors.shape[1]), dtype=np.float32) * fake.std()])
    exact, approx = FaceIndex(vectors.shape[1], approx_from=None), FaceIndex(vectors.shape[1], approx_from=0)
    for index in (exact, approx):
        index.add(np.arange(len(enrolled)), enrolled)  # first fitted on real faces only
        index.add(np.arange(len(enrolled), len(gallery)), gallery[len(enrolled):])
    (ek, ed), (ak, ad) = exact.search(queries, 3), approx.search(queries, 3)
    real = len(probes)
    assert approx.approximate and (ek[:real, 0] == ak[:real, 0]).all()
    assert (ad[real:, 0] - ed[real:, 0] < 0.01).mean() >= 0.99
    assert np.abs(ed[ek == ak] - ad[ek == ak]).max() < 2e-3


def test_faces_added_before_the_first_stage_go_into_it(faces, monkeypatch):
    """An index that reaches ``approx_from`` part-way through an add builds its first stage from
    every face so far (the exact stage's and the new ones): each face then finds itself."""
    monkeypatch.setenv("FACEPRINT_THREADS", "1")
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    index = FaceIndex(vectors.shape[1], approx_from=len(vectors) // 2)
    index.add(np.arange(len(vectors) // 3), vectors[:len(vectors) // 3])
    assert not index.approximate
    index.add(np.arange(len(vectors) // 3, len(vectors)), vectors[len(vectors) // 3:])
    keys, d = index.search(vectors, 1)
    assert index.approximate and len(index) == len(vectors)
    assert (keys[:, 0] == np.arange(len(vectors))).all() and d.max() < 2e-3


def test_index_add_remove_save_load(tmp_path, faces):
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    for approx_from, stage in ((None, "scan"), (0, "scan"), (0, "graph")):
        index = FaceIndex(vectors.shape[1], approx_from=approx_from, first_stage=stage)
        index.add(np.arange(len(vectors)) * 10, vectors)
        index.remove(np.arange(0, 40) * 10)
        keys, _ = index.search(vectors[:40], 3)
        assert not np.isin(keys, np.arange(0, 40) * 10).any() and len(index) == len(vectors) - 40
        keys, dist = index.search(vectors[40:], 1)  # the rest still find themselves (the scan closes gaps)
        assert (keys[:, 0] == np.arange(40, len(vectors)) * 10).all() and dist.max() < 2e-3
        index.save(tmp_path / "i", {"seq": 7})
        loaded, meta = FaceIndex.load(tmp_path / "i", {"seq": 7}, approx_from=approx_from, first_stage=stage)
        assert meta["seq"] == 7 and loaded.approximate == index.approximate
        assert (loaded.search(vectors, 1)[0] == index.search(vectors, 1)[0]).all()
        loaded.add(np.arange(0, 40) * 10, vectors[:40])  # a loaded index grows too
        assert (loaded.search(vectors[:40], 1)[0][:, 0] == np.arange(0, 40) * 10).all()
        assert FaceIndex.load(tmp_path / "i", {"seq": 8}) is None
        if approx_from is not None:  # saved with the other first stage: rebuilt, not misread
            assert FaceIndex.load(tmp_path / "i", {"seq": 7}, first_stage={"scan": "graph", "graph": "scan"}[stage]) is None
    with pytest.raises(ValueError, match="first_stage must be"):
        FaceIndex(4, first_stage="tree")
    empty = FaceIndex(4)
    keys, dist = empty.search(np.ones((2, 4)), 3)
    assert (keys == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("stage", ["scan", "graph"])
def test_a_damaged_first_stage_is_not_loaded(tmp_path, faces, stage):
    """The npz opens but the first stage inside it is garbage or cut short: no index, so the
    gallery rebuilds it from its database (faiss and usearch each fail their own way)."""
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    index = FaceIndex(vectors.shape[1], approx_from=0, first_stage=stage)
    index.add(np.arange(len(vectors)), vectors)
    index.save(tmp_path / "i", {"seq": 1})
    saved = dict(np.load(tmp_path / "i"))
    for damaged in (np.frombuffer(np.random.default_rng(0).bytes(5000), np.uint8), saved["stage"][:len(saved["stage"]) // 2]):
        with open(tmp_path / "i", "wb") as f:
            np.savez(f, **dict(saved, stage=damaged))
        assert FaceIndex.load(tmp_path / "i", {"seq": 1}, first_stage=stage) is None


def _add(store: Store, name: str, vector: np.ndarray, tag: int) -> int:
    return store.add_face(NewFace(name, EMBEDDER, vector, hashlib.sha256(f"{name}{tag}".encode()).hexdigest(),
                                  box=[0, 0, 1, 1], landmarks={}, detector="test"))


def _fill(db: Path, faces: dict, photos: range) -> None:
    store = open_store(db)
    for name, vecs in faces.items():
        for i in photos:
            _add(store, name, vecs[i], i)
    store.close()


def _top_names(gallery: Gallery, faces: dict, photo: int) -> dict[str, str | None]:
    names = list(faces)
    found = gallery.search(np.stack([faces[n][photo] for n in names]), 1)
    return {n: (hit[0][0] if hit else None) for n, hit in zip(names, found)}


@pytest.mark.parametrize("approx_from", [None, 0], ids=["exact", "approximate"])
def test_gallery_index_follows_the_database(tmp_path, faces, approx_from):
    db = tmp_path / "g.db"
    _fill(db, faces, range(3))
    with Gallery(db, approx_from=approx_from) as g:
        hits = _top_names(g, faces, 3)  # each person's held-back 4th photo
        assert sum(hits[n] == n for n in faces) >= 38
        assert g.index_path.is_file()

        # another process removes two people and enrols one more photo: this open gallery sees both
        other = open_store(db)
        gone = list(faces)[:2]
        for name in gone:
            other.remove(name)
        _add(other, list(faces)[2], faces[list(faces)[2]][3], 3)
        other.close()
        hits = _top_names(g, faces, 3)
        assert not set(hits.values()) & set(gone)
        assert g.search(faces[list(faces)[2]][3][None], 1)[0][0][1] < 1e-3  # the new photo itself

    # a crash: changes committed after the index file was last saved are caught up from the log
    before = (g.index_path.read_bytes(), (g.index_path.parent / (g.index_path.name + ".json")).read_text())
    other = open_store(db)
    for name in gone:
        _add(other, name, faces[name][0], 0)
    other.close()
    with Gallery(db, approx_from=approx_from) as g2:
        assert (g2.index_path.read_bytes(), (g2.index_path.parent / (g2.index_path.name + ".json")).read_text()) == before
        hits = _top_names(g2, faces, 3)
        assert all(hits[n] == n for n in gone)
        assert len(g2._synced_index()) == open_store(db).count_embeddings(EMBEDDER)


def test_a_face_given_a_removed_faces_id_is_replayed_into_the_index(tmp_path, faces):
    """SQLite gives a removed face's id to the next face enrolled, so the log reads add X, remove X,
    add X: the index must end holding the new face (replay once dropped it with the removed one, and
    the gallery's count check then rebuilt the whole index)."""
    from faceprint.gallery.vectors import replay

    db = tmp_path / "g.db"
    _fill(db, faces, range(1))
    store = open_store(db)
    names = list(faces)
    ids, vectors = store.embeddings(EMBEDDER, -1, limit=10**6)
    index = FaceIndex(vectors.shape[1])
    index.add(ids, vectors)
    seq = store.last_change()
    store.remove(names[-1])  # enrolled last: its face has the largest id
    new = _add(store, names[0], faces[names[0]][1], 1)
    assert new == int(ids.max())  # the id was reused, or this test tests nothing
    replay(index, store, EMBEDDER, store.changes_since(seq))
    keys, dist = index.search(faces[names[0]][1][None], 1)
    assert keys[0, 0] == new and dist[0, 0] < 1e-4
    assert len(index) == store.count_embeddings(EMBEDDER)
    store.close()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "newer"])
def test_a_bad_index_file_is_rebuilt(tmp_path, faces, damage):
    db = tmp_path / "g.db"
    _fill(db, faces, range(2))
    if damage == "newer":  # an older backup of the database restored beside a newer index
        shutil.copy(db, tmp_path / "backup.db")
    with Gallery(db) as g:
        _top_names(g, faces, 3)
        index = g.index_path
    if damage == "truncated":
        index.write_bytes(index.read_bytes()[:100])
    elif damage == "garbage":
        index.write_bytes(b"\0" * 5000)
    elif damage == "foreign":  # another gallery's index (same people, other ids) copied here
        other = tmp_path / "other.db"
        _fill(other, dict(reversed(list(faces.items()))), range(2))
        with Gallery(other) as g:
            _top_names(g, faces, 3)
        shutil.copy(g.index_path, index)
        shutil.copy(g.index_path.parent / (g.index_path.name + ".json"), index.parent / (index.name + ".json"))
    elif damage == "newer":
        with Gallery(db) as g:  # the index moves ahead: two more photos each
            store = open_store(db)
            for name, vecs in faces.items():
                _add(store, name, vecs[2], 2)
            store.close()
            _top_names(g, faces, 3)
        shutil.copy(tmp_path / "backup.db", db)
    with Gallery(db) as g:
        hits = _top_names(g, faces, 3)
        assert sum(hits[n] == n for n in faces) >= 37
        assert len(g._synced_index()) == 2 * len(faces)
