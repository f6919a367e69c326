"""Vectors in Milvus, tested against Milvus Lite (embedded, in tmp_path) with real LFW faceprints, and
where a real server differs, against Milvus 2.3 standalone (``milvus_server``, HNSW: a rebuild that
lists every id, which a server pages through, and the server restarted under a running gallery, then
the gallery restarted, each caught up from the log).

Milvus search agrees with the exact in-memory index; a gallery with its vectors in Milvus enrols,
identifies and removes (a removed person is never returned, and their vectors leave Milvus at once);
a second gallery object sees the first's changes; a restart catches up from the change log without
re-uploading; a collection that disagrees with the database (vectors missing or extra, a stamp from
a later or another database, a reindex) is rebuilt; Milvus Lite's one-process-per-folder rule is
met with a clear error; processes share vectors through a Milvus server (``milvus-lite server``);
``faceprint serve --vectors`` works over HTTP; an encrypted gallery refuses Milvus; a gallery whose
Milvus server goes down fails with a clear error, names no one removed meanwhile, and catches up
when the server is back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="vectors in Milvus need pymilvus: pip install 'faceprint[milvus]'")
pytest.importorskip("milvus_lite", reason="the Milvus tests run on Milvus Lite: pip install milvus-lite")

import httpx  # noqa: E402

from faceprint import Gallery  # noqa: E402
from faceprint.errors import GalleryError  # noqa: E402
from faceprint.evaluation import central  # noqa: E402
from faceprint.gallery.crypto import KEY_ENV, Sealer  # noqa: E402
from faceprint.gallery.milvus import STAMPS, MilvusIndex, MilvusVectors, collection_name  # noqa: E402
from faceprint.gallery.store import NewFace, Store, open_store  # noqa: E402
from faceprint.imageio import load_image  # noqa: E402
from faceprint.index import FaceIndex  # noqa: E402
from faceprint.pipeline import get_pipeline  # noqa: E402
from faceprint.gallery.keys import create_key  # noqa: E402

from .conftest import lfw_image  # noqa: E402
from .servers import faceprint_server, free_port  # noqa: E402
from .test_gallery import _people  # noqa: E402

EMBEDDER = "faceplugin"
FACEPRINT = str(Path(sys.executable).parent / "faceprint")


@pytest.fixture(autouse=True)
def _no_key_from_env(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("FACEPRINT_VECTORS", raising=False)


def _on_server(*values):
    """Parameters with ``vectors="server"``: marked, so the session's server is started for them."""
    return pytest.param(*values, marks=pytest.mark.milvus_server)


@pytest.fixture
def vectors(request, tmp_path) -> str:
    """Where the test's vectors go: a Milvus Lite folder in tmp_path, or (``"server"``) the session's
    Milvus standalone server, where each gallery has its own collections."""
    if getattr(request, "param", "lite") == "server":
        return request.getfixturevalue("milvus_server").uri
    return str(tmp_path / "v.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """A gallery database: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "g.db")
    import psycopg

    url = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop_database(url, name))
    return url.rsplit("/", 1)[0] + "/" + name


def _drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _probe(pipe, path: Path) -> np.ndarray:
    image = load_image(path)
    return pipe.embed(image, [central(pipe.detector.detect(image), image.shape)])[0].vector


@pytest.fixture(scope="module")
def faces(lfw_dir) -> dict[str, list[np.ndarray]]:
    """Real faceprints: four photos each of 40 LFW people."""
    pipe = get_pipeline(embedder=EMBEDDER)
    return {name: [_probe(pipe, lfw_image(lfw_dir, name, i)) for i in range(1, 5)]
            for name in _people(lfw_dir, 4, 40, skip=100)}


def _add(store: Store, name: str, vector: np.ndarray, tag: int) -> int:
    """A face written straight to the database, as another process (or one that crashed) would."""
    return store.add_face(NewFace(name, EMBEDDER, vector, hashlib.sha256(f"{name}{tag}".encode()).hexdigest(),
                                  box=[0, 0, 1, 1], landmarks={}, detector="test"))


def _fill(db: Path | str, faces: dict, photos: range) -> None:
    store = open_store(db)
    for name, vecs in faces.items():
        for i in photos:
            _add(store, name, vecs[i], i)
    store.close()


def _top_names(gallery: Gallery, faces: dict, photo: int, k: int = 1) -> dict[str, list[str]]:
    names = list(faces)
    found = gallery.search(np.stack([faces[n][photo] for n in names]), k)
    return {n: [who for who, _ in hits] for n, hits in zip(names, found)}


@contextmanager
def _collection(db: Path | str, vectors: str, dims: int = 512):
    """The gallery's Milvus collection, opened beside (not through) a Gallery."""
    store = open_store(db)
    conn = MilvusVectors(vectors, store)
    try:
        index = MilvusIndex(conn, EMBEDDER, dims)
        index._ensure()
        yield index, store
    finally:
        conn.close()
        store.close()


def _count_rebuilds(monkeypatch) -> list[str]:
    calls = []
    original = MilvusIndex._rebuild

    def counted(self, store, *args, **kwargs):
        calls.append(self.name)
        return original(self, store, *args, **kwargs)
    monkeypatch.setattr(MilvusIndex, "_rebuild", counted)
    return calls


# -- the index ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["FLAT", "HNSW"])
def test_milvus_search_agrees_with_exact_search(tmp_path, faces, kind):
    vectors = np.stack([v for vecs in faces.values() for v in vecs])
    keys = np.arange(len(vectors)) * 10 + 3
    exact = FaceIndex(vectors.shape[1], approx_from=None)
    exact.add(keys, vectors)
    store = open_store(tmp_path / "g.db")
    conn = MilvusVectors(f"{tmp_path / 'v.db'}?index={kind}", store)
    try:
        index = MilvusIndex(conn, EMBEDDER, vectors.shape[1])
        index.add(keys, vectors)
        index._flush(always=True)  # into a segment, which is what gets the HNSW graph
        assert len(index) == len(vectors)
        got_k, got_d = index.search(vectors, 5)
        want_k, want_d = exact.search(vectors, 5)
        assert (got_k[:, 0] == want_k[:, 0]).all()  # every face finds itself first
        same = got_k == want_k
        assert same.mean() >= (0.99 if kind == "FLAT" else 0.95)
        assert np.abs(got_d[same] - want_d[same]).max() < 1e-4  # cosine distances, as thresholds expect

        index.add(keys[:20], vectors[:20])  # applying an add twice: an upsert, no duplicate
        index.remove(np.array([10**12, 7]))  # removing keys it never had: nothing happens
        assert len(index) == len(vectors)
        index.remove(keys[:40])
        exact.remove(keys[:40])
        assert len(index) == len(vectors) - 40
        got_k, _ = index.search(vectors, 3)
        assert not np.isin(got_k, keys[:40]).any()
        assert (got_k[40:, 0] == exact.search(vectors[40:], 1)[0][:, 0]).all()

        many_k, many_d = index.search(vectors[:2], len(vectors) + 10)  # more than it holds: padded
        assert ((many_k == -1) == np.isinf(many_d)).all() and (many_k[:, -10 - 40:] == -1).all()
        assert index.search(np.zeros((0, vectors.shape[1])), 3)[0].shape == (0, 3)
    finally:
        conn.close()
        store.close()


# -- the gallery --------------------------------------------------------------------------------------
def test_gallery_with_vectors_in_milvus(tmp_path, lfw_dir):
    db, vectors = tmp_path / "g.db", str(tmp_path / "vectors.db")
    people = _people(lfw_dir, 4, 6, skip=60)
    with Gallery(db, vectors=vectors) as g, Gallery(db, vectors=vectors) as other:
        for name in people[:5]:
            for i in (1, 2):
                assert g.enroll(name, lfw_image(lfw_dir, name, i)) is not None
        probes = np.stack([_probe(g.pipeline, lfw_image(lfw_dir, name, 3)) for name in people])
        found = [hits[0][0] if hits else None for hits in g.search(probes[:5])]
        assert sum(who == name for who, name in zip(found, people)) >= 4
        match = g.identify(lfw_image(lfw_dir, people[0], 4))
        assert people[0] in [m.name for m in match]
        assert g.index_path is None and not (tmp_path / "g.db.index").exists()  # nothing saved beside the db

        # a second gallery object (another user of the same Milvus Lite folder) sees the first's changes
        assert [hits[0][0] for hits in other.search(probes[:5])] == found
        other.enroll(people[5], lfw_image(lfw_dir, people[5], 1))
        assert g.search(probes[5:], 1)[0][0][0] == people[5]

        ids = {f.id for f in g.faces(people[0])}
        assert g.remove(people[0]).faces == 2
        index = g._vectors._index  # erased from Milvus at once, before any search
        assert len(index) == g.store.count_embeddings(EMBEDDER) == 9
        assert not set(index.search(probes, 20)[0].ravel().tolist()) & ids
        for gallery in (g, other):
            names = {who for hits in gallery.search(probes, 11) for who, _ in hits}
            assert people[0] not in names and set(people[1:]) <= names
            assert people[0] not in [m.name for m in gallery.identify(lfw_image(lfw_dir, people[0], 4))]


def test_a_restart_catches_up_from_the_log(tmp_path, faces, monkeypatch, database):
    db, vectors = database, str(tmp_path / "v.db")
    _fill(db, faces, range(2))
    names = list(faces)
    with Gallery(db, vectors=vectors) as g:
        hits = _top_names(g, faces, 3)
        assert sum(hits[n][:1] == [n] for n in names) >= 37

    # while no gallery follows it (a crashed server, a script writing to the database): changes pile up
    store = open_store(db)
    for name in names[:2]:
        store.remove(name)
    for name in names[2:7]:
        _add(store, name, faces[name][2], 2)
    last = store.last_change()
    store.close()

    rebuilds = _count_rebuilds(monkeypatch)
    with Gallery(db, vectors=vectors) as g:
        hits = _top_names(g, faces, 3, k=5)
        assert not {n for found in hits.values() for n in found} & set(names[:2])
        for name in names[2:7]:
            (who, d), *_ = g.search(faces[name][2][None], 1)[0]
            assert who == name and d < 1e-4  # the photo added behind its back
        assert rebuilds == []  # caught up from the log: nothing uploaded again
        assert g._vectors._index.stamp()["seq"] == last
        assert len(g._vectors._index) == g.store.count_embeddings(EMBEDDER) == 2 * 38 + 5


@pytest.mark.parametrize("damage,vectors", [(d, "lite") for d in ("missing", "stray", "newer", "foreign")] +
                         [_on_server("stray", "server")], indirect=["vectors"])
def test_a_collection_that_disagrees_is_rebuilt(tmp_path, faces, monkeypatch, damage, vectors):
    """On a server, "stray" also checks the listing of every id, which pages through a query iterator there."""
    db = tmp_path / "g.db"
    _fill(db, faces, range(2))
    with Gallery(db, vectors=vectors) as g:
        _top_names(g, faces, 3)
    with _collection(db, vectors) as (index, store):
        if damage == "missing":  # vectors lost (a Milvus restore, someone's delete)
            index.client.delete(index.name, ids=list(range(1, 11)))
        elif damage == "stray":  # a vector the database never had, under a face id it never used
            index.client.upsert(index.name, [{"id": 10**9, "vector": faces[list(faces)[0]][3]}])
        elif damage == "newer":  # the database restored from a backup older than the vectors
            index._set_stamp(store.last_change() + 100)
        elif damage == "foreign":
            index.client.upsert(STAMPS, [{"collection": index.name, "gallery": "0" * 32, "embedder": EMBEDDER,
                                          "seq": store.last_change(), "building": 0, "v": [1.0, 0.0]}])
        index._flush(always=True)  # on a server: sealing asked for, not waited for
    rebuilds = _count_rebuilds(monkeypatch)
    with Gallery(db, vectors=vectors) as g:
        hits = _top_names(g, faces, 3)
        assert sum(hits[n][:1] == [n] for n in faces) >= 37
        assert len(rebuilds) == 1
        index = g._vectors._index
        assert len(index) == 2 * len(faces)
        assert index.stamp() == {"gallery": g.store.get_meta("gallery_id"), "embedder": EMBEDDER,
                                 "seq": g.store.last_change(), "building": 0}
        assert 10**9 not in index.search(faces[list(faces)[0]][3][None], 3)[0]


def test_a_miscount_by_milvus_is_checked_before_rebuilding(tmp_path, faces, monkeypatch):
    """Milvus' count(*) may count an upserted row twice (milvus-lite#249): a count that disagrees is
    checked against the listed ids, and only a real disagreement rebuilds."""
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    _fill(db, faces, range(2))
    with Gallery(db, vectors=vectors) as g:
        _top_names(g, faces, 3)
    counted = MilvusIndex.__len__
    monkeypatch.setattr(MilvusIndex, "__len__", lambda self: counted(self) + 1)  # what #249 reports
    rebuilds = _count_rebuilds(monkeypatch)
    names = list(faces)
    store = open_store(db)
    _add(store, names[0], faces[names[0]][3], 3)  # a change for the next search to catch up on
    store.close()
    with Gallery(db, vectors=vectors) as g:
        (who, d), *_ = g.search(faces[names[0]][3][None], 1)[0]
        assert who == names[0] and d < 1e-4
        assert rebuilds == []
    with _collection(db, vectors) as (index, store):  # a real disagreement is still found
        index.client.delete(index.name, ids=[1, 2])
        index.client.flush(index.name)
    with Gallery(db, vectors=vectors) as g:
        _top_names(g, faces, 3)
        assert len(rebuilds) == 1


def test_changes_during_a_rebuild_are_not_lost(tmp_path, faces, monkeypatch):
    """A rebuild uploads outside the database lock; whatever is committed meanwhile is replayed after."""
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    _fill(db, faces, range(2))
    names = list(faces)
    original, calls = MilvusIndex.add, []

    def add_while_others_write(self, keys, vecs):
        original(self, keys, vecs)
        if not calls:  # after the first uploaded page: another process removes one person, enrols another
            other = open_store(db)
            other.remove(names[0])
            _add(other, names[1], faces[names[1]][3], 3)
            other.close()
        calls.append(len(keys))
    monkeypatch.setattr(MilvusIndex, "add", add_while_others_write)
    listings = []
    monkeypatch.setattr(MilvusIndex, "_delete_strays", lambda self, store: listings.append(1))
    with Gallery(db, vectors=vectors) as g:
        g.search(faces[names[2]][3][None])  # the first search builds the collection
        assert len(calls) >= 2
        assert listings == []  # replaying the log sufficed: no listing of every id in Milvus
        index = g._vectors._index
        assert len(index) == g.store.count_embeddings(EMBEDDER) == 2 * len(faces) - 2 + 1
        hits = _top_names(g, faces, 3, k=5)
        assert names[0] not in {n for found in hits.values() for n in found}
        (who, d), *_ = g.search(faces[names[1]][3][None], 1)[0]
        assert who == names[1] and d < 1e-4


def test_concurrent_galleries_keep_milvus_in_step(tmp_path, faces, monkeypatch, database):
    """Gallery objects on their own database connections, enrolling, removing and searching at once:
    catch-ups take turns under the database's write lock, and Milvus ends with exactly the database's faces."""
    import threading

    db, vectors = database, str(tmp_path / "v.db")
    _fill(db, faces, range(1))
    names = list(faces)
    errors = []
    rebuilds = _count_rebuilds(monkeypatch)

    def worker(part: list[str]) -> None:
        try:
            with Gallery(db, vectors=vectors) as g:
                for i, name in enumerate(part):
                    _add(g.store, name, faces[name][1], 1)
                    g.search(faces[name][2][None], 3)
                    if i % 3 == 0:
                        g.remove(name)
                    g.search(faces[name][3][None], 3)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(names[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(rebuilds) == 1  # the first to find the collection empty built it; the others waited for it
    with Gallery(db, vectors=vectors) as g:
        g.search(faces[names[0]][0][None])
        index = g._vectors._index
        held = {row["id"] for row in index.client.query(index.name, filter="id >= 0", output_fields=["id"],
                                                        limit=10_000, consistency_level="Strong")}
        assert held == set(g.store.embeddings(EMBEDDER)[0].tolist())
        assert index.stamp()["seq"] == g.store.last_change()
    assert len(rebuilds) == 1  # and it never disagreed with the database afterwards


def test_a_rebuild_under_way_elsewhere_is_waited_for(tmp_path, faces, monkeypatch):
    """A process finding another's rebuild claim waits for it; a claim not renewed goes stale and is taken over."""
    from faceprint.gallery import milvus

    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    _fill(db, faces, range(2))
    with _collection(db, vectors) as (index, store):
        index._set_stamp(0, building=True)  # a rebuilder that then died
    monkeypatch.setattr(milvus, "BUILD_STALE", 2)
    rebuilds = _count_rebuilds(monkeypatch)
    with Gallery(db, vectors=vectors) as g:
        start = time.monotonic()
        hits = _top_names(g, faces, 3)
        assert time.monotonic() - start > 1.0 and len(rebuilds) == 1
        assert sum(hits[n][:1] == [n] for n in faces) >= 37
        assert g._vectors._index.stamp()["building"] == 0


def test_reindex_rebuilds_and_erases_the_old_vectors(tmp_path, lfw_dir):
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    people = _people(lfw_dir, 4, 3, skip=80)
    with Gallery(db, vectors=vectors) as g:
        for name in people:
            for i in (1, 2):
                g.enroll(name, lfw_image(lfw_dir, name, i))
        assert g.identify(lfw_image(lfw_dir, people[0], 3))
        old = g._vectors._index.name
        assert g.reindex("dlib-resnet") == 6
        probes = np.stack([_probe(g.pipeline, lfw_image(lfw_dir, name, 3)) for name in people])
        found = [hits[0][0] for hits in g.search(probes)]
        assert sum(who == name for who, name in zip(found, people)) >= 2
        index = g._vectors._index
        assert index.name != old and index.dims == 128 and len(index) == 6
        prefix = f"faceprint_{g.store.get_meta('gallery_id')}_"
        mine = [c for c in index.client.list_collections() if c.startswith(prefix)]
        assert mine == [index.name]  # the old embedder's vectors went with its embeddings
        assert index.client.query(STAMPS, filter=f'collection == "{old}"', output_fields=["seq"]) == []


def test_a_collection_dropped_under_a_running_gallery_is_rebuilt(tmp_path, faces):
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    _fill(db, faces, range(2))
    with Gallery(db, vectors=vectors) as g:
        _top_names(g, faces, 3)
        index = g._vectors._index
        index.client.drop_collection(index.name)  # an operator, or Milvus restored from an older backup
        hits = _top_names(g, faces, 3)  # the database has not changed, yet the answers are whole
        assert sum(hits[n][:1] == [n] for n in faces) >= 37
        assert len(index) == 2 * len(faces)


def test_vectors_uris():
    from faceprint.gallery.milvus import is_lite, parse_uri

    assert parse_uri("milvus:///srv/v.db") == ("/srv/v.db", Path("/srv/v.db"), None)
    assert parse_uri("v.db?index=hnsw")[1:] == (Path("v.db").resolve(), "HNSW")
    assert parse_uri("https://u:secret@milvus.example:443/faceprint") == \
        ("https://u:secret@milvus.example:443/faceprint", None, None)
    assert is_lite("~/v.db") and not is_lite("http://127.0.0.1:19530")
    with pytest.raises(GalleryError) as e:
        parse_uri("https://u:secret@milvus.example?index=nope")
    assert "secret" not in str(e.value)  # credentials never reach a message


def test_collection_names_keep_galleries_and_embedders_apart():
    a = collection_name("0" * 32, "faceplugin")
    assert a != collection_name("1" * 32, "faceplugin") != collection_name("0" * 32, "dlib-resnet")
    assert collection_name("0" * 32, "a-b") != collection_name("0" * 32, "a_b")  # same letters, other name
    assert all(c.isalnum() or c == "_" for c in collection_name("0" * 32, "fusion(a+b)/v2"))


@pytest.mark.milvus_server
def test_a_milvus_server_restart_under_a_running_gallery(tmp_path, faces, monkeypatch, milvus_server):
    """The server killed under a gallery: a removal still empties the database at once (Milvus is told
    later), searches fail with a clear error instead of answering, and once the server is back the
    gallery catches up from the log, so the removed person is never named and nothing is re-uploaded.
    Then the gallery restarts, and catches up with what was written to the database meanwhile."""
    db, names = tmp_path / "g.db", list(faces)
    _fill(db, faces, range(2))
    rebuilds = _count_rebuilds(monkeypatch)
    with Gallery(db, vectors=milvus_server.uri) as g:
        assert sum(found[:1] == [n] for n, found in _top_names(g, faces, 3).items()) >= 37
        milvus_server.stop()  # killed
        try:
            assert g.remove(names[0]).faces == 2
            assert not g.store.has_person(names[0])
            with pytest.raises(GalleryError, match=re.escape(f"--vectors {milvus_server.uri}: Milvus failed")):
                g.search(faces[names[1]][3][None])
        finally:
            milvus_server.start()
            milvus_server.wait()
        hits = _top_names(g, faces, 3, k=5)
        assert names[0] not in {n for found in hits.values() for n in found}
        assert sum(hits[n][:1] == [n] for n in names[1:]) >= 36
        index = g._vectors._index
        assert len(index) == g.store.count_embeddings(EMBEDDER) == 2 * len(faces) - 2
        assert index.stamp()["seq"] == g.store.last_change()
    store = open_store(db)  # while no gallery follows it
    store.remove(names[1])
    _add(store, names[2], faces[names[2]][2], 2)
    store.close()
    with Gallery(db, vectors=milvus_server.uri) as g:
        hits = _top_names(g, faces, 3, k=5)
        assert not {n for found in hits.values() for n in found} & set(names[:2])
        (who, d), *_ = g.search(faces[names[2]][2][None], 1)[0]
        assert who == names[2] and d < 1e-4
        assert g._vectors._index.stamp()["seq"] == g.store.last_change()
    assert len(rebuilds) == 1  # the first search's upload only: both restarts caught up from the log


# -- processes ----------------------------------------------------------------------------------------
def _identify_cli(db: Path, vectors: str, image: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FACEPRINT, "identify", str(image), "--db", str(db), "--vectors", vectors, "--json"],
                          capture_output=True, text=True, timeout=300)


def test_milvus_lite_is_one_process_per_folder(tmp_path, lfw_dir):
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    name = _people(lfw_dir, 4, 1, skip=90)[0]
    with Gallery(db, vectors=vectors) as g:
        g.enroll(name, lfw_image(lfw_dir, name, 1))
        assert g.identify(lfw_image(lfw_dir, name, 2))
        busy = _identify_cli(db, vectors, lfw_image(lfw_dir, name, 2))  # while this process has it open
        assert busy.returncode == 1 and "another process has this Milvus Lite folder open" in busy.stderr
        assert "milvus-lite server" in busy.stderr
    done = _identify_cli(db, vectors, lfw_image(lfw_dir, name, 2))  # closed: its lock is released
    assert done.returncode == 0, done.stderr
    assert name in [f["name"] for f in json.loads(done.stdout)[0]["faces"]]
    refused = subprocess.run([FACEPRINT, "serve", "--db", str(db), "--vectors", vectors, "--workers", "2",
                              "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "--workers 1" in refused.stderr


@contextmanager
def _milvus_server(data: Path):
    """``milvus-lite server``: Milvus Lite served over gRPC, so several processes can share it."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(data),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("milvus-lite server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _auth(db: Path) -> dict:
    store = open_store(db)
    try:
        return {"Authorization": f"Bearer {create_key(store, 'test', ['read', 'enroll', 'admin'])}"}
    finally:
        store.close()


def _photo(lfw: Path, name: str, n: int) -> tuple[str, bytes, str]:
    path = lfw_image(lfw, name, n)
    return path.name, path.read_bytes(), "image/jpeg"


def _who(base: str, auth: dict, lfw: Path, name: str, n: int) -> str | None:
    """The name given to the subject (the most central face) of an LFW photo."""
    r = httpx.post(base + "/v1/identify", headers=auth, files={"image": _photo(lfw, name, n)}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    cx, cy = body["width"] / 2, body["height"] / 2
    face = min(body["faces"], key=lambda f: ((f["box"][0] + f["box"][2]) / 2 - cx) ** 2
               + ((f["box"][1] + f["box"][3]) / 2 - cy) ** 2)
    return face["name"]


def _enrol(base: str, auth: dict, lfw: Path, name: str, photos: list[int]) -> None:
    assert httpx.post(base + "/v1/people", json={"name": name}, headers=auth).status_code == 201
    r = httpx.post(f"{base}/v1/people/{name}/faces", headers=auth, timeout=120,
                   files=[("images", _photo(lfw, name, i)) for i in photos])
    assert r.status_code == 201, r.text


def test_serve_with_vectors_in_milvus_lite(tmp_path, lfw_dir):
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    auth = _auth(db)
    p = _people(lfw_dir, 4, 2, skip=120)
    with faceprint_server(str(db), "--vectors", vectors) as base:
        assert _who(base, auth, lfw_dir, p[0], 3) is None
        _enrol(base, auth, lfw_dir, p[0], [1, 2])
        _enrol(base, auth, lfw_dir, p[1], [1, 2])
        assert _who(base, auth, lfw_dir, p[0], 3) == p[0]
        assert _who(base, auth, lfw_dir, p[1], 3) == p[1]
        assert httpx.delete(f"{base}/v1/people/{p[0]}", headers=auth).json()["faces"] == 2
        assert _who(base, auth, lfw_dir, p[0], 3) != p[0]
    assert not (tmp_path / "g.db.index").exists()
    with _collection(db, vectors) as (index, store):  # the server's vectors were in Milvus, removal included
        assert len(index) == store.count_embeddings(EMBEDDER) == 2
        assert index.stamp()["seq"] == store.last_change()


def test_processes_share_vectors_through_a_milvus_server(tmp_path, lfw_dir):
    db = tmp_path / "g.db"
    auth = _auth(db)
    p = _people(lfw_dir, 4, 2, skip=130)
    with _milvus_server(tmp_path / "milvus") as uri, \
            faceprint_server(str(db), "--vectors", uri) as a, faceprint_server(str(db), "--vectors", uri) as b:
        assert _who(b, auth, lfw_dir, p[0], 3) is None
        _enrol(a, auth, lfw_dir, p[0], [1, 2])
        assert _who(b, auth, lfw_dir, p[0], 3) == p[0]  # A's enrolment, found by B through the shared log
        _enrol(b, auth, lfw_dir, p[1], [1, 2])
        assert _who(a, auth, lfw_dir, p[1], 3) == p[1]
        assert httpx.delete(f"{a}/v1/people/{p[0]}", headers=auth).json()["faces"] == 2
        assert _who(b, auth, lfw_dir, p[0], 3) != p[0]  # and A's removal
        with _collection(db, uri) as (index, store):
            assert len(index) == store.count_embeddings(EMBEDDER) == 2


def test_settings_read_the_vectors_uri_from_the_environment(monkeypatch):
    from faceprint.server.app import Settings

    assert Settings.from_env().vectors is None
    monkeypatch.setenv("FACEPRINT_VECTORS", "http://milvus.example:19530")
    assert Settings.from_env().vectors == "http://milvus.example:19530"


# -- refusals -----------------------------------------------------------------------------------------
def test_an_encrypted_gallery_refuses_milvus(tmp_path):
    db, vectors = tmp_path / "g.db", str(tmp_path / "v.db")
    with pytest.raises(GalleryError, match=KEY_ENV):
        Gallery(db, vectors=vectors, sealer=Sealer(os.urandom(32)))
    assert not Path(vectors).exists()  # nothing was written to Milvus
    key = __import__("base64").b64encode(os.urandom(32)).decode()
    done = subprocess.run([FACEPRINT, "serve", "--db", str(tmp_path / "e.db"), "--vectors", vectors,
                           "--port", str(free_port())], capture_output=True, text=True, timeout=120,
                          env={**os.environ, KEY_ENV: key})
    assert done.returncode == 1 and "unencrypted" in done.stderr


@pytest.mark.parametrize("uri", ["ftp://host/x", "vectors.sqlite", "v.db?index=IVF_PQ", "v.db?shards=2"])
def test_a_bad_vectors_uri_is_refused(tmp_path, uri):
    with pytest.raises(GalleryError, match="--vectors"):
        Gallery(tmp_path / "g.db", vectors=uri)
