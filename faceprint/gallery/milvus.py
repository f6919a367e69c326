"""Vectors in Milvus: the gallery's search index in a Milvus collection instead of in memory.

For galleries too large for one machine's memory. The database (SQLite or PostgreSQL) stays the
truth for people, faces and embeddings; Milvus holds a copy of the embeddings that follows the
database's change log, exactly as the in-memory ``FaceIndex`` does (``vectors.py``), so a
removed face is never named even if Milvus still held it. ``Gallery(..., vectors=URI)`` uses it.

``URI`` is either a Milvus Lite folder (a path ending in ``.db``, optionally ``milvus:///abs/path.db``:
embedded, one process at a time) or a Milvus server (``http://host:19530[/database]``, ``https://``;
the token, ``user:password`` or an API key, comes from ``$MILVUS_TOKEN``). ``?index=FLAT|HNSW|AUTOINDEX``
picks the vector index (default: FLAT, exact, on Lite; HNSW on a server).

One collection per gallery and embedder, ``faceprint_<gallery id>_<embedder>_<hash>``: int64 face ids and
float vectors, COSINE metric (scores become cosine distances, ``1 - similarity``, so thresholds are the
same as in memory). How far each collection has followed the log (gallery id, embedder, last change
applied) is kept in Milvus itself, in the small collection ``faceprint_stamps``, so a restarted process
catches up from the log instead of uploading everything again. Every process catches up before it
searches, while holding the database's write lock: catch-ups of several processes (server workers,
hosts) never interleave, and Milvus sees one writer at a time. A stamp from a foreign or later state of
the database, a reset (``reindex``) or a count that disagrees with the database starts a rebuild: every
embedding is upserted (outside the lock, so enrolments go on), then under the lock the log is replayed
from where the upload began and ids the database no longer has are deleted; the rebuilder claims it in
the stamp, so other processes wait instead of uploading too. Searches use Strong consistency, so a
vector written before the search is found. docs/server-milvus.md has the whole story and measurements.

Milvus stores the vectors in the clear: faceprint refuses Milvus on an encrypted gallery
(``FACEPRINT_ENCRYPTION_KEY``) rather than quietly copy its embeddings out unencrypted.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from ..errors import GalleryError
from ..matching import unit_rows
from .crypto import KEY_ENV
from .store import Store
from .vectors import Vectors, has_reset, replay

log = logging.getLogger(__name__)

TOKEN_ENV = "MILVUS_TOKEN"
#: The collection holding every faceprint collection's stamp (how far it has followed its log).
STAMPS = "faceprint_stamps"
#: Rows per upsert, per page read from the database, per id listing.
BATCH = 1000
#: Milvus Lite searches rows not yet flushed to a segment row by row in Python (5,000 unflushed
#: 512-d rows: 400 ms a search; flushed: 20 ms): flush once this many rows are written.
LITE_FLUSH_ROWS = 256
#: Seconds after which a rebuild's claim (renewed as it uploads) is taken for a crashed process's.
BUILD_STALE = 60
#: HNSW degree, build depth, search depth (server default): denser and deeper than Milvus' usual M=16, since
#: face embeddings are a hard case for graphs (faceprint.index); not yet measured on a Milvus cluster.
HNSW_PARAMS, HNSW_EF = {"M": 32, "efConstruction": 128}, 128
INDEX_TYPES = ("FLAT", "HNSW", "AUTOINDEX")

_lite_lock = threading.Lock()
_lite_users: dict[str, list] = {}  # Milvus Lite folder -> [open MilvusVectors, started by us]


def parse_uri(uri: str) -> tuple[str, Path | None, str | None]:
    """``(address for pymilvus, Milvus Lite folder or None, index type or None)``."""
    target, _, query = str(uri).partition("?")
    uri = _redact(uri)
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    if set(options) - {"index"}:
        raise GalleryError(f"--vectors {uri}: unknown option(s) {', '.join(sorted(set(options) - {'index'}))}")
    index = options.get("index", "").upper() or None
    if index is not None and index not in INDEX_TYPES:
        raise GalleryError(f"--vectors {uri}: index must be one of {', '.join(INDEX_TYPES)}")
    if target.startswith("milvus://"):
        target = target[len("milvus://"):]
    if target.startswith(("http://", "https://", "tcp://", "unix:")):
        return target, None, index
    if target.endswith(".db"):
        path = Path(target).expanduser().resolve()
        return str(path), path, index
    raise GalleryError(f"--vectors {uri}: expected a Milvus Lite path ending in .db or a server URL "
                       "(http://host:19530)")


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite folder (usable by one process at a time)."""
    return parse_uri(uri)[1] is not None


def collection_name(gallery_id: str, embedder: str) -> str:
    """``faceprint_<gallery id>_<embedder>``, in the letters Milvus allows; a hash keeps names unique."""
    slug = re.sub(r"[^0-9A-Za-z]+", "_", embedder).strip("_")[:64]
    return f"faceprint_{gallery_id}_{slug}_{hashlib.sha256(embedder.encode()).hexdigest()[:8]}"


class MilvusVectors(Vectors):
    """A gallery's index in Milvus: a connection, and the ``MilvusIndex`` of the gallery's embedder."""

    def __init__(self, uri: str, store: Store) -> None:
        super().__init__()
        if store.sealed:
            raise GalleryError(
                f"{KEY_ENV} is set, but Milvus would hold this gallery's embeddings unencrypted: "
                f"faceprint cannot encrypt vectors it searches in Milvus. Drop --vectors (the in-memory "
                f"index keeps them in memory only), or unset {KEY_ENV} and rely on Milvus' own storage encryption")
        target, self.lite, index = parse_uri(uri)
        self.uri = _redact(uri)  # printable
        self.gallery_id = store.get_meta("gallery_id")
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise GalleryError("vectors in Milvus need pymilvus (and milvus-lite for a .db path): "
                               "pip install 'faceprint[milvus]'") from None
        if self.lite:
            self._open_lite()
        try:
            self.client = MilvusClient(target, **({} if self.lite else {"token": os.environ.get(TOKEN_ENV, "")}))
        except Exception as e:  # noqa: BLE001 - pymilvus raises its own hierarchy, grpc its own
            if self.lite:
                self._close_lite()
            raise GalleryError(f"--vectors {self.uri}: cannot connect to Milvus: {_message(e)}") from None
        try:  # Milvus Lite behind `milvus-lite server` too: it needs the same care as an embedded one
            self.lite_engine = bool(self.lite) or str(self.client.get_server_version()).startswith("milvus_lite")
        except Exception as e:  # noqa: BLE001 - the first call that reaches the server: unreachable, bad token
            self.close()
            raise GalleryError(f"--vectors {self.uri}: cannot reach Milvus: {_message(e)}") from None
        self.index_type = index or ("FLAT" if self.lite_engine else "HNSW")  # Lite's HNSW is no faster

    def _follow(self, store: Store, embedder: str, dims: Callable[[], int]) -> MilvusIndex:
        index = self._index if self._index is not None else MilvusIndex(self, embedder, dims())
        index.follow(store)
        return index

    def synced(self, store: Store, embedder: str, dims: Callable[[], int]) -> MilvusIndex:
        return self._once_more(lambda: super(MilvusVectors, self).synced(store, embedder, dims))

    def search(self, store: Store, embedder: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Milvus serves concurrent searches: no lock is held over the round trip."""
        synced = super().synced  # not self.synced: the whole call is tried once more, not each half
        return self._once_more(lambda: synced(store, embedder, lambda: queries.shape[1]).search(queries, k))

    def _once_more(self, call: Callable):
        """``call()``, and once more if Milvus refused it, after making sure the collections are there and
        loaded (a restarted server may not have loaded them yet). Refused again (the server down): a
        GalleryError naming the Milvus, so the caller gets no answer rather than one from an index behind
        the database. Nothing is lost: the stamp stays behind the log, and the next search catches up."""
        from pymilvus.exceptions import MilvusException

        try:
            try:
                return call()
            except MilvusException as e:
                log.info("--vectors %s: %s; making sure the collections are loaded and trying again",
                         self.uri, _message(e))
                if self._index is not None:
                    self._index.recheck()
                return call()
        except MilvusException as e:
            raise GalleryError(f"--vectors {self.uri}: Milvus failed: {_message(e)}") from e

    def forget(self, store: Store, embedder: str, dims: Callable[[], int]) -> None:
        """Erase a removed person's vectors from Milvus now, not at the next search."""
        try:
            self.synced(store, embedder, dims)
        except Exception as e:  # noqa: BLE001 - Milvus unreachable: gone from the database, the next search catches up
            log.warning("--vectors %s: could not erase removed faces from Milvus yet (%s); the next search will",
                        self.uri, _message(e))

    def close(self) -> None:
        if self.client is None:
            return
        self.client.close()
        self.client = None
        if self.lite:
            self._close_lite()

    # -- Milvus Lite: one process per folder ----------------------------------------------------------
    def _open_lite(self) -> None:
        key = str(self.lite)
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            raise GalleryError(f"--vectors {self.uri}: Milvus Lite is not installed: pip install milvus-lite") from None
        with _lite_lock:
            if key not in _lite_users:
                # pymilvus runs one Lite server per folder and process; someone here may have started it
                started = key in getattr(server_manager_instance, "_servers", {})
                if not started and _locked_elsewhere(self.lite):
                    raise GalleryError(
                        f"--vectors {self.uri}: another process has this Milvus Lite folder open (Milvus Lite "
                        f"allows one process per folder). For several processes, serve it: `milvus-lite server "
                        f"--data-dir {self.lite} --port 19530`, and use --vectors http://127.0.0.1:19530")
                self.lite.parent.mkdir(parents=True, exist_ok=True)
                # started here, under our lock: milvus-lite's own start races when threads open a folder at once
                if not started and server_manager_instance.start_and_get_uri(key) is None:
                    raise GalleryError(f"--vectors {self.uri}: Milvus Lite could not open {self.lite}")
                _lite_users[key] = [0, not started]  # users, whether to stop the server after the last
            _lite_users[key][0] += 1

    def _close_lite(self) -> None:
        key = str(self.lite)
        with _lite_lock:
            _lite_users[key][0] -= 1
            if _lite_users[key][0]:
                return
            ours = _lite_users.pop(key)[1]
            if ours:  # stop it, releasing its lock, so another process may open the folder
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(key)


class MilvusIndex:
    """A Milvus collection with ``FaceIndex``'s interface: ``add``, ``remove``, ``search``, ``len``."""

    upserts = True

    def __init__(self, conn: MilvusVectors, embedder: str, dims: int) -> None:
        self.conn = conn
        self.embedder = embedder
        self.dims = int(dims)
        self.name = collection_name(conn.gallery_id, embedder)
        self._ready = False
        self._unflushed = 0
        self._store: Store | None = None  # the database last followed, to rebuild from if the collection vanishes

    @property
    def client(self):
        return self.conn.client

    def __len__(self) -> int:
        """Milvus' ``count(*)``: fast, but it may count a row upserted twice twice until segments are
        compacted (milvus-lite#249), so a count above the database's is checked with ``held``."""
        self._ensure()
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def held(self, expected: int) -> int:
        """How many faces the collection holds: ``len``, or where that is not ``expected``, the ids listed
        (a query's rows are deduplicated; count(*)'s may not be)."""
        count = len(self)
        return count if count == expected else sum(len(batch) for batch in self._all_ids())

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert: adding a key twice leaves one copy, with the last vector."""
        self._ensure()
        keys = np.asarray(keys, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(keys), self.dims)
        for start in range(0, len(keys), BATCH):
            self.client.upsert(self.name, [{"id": int(k), "vector": v}
                                           for k, v in zip(keys[start:start + BATCH], vectors[start:start + BATCH])])
        self._unflushed += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        """Delete; keys not present are ignored."""
        self._ensure()
        keys = [int(k) for k in np.asarray(keys, np.int64).reshape(-1)]
        for start in range(0, len(keys), BATCH):
            self.client.delete(self.name, ids=keys[start:start + BATCH])
        self._unflushed += len(keys)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, cosine distances)``, each ``(Q, k)``, nearest first; -1 and inf where there are fewer than k."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        queries = unit_rows(queries)
        keys = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        if len(queries) == 0:
            return keys, dist
        params = {"metric_type": "COSINE"}
        if self.conn.index_type == "HNSW":
            params["params"] = {"ef": max(HNSW_EF, k)}
        for start in range(0, len(queries), BATCH):
            try:
                found = self._search(queries[start:start + BATCH], k, params)
            except Exception as e:  # noqa: BLE001 - released (Lite restarted) or dropped (a reindex elsewhere, an operator)
                log.info("%s: search failed (%s); making sure the collection is there and trying again",
                         self.name, _message(e))
                self.recheck()
                if self._ensure() and self._store is not None:
                    self.follow(self._store)  # made anew, empty: fill it before answering
                found = self._search(queries[start:start + BATCH], k, params)
            for i, hits in enumerate(found, start):
                n = min(k, len(hits))
                keys[i, :n] = [h["id"] for h in hits[:n]]
                dist[i, :n] = np.clip(1.0 - np.array([h["distance"] for h in hits[:n]], np.float32), 0.0, 2.0)
        return keys, dist

    def _search(self, queries: np.ndarray, k: int, params: dict) -> list:
        self._ensure()
        return self.client.search(self.name, data=list(queries), limit=k, anns_field="vector", output_fields=["id"],
                                  search_params=params, consistency_level="Strong")

    # -- following the database ---------------------------------------------------------------------
    def stamp(self) -> dict | None:
        """How far this collection has followed its log: ``{"gallery", "embedder", "seq", "building"}``, or None."""
        self._ensure()
        fields = ["gallery", "embedder", "seq", "building"]
        rows = self.client.query(STAMPS, filter=f'collection == "{self.name}"', output_fields=fields,
                                 consistency_level="Strong")
        return {k: rows[0][k] for k in fields} if rows else None

    def _set_stamp(self, seq: int, building: bool = False) -> None:
        """``building``: a rebuild is under way (the time, so a crashed rebuilder's claim goes stale)."""
        self.client.upsert(STAMPS, [{"collection": self.name, "gallery": self.conn.gallery_id,
                                     "embedder": self.embedder, "seq": int(seq),
                                     "building": int(time.time()) if building else 0, "v": [1.0, 0.0]}])

    def follow(self, store: Store) -> None:
        """Apply every change committed since the stamp, or rebuild when that cannot be trusted.

        Under the database's write lock, so processes catch up one at a time and the log cannot move
        meanwhile. A process that finds another one rebuilding waits for it instead of uploading too.
        """
        self._store = store
        while True:
            with store.write():
                self._ensure()
                last = store.last_change()
                stamp = self.stamp()
                if stamp is not None and stamp["building"] and time.time() - stamp["building"] < BUILD_STALE:
                    pass  # another process is rebuilding: wait for it (outside the lock)
                else:
                    # a foreign stamp, or one from a later state of the database (a backup restored): rebuild
                    if (stamp is not None and not stamp["building"] and stamp["gallery"] == self.conn.gallery_id
                            and stamp["embedder"] == self.embedder and stamp["seq"] <= last):
                        changes = store.changes_since(stamp["seq"])
                        if not has_reset(changes):
                            if changes:
                                replay(self, store, self.embedder, changes, BATCH)
                                self._set_stamp(last)
                                self._flush(always=False)
                            want = store.count_embeddings(self.embedder)
                            held = self.held(want)
                            if held == want:
                                return
                            log.warning("%s holds %d faces where the database has %d: rebuilding it",
                                        self.name, held, want)
                            why = "its count disagrees with the database's"
                        else:
                            why = "the gallery was re-embedded"
                    else:
                        why = ("it has no stamp" if stamp is None else "a rebuild elsewhere stopped midway"
                               if stamp["building"] else "its stamp is from another database or a later state of it")
                    log.info("%s: rebuilding from the database: %s", self.name, why)
                    self._set_stamp(0, building=True)  # claimed: others wait
                    break
            time.sleep(0.2)
        try:
            self._rebuild(store)
        except BaseException:
            try:
                self._set_stamp(0)  # untrusted, but no longer claimed: the next follow rebuilds at once
            except Exception as e:  # noqa: BLE001 - Milvus unreachable: the claim goes stale after BUILD_STALE
                log.warning("%s: could not release the rebuild claim (%s); it goes stale in %d s",
                            self.name, _message(e), BUILD_STALE)
            raise

    def _rebuild(self, store: Store, attempts: int = 3) -> None:
        """Every embedding upserted (outside the lock), then, under it, the log replayed from where the
        upload began and ids the database no longer has deleted. Correct whatever ran meanwhile: anything
        the upload read was current when read, and every change since its start is applied after it."""
        for _ in range(attempts):
            start = store.last_change()
            after, beat = -1, time.monotonic()
            while True:
                # pages, so a gallery larger than memory never sits in memory whole
                ids, vectors = store.embeddings(self.embedder, after, limit=BATCH)
                if not len(ids):
                    break
                self.add(ids, vectors)
                after = int(ids[-1])
                if time.monotonic() - beat > BUILD_STALE / 4:  # still at it: keep the claim fresh
                    self._set_stamp(0, building=True)
                    beat = time.monotonic()
            with store.write():
                changes = store.changes_since(start)
                if has_reset(changes):
                    continue  # re-embedded during the upload: upload again
                if changes:
                    replay(self, store, self.embedder, changes, BATCH)
                if len(self) != store.count_embeddings(self.embedder):  # strays, or a miscount: the listing tells
                    self._delete_strays(store)
                if store.get_meta("embedder") == self.embedder:
                    self._drop_other_embedders()
                self._set_stamp(store.last_change())
                self._flush(always=True)
                return
        raise GalleryError("the gallery was re-embedded again and again while its Milvus index was rebuilt; retry")

    def _delete_strays(self, store: Store) -> None:
        """Delete the ids Milvus holds that the database does not (inside the caller's write lock)."""
        stray = []
        for batch in self._all_ids():
            have = set(store.vectors_of(self.embedder, batch)[0].tolist())
            stray += [i for i in batch if i not in have]
        if stray:
            self.remove(np.array(stray, np.int64))

    def _all_ids(self):
        """Every id in the collection, in batches."""
        if self.conn.lite_engine:  # no limit needed, and Lite lacks the timestamp call pymilvus' iterator makes
            rows = self.client.query(self.name, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
            ids = [int(row["id"]) for row in rows]
            yield from (ids[i:i + BATCH] for i in range(0, len(ids), BATCH))
            return
        it = self.client.query_iterator(self.name, batch_size=BATCH, filter="id >= 0", output_fields=["id"],
                                        consistency_level="Strong")
        try:
            while batch := it.next():
                yield [int(row["id"]) for row in batch]
        finally:
            it.close()

    def _drop_other_embedders(self) -> None:
        """After a reindex: the old embedder's vectors go (the database erased them too)."""
        prefix = f"faceprint_{self.conn.gallery_id}_"
        for name in self.client.list_collections():
            if name.startswith(prefix) and name != self.name:
                self.client.drop_collection(name)
                self.client.delete(STAMPS, filter=f'collection == "{name}"')

    # -- Milvus housekeeping --------------------------------------------------------------------------
    def recheck(self) -> None:
        """Make sure, before the next call, that the collections are there and loaded (a server that
        restarted may have neither)."""
        self._ready = False

    def _ensure(self) -> bool:
        """The collections exist and are loaded (Milvus Lite releases them when its process ends); True if
        the gallery's collection had to be made."""
        if self._ready:
            return False
        from pymilvus import DataType, MilvusClient

        client = self.client
        if not client.has_collection(STAMPS):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("collection", DataType.VARCHAR, is_primary=True, max_length=255)
            schema.add_field("gallery", DataType.VARCHAR, max_length=64)
            schema.add_field("embedder", DataType.VARCHAR, max_length=1024)
            schema.add_field("seq", DataType.INT64)
            schema.add_field("building", DataType.INT64)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
            self._create(STAMPS, schema, "v", "FLAT", "L2", {})
        if client.has_collection(self.name) and self._dims_of(self.name) != self.dims:
            client.drop_collection(self.name)
        made = not client.has_collection(self.name)
        if made:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dims)
            kind = self.conn.index_type
            self._create(self.name, schema, "vector", kind, "COSINE", HNSW_PARAMS if kind == "HNSW" else {})
        from pymilvus.client.types import LoadState

        for name in (STAMPS, self.name):
            if client.get_load_state(name).get("state") != LoadState.Loaded:
                client.load_collection(name)
        self._ready = True
        return made

    def _create(self, name: str, schema, field: str, kind: str, metric: str, params: dict) -> None:
        index = self.client.prepare_index_params()
        index.add_index(field, index_type=kind, metric_type=metric, params=params)
        try:
            self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        except Exception:  # noqa: BLE001 - another process created it first
            if not self.client.has_collection(name):
                raise

    def _dims_of(self, name: str) -> int | None:
        for field in self.client.describe_collection(name)["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        return None

    def _flush(self, always: bool) -> None:
        """Milvus Lite: seal written rows into a segment once there are enough of them (or now, after a
        rebuild). A server seals segments itself; it is asked to only after a rebuild's bulk upload, so
        that it indexes them, and not waited for (that takes seconds): it indexes in the background."""
        if always or (self.conn.lite_engine and self._unflushed >= LITE_FLUSH_ROWS):
            if self.conn.lite_engine:
                self.client.flush(self.name)
                self.client.flush(STAMPS)
            else:
                self.client.flush(self.name, _async=True)
            self._unflushed = 0


def _locked_elsewhere(folder: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on ``folder``."""
    lock = folder / "LOCK"
    if not lock.is_file():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _redact(uri: str) -> str:
    """The URI without a password in it, for messages (the token belongs in $MILVUS_TOKEN)."""
    return re.sub(r"//[^/@]*@", "//***@", str(uri))


def _message(e: Exception) -> str:
    return getattr(e, "message", None) or str(e).strip().splitlines()[0]
