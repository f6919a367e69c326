"""The gallery on real LFW faces: enrol, identify, persistence, concurrency, crash safety."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faceprint import Gallery, zoo
from faceprint.errors import GalleryError, ModelError, NoFaceError
from faceprint.gallery.store import Removed

from .conftest import lfw_image

FACEPRINT = [sys.executable, "-m", "faceprint"]


def _people(lfw: Path, min_images: int, count: int, skip: int = 0) -> list[str]:
    """``count`` people (alphabetically, after ``skip``) with at least ``min_images`` photos;
    ``min_images=1`` means exactly one photo: people who can only ever be strangers."""
    names = []
    for line in (lfw / "lfw-names.txt").read_text().splitlines():
        name, n = line.split()
        if int(n) >= min_images if min_images > 1 else int(n) == 1:
            names.append(name)
    return names[skip:skip + count]


@pytest.fixture(scope="module")
def known(lfw_dir):
    return _people(lfw_dir, 4, 20)


@pytest.fixture(scope="module")
def strangers(lfw_dir):
    return _people(lfw_dir, 1, 20)  # people with a single photo, never enrolled


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, lfw_dir, known):
    db = tmp_path_factory.mktemp("gallery") / "g.db"
    with Gallery(db) as g:
        for name in known:  # three photos each, as a real enrolment would take
            for i in (1, 2, 3):
                assert g.enroll(name, lfw_image(lfw_dir, name, i)) is not None
    return db


def test_identify_known_people_and_strangers(enrolled, lfw_dir, known, strangers):
    with Gallery(enrolled) as g:
        assert len(g.people()) == 20
        for name in known:
            matches = g.identify(lfw_image(lfw_dir, name, 4))  # held back from enrolment
            subject = min(matches, key=lambda m: _off_centre(m.face.box))
            assert subject.name == name, (name, subject)
        for name in strangers:
            matches = g.identify(lfw_image(lfw_dir, name, 1))
            subject = min(matches, key=lambda m: _off_centre(m.face.box))
            assert subject.name is None, (name, subject)
            assert subject.distance > g.threshold


def test_the_threshold_follows_the_gallery_size(enrolled):
    """60 faces: FAR 1e-4 per comparison already names under 1% of strangers, so the default stays
    there; an explicit --fpir sets it from the size, and --threshold overrides both."""
    with Gallery(enrolled, readonly=True) as g:
        default, embedder = g.threshold, g.pipeline.embedder
        assert default == zoo.get(embedder.name).identify_threshold
    with Gallery(enrolled, readonly=True, fpir=0.01) as g:
        assert g.threshold == embedder.open_set_threshold(60, 0.01) > default
    with Gallery(enrolled, readonly=True, fpir=1e-4) as g:
        assert g.threshold < default
    with Gallery(enrolled, readonly=True, fpir=1e-4, threshold=0.3) as g:
        assert g.threshold == 0.3


def _off_centre(box):
    return ((box[0] + box[2]) / 2 - 125) ** 2 + ((box[1] + box[3]) / 2 - 125) ** 2


def test_reenrolling_the_same_photo_is_a_no_op(enrolled, lfw_dir, known):
    with Gallery(enrolled) as g:
        before = {p["name"]: p["faces"] for p in g.people()}
        assert set(before.values()) == {3}
        assert g.enroll(known[0], lfw_image(lfw_dir, known[0], 1)) is None
        assert {p["name"]: p["faces"] for p in g.people()} == before


def test_rename_remove_and_errors(tmp_path, lfw_dir, known, astronaut):
    with Gallery(tmp_path / "g.db") as g:
        g.enroll("Eileen", astronaut)
        g.enroll(known[0], lfw_image(lfw_dir, known[0], 1))
        g.rename("Eileen", "Eileen Collins")
        assert [p["name"] for p in g.people()] == sorted(["Eileen Collins", known[0]])
        with pytest.raises(GalleryError, match="already exists"):
            g.rename("Eileen Collins", known[0])
        assert g.remove("Eileen Collins") == Removed(faces=1, embeddings=1, images=1)
        with pytest.raises(GalleryError, match="no person"):
            g.remove("Eileen Collins")
        [m] = [m for m in g.identify(astronaut)]
        assert m.name is None  # her faces went with her
        with pytest.raises(NoFaceError):
            g.enroll("Nobody", astronaut[:40, :40] * 0)
        with pytest.raises(GalleryError, match="empty"):
            g.enroll("  ", astronaut)


def test_embedders_are_never_mixed_and_reindex_switches(tmp_path, lfw_dir, known):
    db = tmp_path / "g.db"
    with Gallery(db, embedder="mobilefacenet") as g:
        g.enroll(known[0], lfw_image(lfw_dir, known[0], 1))
        g.enroll(known[1], lfw_image(lfw_dir, known[1], 1))
    with pytest.raises(GalleryError, match="reindex"):
        Gallery(db, embedder="dlib-resnet")
    with Gallery(db) as g:
        with pytest.raises(ModelError, match="unknown embedder"):
            g.reindex("no-such-model")
        assert g.store.get_meta("embedder") == "mobilefacenet"  # nothing written
        assert g.reindex("dlib-resnet") == 2
    with Gallery(db) as g:  # the gallery now opens with the new embedder by itself
        assert g.pipeline.embedder.name == "dlib-resnet"
        m = min(g.identify(lfw_image(lfw_dir, known[1], 2)), key=lambda m: _off_centre(m.face.box))
        assert m.name == known[1]
        g.remove(known[0])
        g.remove(known[1])
    with Gallery(db, embedder="facenet") as g:  # emptied, it may start over with another model
        g.enroll(known[0], lfw_image(lfw_dir, known[0], 1))
        assert g.store.get_meta("embedder") == "facenet"


def test_a_running_gallery_follows_a_reindex_made_elsewhere(tmp_path, lfw_dir, known):
    db = tmp_path / "g.db"
    with Gallery(db, embedder="mobilefacenet") as running:
        running.enroll(known[0], lfw_image(lfw_dir, known[0], 1))
        assert [m.name for m in running.identify(lfw_image(lfw_dir, known[0], 2))] == [known[0]]
        with Gallery(db) as other:  # e.g. `faceprint reindex` while a server runs
            other.reindex("dlib-resnet")
        # the running one now embeds with dlib-resnet too: it still names people, and still enrols
        assert [m.name for m in running.identify(lfw_image(lfw_dir, known[0], 2))] == [known[0]]
        assert running.enroll(known[1], lfw_image(lfw_dir, known[1], 1)) is not None
        assert running.pipeline.embedder.name == "dlib-resnet"


def _layout(root: Path, lfw: Path, names: list[str], per_person: int) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(1, per_person + 1):
            shutil.copy(lfw_image(lfw, name, i), root / name)
    return root


def test_persists_across_processes(tmp_path, lfw_dir, known):
    db = tmp_path / "g.db"
    _layout(tmp_path / "people", lfw_dir, known[:3], 1)
    subprocess.run(FACEPRINT + ["enroll", str(tmp_path / "people"), "--db", str(db)], check=True)
    out = subprocess.run(FACEPRINT + ["people", "list", "--db", str(db), "--json"], check=True,
                         capture_output=True, text=True).stdout
    assert sorted(p["name"] for p in __import__("json").loads(out)) == sorted(known[:3])


def test_concurrent_enrolment_loses_nothing(tmp_path, lfw_dir):
    people = _people(lfw_dir, 2, 8, skip=40)
    a = _layout(tmp_path / "a", lfw_dir, people[:4], 2)
    b = _layout(tmp_path / "b", lfw_dir, people[4:], 2)
    db = tmp_path / "g.db"
    procs = [subprocess.Popen(FACEPRINT + ["enroll", str(d), "--db", str(db)]) for d in (a, b)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with Gallery(db) as g:
        assert {p["name"]: p["faces"] for p in g.people()} == {n: 2 for n in people}


def test_kill_9_mid_enrolment_keeps_every_finished_face(tmp_path, lfw_dir):
    people = _people(lfw_dir, 4, 10, skip=60)
    root = _layout(tmp_path / "people", lfw_dir, people, 4)
    db = tmp_path / "g.db"
    proc = subprocess.Popen(FACEPRINT + ["enroll", str(root), "--db", str(db)], start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once some faces are stored, well before the 40 are done
        time.sleep(0.2)
        if db.exists() and _count(db) >= 5:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _count(db)
    assert 5 <= stored < 40
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # every stored face has its embedding: nothing half-written
    assert con.execute("SELECT COUNT(*) FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id"
                       " WHERE e.face_id IS NULL").fetchone()[0] == 0
    stored_faces = con.execute("SELECT p.name, f.source FROM faces f JOIN people p ON p.id = f.person_id").fetchall()
    con.close()
    # the search index (saved only at a clean exit) is rebuilt or caught up: every stored face is found
    with Gallery(db) as g:
        for name, source in stored_faces:
            assert [m.name for m in g.identify(source)] == [name]
    # running again finishes the job without duplicating what was there
    subprocess.run(FACEPRINT + ["enroll", str(root), "--db", str(db)], check=True)
    assert _count(db) == 40


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a faceprint gallery"):
        Gallery(bad)


def _open_and_write(args):
    db, start, i = args
    from faceprint.gallery.store import open_store

    while time.time() < start:  # every process opens the new database at the same moment
        pass
    store = open_store(db)
    with store.write():
        store.set_meta(f"writer-{i}", "ok")
    store.close()
    return i


def test_many_processes_creating_one_gallery_at_once(tmp_path):
    import multiprocessing

    db = tmp_path / "new.db"
    start = time.time() + 2.0
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        assert sorted(pool.map(_open_and_write, [(db, start, i) for i in range(8)])) == list(range(8))
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'writer-%'").fetchone()[0] == 8
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
