"""The gallery on PostgreSQL: a throwaway server (tests/servers.py), real models, real LFW faces.

Every test makes its own database on that server (CREATE DATABASE), so none sees another's data.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest

from faceprint import Gallery
from faceprint.errors import GalleryError
from faceprint.gallery.crypto import KEY_ENV, Sealer
from faceprint.gallery.store import SCHEMA_VERSION, NewFace, open_store
from faceprint.gallery.keys import check_key, create_key

from .conftest import lfw_image
from .servers import connection_owner, descendants, faceprint_server_process
from .test_gallery import _off_centre, _people

FACEPRINT = str(Path(sys.executable).parent / "faceprint")
TABLES = {"meta", "people", "faces", "embeddings", "changes", "api_keys"}


@pytest.fixture(autouse=True)
def _no_key_from_env(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def new_db(postgres_url):
    """Makes a fresh, empty database on the test server per call; all are dropped afterwards."""
    made = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return postgres_url.rsplit("/", 1)[0] + "/" + name

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as con:
        for name in made:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(new_db) -> str:
    return new_db()


def _sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as con:
        cur = con.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def _who(g: Gallery, photo: Path) -> str | None:
    """Who the gallery says the photo's subject (the face nearest the centre of an LFW image) is."""
    return min(g.identify(photo), key=lambda m: _off_centre(m.face.box)).name


def _consistent(url: str) -> list[tuple[int, str, str]]:
    """``(face id, person, image sha256)`` of every stored face, after checking nothing is half-written:
    every face has exactly one embedding, and the change log's adds and removes account for every face."""
    faces = _sql(url, "SELECT f.id, p.name, f.image_sha256 FROM faces f JOIN people p ON p.id = f.person_id"
                      " ORDER BY f.id")
    assert _sql(url, "SELECT COUNT(*) FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id"
                     " WHERE e.face_id IS NULL") == [(0,)]
    assert _sql(url, "SELECT COUNT(*) FROM embeddings") == [(len(faces),)]
    log = _sql(url, "SELECT op, face_id FROM changes ORDER BY seq")
    added = [f for op, f in log if op == "add"]
    removed = [f for op, f in log if op == "remove"]
    assert len(added) == len(set(added)) and len(removed) == len(set(removed))  # each logged once
    assert set(added) - set(removed) == {f[0] for f in faces}
    return faces


# -- the gallery itself on PostgreSQL ---------------------------------------------------------------------
def test_gallery_on_postgres(db, lfw_dir):
    known = _people(lfw_dir, 4, 6, skip=100)
    strangers = _people(lfw_dir, 1, 6, skip=100)
    with Gallery(db) as g:
        assert g.location == db and g.index_path is None  # the index lives in memory only
        for name in known:
            for i in (1, 2):
                assert g.enroll(name, lfw_image(lfw_dir, name, i)) is not None
        assert g.enroll(known[0], lfw_image(lfw_dir, known[0], 1)) is None  # the same photo again: no duplicate
        for name in known:
            assert _who(g, lfw_image(lfw_dir, name, 3)) == name  # a photo held back from enrolment
        for name in strangers:
            assert _who(g, lfw_image(lfw_dir, name, 1)) is None

        g.rename(known[0], "Renamed Person")
        assert _who(g, lfw_image(lfw_dir, known[0], 3)) == "Renamed Person"
        gone = g.remove(known[1])
        assert (gone.faces, gone.embeddings) == (2, 2)
        probe = g.pipeline.embed_one(lfw_image(lfw_dir, known[1], 1)).vector  # one of the removed photos
        assert known[1] not in {n for n, _ in g.search(probe[None], k=50)[0]}  # never returned, however far down
        assert _who(g, lfw_image(lfw_dir, known[1], 1)) is None

        # embeddings of different models are never mixed
        with pytest.raises(GalleryError, match="reindex"):
            Gallery(db, embedder="mobilefacenet")
        with pytest.raises(GalleryError, match="never mixed"):
            g.store.add_face(NewFace("X", "mobilefacenet", np.ones(128, np.float32), "0" * 64,
                                     box=[0, 0, 1, 1], landmarks={}, detector="d"))
        assert not g.store.has_person("X")  # the refused write left nothing behind

        assert g.reindex("mobilefacenet") == 10
        assert g.store.get_meta("embedder") == "mobilefacenet"
        for name in ["Renamed Person", *known[2:]]:
            photo = known[0] if name == "Renamed Person" else name
            assert _who(g, lfw_image(lfw_dir, photo, 1)) == name
        with pytest.raises(GalleryError, match="reindex"):
            Gallery(db, embedder="faceplugin")
    assert _sql(db, "SELECT DISTINCT embedder FROM embeddings") == [("mobilefacenet",)]

    with Gallery(db) as g:  # reopened: the embedder comes from the database, the index is rebuilt from it
        assert g.pipeline.embedder.name == "mobilefacenet"
        assert {p["name"]: p["faces"] for p in g.people()} == {"Renamed Person": 2, **{n: 2 for n in known[2:]}}
        assert _who(g, lfw_image(lfw_dir, known[2], 1)) == known[2]
        assert g.reindex("faceplugin") == 10
    with Gallery(db) as g:
        assert g.pipeline.embedder.name == "faceplugin"
        for name in known[2:]:
            assert _who(g, lfw_image(lfw_dir, name, 3)) == name
        assert _who(g, lfw_image(lfw_dir, known[0], 3)) == "Renamed Person"
        assert _who(g, lfw_image(lfw_dir, known[1], 3)) is None
        for name in strangers:
            assert _who(g, lfw_image(lfw_dir, name, 1)) is None

    meta = dict(_sql(db, "SELECT key, value FROM meta"))
    assert meta["schema"] == str(SCHEMA_VERSION) and meta["embedder"] == "faceplugin" and len(meta["gallery_id"]) == 32
    assert len(_consistent(db)) == 10
    assert _sql(db, "SELECT COUNT(*) FROM changes WHERE op = 'reset'") == [(2,)]


def test_encryption_at_rest_on_postgres(new_db, lfw_dir):
    db = new_db()
    name = _people(lfw_dir, 4, 1, skip=120)[0]
    sealer = Sealer(os.urandom(32))
    with Gallery(db, sealer=sealer) as g:
        plain = g.pipeline.embed_one(lfw_image(lfw_dir, name, 1)).vector.astype(np.float32).tobytes()
        for i in (1, 2):
            g.enroll(name, lfw_image(lfw_dir, name, i))
        assert _who(g, lfw_image(lfw_dir, name, 3)) == name
    rows = _sql(db, "SELECT e.vector, f.chip FROM embeddings e JOIN faces f ON f.id = e.face_id")
    assert len(rows) == 2
    for vector, chip in rows:
        assert len(vector) == 512 * 4 + 12 + 16  # nonce + ciphertext + tag: not a float32 vector
        assert plain[:64] not in vector
        assert chip and not chip.startswith(b"\xff\xd8")  # the face image is kept, but not as a readable JPEG
    assert _sql(db, "SELECT value FROM meta WHERE key = 'sealed'") == [(sealer.fingerprint,)]
    with pytest.raises(GalleryError, match=f"encrypted; set {KEY_ENV}"):
        open_store(db)
    with pytest.raises(GalleryError, match="not the key this gallery was encrypted with"):
        open_store(db, Sealer(os.urandom(32)))
    with Gallery(db, sealer=sealer) as g:  # the right key: the in-memory index is rebuilt from decrypted vectors
        assert _who(g, lfw_image(lfw_dir, name, 4)) == name

    # plain faces in a gallery opened with a key are refused too
    other = new_db()
    with Gallery(other) as g:
        g.enroll(name, lfw_image(lfw_dir, name, 1))
    with pytest.raises(GalleryError, match="holds unencrypted faces"):
        open_store(other, sealer)


def test_schema_created_upgraded_and_least_privilege(new_db, postgres_url):
    db = new_db()
    open_store(db).close()
    tables = {r[0] for r in _sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == TABLES
    assert _sql(db, "SELECT value FROM meta WHERE key = 'schema'") == [(str(SCHEMA_VERSION),)]

    # a gallery from before api_keys (schema 2) is upgraded in place when opened
    _sql(db, "DROP TABLE api_keys")
    _sql(db, "UPDATE meta SET value = '2' WHERE key = 'schema'")
    store = open_store(db)
    assert check_key(store, create_key(store, "test", ["read"])).scopes == ("read",)
    store.close()
    assert _sql(db, "SELECT value FROM meta WHERE key = 'schema'") == [(str(SCHEMA_VERSION),)]
    # one from a newer faceprint is refused, not written to
    _sql(db, "UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(GalleryError, match="newer faceprint"):
        open_store(db)
    _sql(db, f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema'")

    # once the schema is there, a role with only table privileges can run the gallery
    role = f"app_{uuid.uuid4().hex[:8]}"
    empty = new_db()
    _sql(postgres_url, f"CREATE ROLE {role} LOGIN")
    try:
        _sql(db, f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        as_app = db.replace("//faceprint@", f"//{role}@")
        store = open_store(as_app)
        store.add_person("Someone")
        create_key(store, "test", ["read"])
        assert store.has_person("Someone") and store.count_people() == 1
        store.close()
        with pytest.raises(GalleryError, match="cannot set up the gallery's tables: permission denied"):
            open_store(empty.replace("//faceprint@", f"//{role}@"))  # creating them needs CREATE on the schema
    finally:
        _sql(db, f"DROP OWNED BY {role}")
        _sql(empty, f"DROP OWNED BY {role}")
        _sql(postgres_url, f"DROP ROLE {role}")

    with pytest.raises(GalleryError, match="cannot connect") as e:
        open_store(db.replace("//faceprint@", "//faceprint:hunter2@").rsplit("/", 1)[0] + "/no_such_db")
    assert "hunter2" not in str(e.value)


def test_lost_connection_is_replaced(db):
    def drop_connections() -> None:  # what a server restart or failover does to every client
        _sql(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE datname = current_database() AND pid <> pg_backend_pid()")

    store = open_store(db)
    store.add_person("Before")
    drop_connections()
    assert store.has_person("Before")  # a read outside a transaction is sent again on a new connection
    drop_connections()
    store.add_person("After")  # so is the BEGIN of a write
    # a write whose connection goes in the middle fails, and leaves nothing behind
    with pytest.raises(psycopg.OperationalError):
        with store.write():
            store.set_meta("half", "written")
            drop_connections()
            store.set_meta("other", "half")
    assert store.get_meta("half") is None and store.count_people() == 2
    store.close()
    with pytest.raises(psycopg.OperationalError):  # closed on purpose stays closed
        store.count_people()


def test_a_held_write_lock_gives_busy_within_the_bound(db, monkeypatch):
    from faceprint.errors import BusyError
    from faceprint.gallery.store.postgres import _WRITE_LOCK

    monkeypatch.setenv("FACEPRINT_LOCK_TIMEOUT", "1")
    store = open_store(db)
    store.add_person("Before")
    with psycopg.connect(db, autocommit=True) as outside:  # another writer, holding the lock every writer takes
        outside.execute("SELECT pg_advisory_lock(%s)", (_WRITE_LOCK,))
        started = time.perf_counter()
        with pytest.raises(BusyError, match="busy"):
            store.add_person("Refused")
        assert 0.9 < time.perf_counter() - started < 3
        assert [p[0] for p in store.people()] == ["Before"]  # the store reads on, nothing half-written
        outside.execute("SELECT pg_advisory_unlock(%s)", (_WRITE_LOCK,))
    store.add_person("After")
    assert [p[0] for p in store.people()] == ["After", "Before"]
    store.close()


# -- several processes on one database ---------------------------------------------------------------------
def _key_from_cli(db: str) -> dict:
    done = subprocess.run([FACEPRINT, "keys", "create", "test", "-s", "admin", "--db", db, "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return {"Authorization": f"Bearer {json.loads(done.stdout)['key']}"}


def _photo(lfw: Path, name: str, n: int, field: str = "image") -> dict:
    path = lfw_image(lfw, name, n)
    return {field: (path.name, path.read_bytes(), "image/jpeg")}


def _enrol(base: str, auth: dict, lfw: Path, name: str, photos: list[int]) -> list[int]:
    """Create ``name`` and enrol the photos through a server's API; the new face ids."""
    with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
        assert c.post("/v1/people", json={"name": name}).status_code == 201
        r = c.post(f"/v1/people/{name}/faces", files=[("images", _photo(lfw, name, i)["image"]) for i in photos])
        assert r.status_code == 201 and r.json()["enrolled"] == len(photos), r.text
        return r.json()["faces"]


def _identify(client: httpx.Client, lfw: Path, name: str, n: int, largest: bool = False
              ) -> tuple[str | None, float | None]:
    """Name and distance of the photo's subject (the face nearest the centre), or of its largest face
    (the one enrolment takes: a few LFW photos show someone else larger)."""
    r = client.post("/v1/identify", files=_photo(lfw, name, n))
    assert r.status_code == 200, r.text
    face = (max(r.json()["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
            if largest else min(r.json()["faces"], key=lambda f: _off_centre(f["box"])))
    return face["name"], face["distance"]


def _who_at(base: str, auth: dict, lfw: Path, name: str, n: int) -> str | None:
    with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
        return _identify(c, lfw, name, n)[0]


def _workers(server: subprocess.Popen) -> list[int]:
    """The uvicorn worker processes of a ``faceprint serve --workers N``."""
    return sorted(pid for pid in descendants(server.pid)
                  if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())


def _on_every_worker(base: str, server: subprocess.Popen, auth: dict, lfw: Path, name: str, n: int,
                     times: int = 2) -> dict[int, list[str | None]]:
    """Identify ``times`` on each worker (the others paused, so the connection cannot go to them):
    the answers by worker pid."""
    workers = _workers(server)
    assert len(workers) == 2, workers
    port = int(base.rsplit(":", 1)[1])
    answers: dict[int, list[str | None]] = {}
    for pid in workers:
        others = [w for w in workers if w != pid]
        for w in others:
            os.kill(w, signal.SIGSTOP)
        try:
            for _ in range(times):
                with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
                    who = _identify(c, lfw, name, n)[0]
                    client_port = c.get("/v1/health").extensions["network_stream"].get_extra_info("client_addr")[1]
                    assert connection_owner(port, client_port, set(workers)) == pid  # same connection, same worker
                answers.setdefault(pid, []).append(who)
        finally:
            for w in others:
                os.kill(w, signal.SIGCONT)
    return answers


def test_servers_and_workers_share_one_database(db, lfw_dir):
    p = _people(lfw_dir, 4, 5, skip=140)
    auth = _key_from_cli(db)
    with faceprint_server_process(db) as (a, _), faceprint_server_process(db) as (b, _):
        assert _who_at(b, auth, lfw_dir, p[0], 3) is None  # B is up, its index built from the empty gallery
        _enrol(a, auth, lfw_dir, p[0], [1, 2])
        assert _who_at(b, auth, lfw_dir, p[0], 3) == p[0]  # A's enrolment, found by B without a restart
        _enrol(b, auth, lfw_dir, p[1], [1, 2])
        assert _who_at(a, auth, lfw_dir, p[1], 3) == p[1]
        with httpx.Client(base_url=a, headers=auth, timeout=60) as c:
            assert c.delete(f"/v1/people/{p[0]}").json()["faces"] == 2
        assert _who_at(b, auth, lfw_dir, p[0], 3) is None  # and A's removal
        assert _who_at(b, auth, lfw_dir, p[0], 1) is None  # even of a photo that was enrolled

        with faceprint_server_process(db, "--workers", "2") as (c, server):
            _enrol(c, auth, lfw_dir, p[2], [1, 2])  # through one of C's workers
            assert _who_at(a, auth, lfw_dir, p[2], 3) == p[2]
            assert _who_at(b, auth, lfw_dir, p[2], 3) == p[2]
            _enrol(a, auth, lfw_dir, p[3], [1, 2])  # a moment before C's workers are asked
            for pid, names in _on_every_worker(c, server, auth, lfw_dir, p[3], 3).items():
                assert set(names) == {p[3]}, (pid, names)
            with httpx.Client(base_url=b, headers=auth, timeout=60) as cb:
                assert cb.delete(f"/v1/people/{p[3]}").status_code == 200
            for pid, names in _on_every_worker(c, server, auth, lfw_dir, p[3], 3).items():
                assert set(names) == {None}, (pid, names)
            _enrol(c, auth, lfw_dir, p[4], [1])

            # the database drops every connection (a restart, a failover): each process reconnects
            killed = _sql(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert len(killed) >= 4  # A, B and C's two workers
            for base in (a, b):
                assert _who_at(base, auth, lfw_dir, p[4], 2) == p[4]
            for pid, names in _on_every_worker(c, server, auth, lfw_dir, p[1], 3).items():
                assert set(names) == {p[1]}, (pid, names)
            _enrol(b, auth, lfw_dir, p[3], [4])  # writing works again too
            assert _who_at(c, auth, lfw_dir, p[3], 3) == p[3]
    assert len(_consistent(db)) == 6  # p1, p2: 2 each; p3 (its second enrolment), p4: 1 each


def _enrol_at(url: str, ready, photos: list[tuple[str, str]], out) -> None:
    """In a fresh process: open the gallery when every process is ready (all at once: the schema
    creation race), then enrol each photo; puts what was acknowledged on ``out``."""
    ready.wait()
    with Gallery(url) as g:
        out.put([(name, hashlib.sha256(Path(path).read_bytes()).hexdigest(), g.enroll(name, path))
                 for name, path in photos])


def test_concurrent_writers_into_a_new_database(db, lfw_dir):
    people = _people(lfw_dir, 2, 6, skip=260)
    photos = [(name, str(lfw_image(lfw_dir, name, i))) for name in people for i in (1, 2)]  # 12
    # four processes, six photos each: every photo is sent by two of them at about the same time
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_enrol_at, args=(db, ready, [photos[(3 * w + j) % 12] for j in range(6)], out))
             for w in range(4)]
    for proc in procs:
        proc.start()
    done, deadline = [], time.monotonic() + 120
    while len(done) < len(procs) and time.monotonic() < deadline:
        try:
            done.append(out.get(timeout=0.5))
        except queue.Empty:
            if all(proc.exitcode is not None for proc in procs) and out.empty():
                break  # one failed: its error is in the captured output
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    results = [r for batch in done for r in batch]
    acknowledged = {(name, sha, fid) for name, sha, fid in results if fid is not None}
    assert len(results) == 24 and len(acknowledged) == 12
    assert len({(name, sha) for name, sha, _ in acknowledged}) == 12  # each photo stored by exactly one of its two
    faces = _consistent(db)
    assert {(name, sha, fid) for fid, name, sha in faces} == acknowledged
    assert _sql(db, "SELECT COUNT(*) FROM people") == [(6,)]
    assert _sql(db, "SELECT op, COUNT(*) FROM changes GROUP BY op") == [("add", 12)]
    assert _sql(db, "SELECT value FROM meta WHERE key = 'schema'") == [(str(SCHEMA_VERSION),)]
    tables = {r[0] for r in _sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == TABLES


def test_kill_9_mid_enrolment_stream(db, lfw_dir):
    people = _people(lfw_dir, 4, 8, skip=300)
    store = open_store(db)
    auth = {"Authorization": f"Bearer {create_key(store, 'test', ['enroll', 'read'])}"}
    store.close()
    stream = [(name, i) for i in (1, 2, 3, 4) for name in people]  # 32 enrolments, one photo a request
    acknowledged: list[tuple[str, int, int]] = []
    with faceprint_server_process(db) as (url, server):
        for name in people:
            assert httpx.post(url + "/v1/people", json={"name": name}, headers=auth).status_code == 201

        def client(items: list[tuple[str, int]]) -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
                for name, i in items:
                    try:
                        r = c.post(f"/v1/people/{name}/faces", files=_photo(lfw_dir, name, i, "images"))
                    except httpx.TransportError:
                        return  # the server is gone: this one's outcome is unknown, and it is not counted
                    if r.is_success:
                        [fid] = r.json()["faces"]
                        acknowledged.append((name, i, fid))

        threads = [threading.Thread(target=client, args=(stream[k::2],)) for k in (0, 1)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        for t in threads:
            t.join(60)
        server.wait()
    assert 8 <= len(acknowledged) < len(stream)

    faces = {fid: (name, sha) for fid, name, sha in _consistent(db)}  # nothing half-written
    for name, i, fid in acknowledged:  # every 2xx is there, as the face it was
        assert faces[fid] == (name, hashlib.sha256(lfw_image(lfw_dir, name, i).read_bytes()).hexdigest())
    assert len(faces) <= len(acknowledged) + 2  # at most the two requests in flight went in unacknowledged

    with faceprint_server_process(db) as (url, _), httpx.Client(base_url=url, headers=auth, timeout=60) as c:
        for name, i, fid in acknowledged:  # the restarted server's index, built from the database, has them all
            found, distance = _identify(c, lfw_dir, name, i, largest=True)  # the very face enrolled
            assert found == name and distance < 0.01, (name, i, found, distance)
        # the killed server's transaction (and its write lock) went with its connection: writing works
        rest = [(n, i) for n, i in stream if (n, i) not in {(a, b) for a, b, _ in acknowledged}
                and hashlib.sha256(lfw_image(lfw_dir, n, i).read_bytes()).hexdigest() not in
                {sha for _, sha in faces.values()}]
        name, i = rest[0]
        r = c.post(f"/v1/people/{name}/faces", files=_photo(lfw_dir, name, i, "images"))
        assert r.status_code == 201, r.text
    assert len(_consistent(db)) == len(faces) + 1
