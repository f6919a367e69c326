"""Embed a photo library once into Parquet: every face of every photo, resumable, on processes or Ray.

A run writes a dataset folder (``faces.parquet/``)::

    manifest.json              schema, detector, embedder, their fingerprints, vector size
    faces/part-00000.parquet   one row per face (``face_schema``)
    photos/part-00000.parquet  one row per photo of the same batch (``PHOTO_SCHEMA``)

Each batch of photos becomes one numbered pair of parts, each written to a temporary name, synced
and renamed; the photos part goes last and is the batch's commit record. On a re-run, a faces part
without its photos part is the batch that was in flight when a run died and is deleted, and every
photo recorded in ``photos/`` with the same size and mtime is skipped: photos without a face and
photos that failed too (those are retried only when asked). So a crash loses at most the batches in
flight, and no face is ever stored twice. ``faces/`` alone is a plain Parquet dataset that pandas,
DuckDB or Spark read as is; ``read_faces`` also drops the stale rows of a photo edited and re-embedded.

Only one process writes: the local engine's worker processes and Ray's actors return batches to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_file, atomic_write
from .errors import FaceprintError
from .imageio import load_image
from .pipeline import get_pipeline
from .runtime import process_map

log = logging.getLogger("faceprint.batch")

SCHEMA = "faceprint.faces/1"
MANIFEST = "manifest.json"
ENGINES = ("local", "ray")
#: Photos per batch (one pair of parts): what a crash may lose, and the Parquet row groups' grain.
BATCH_SIZE = 256
OK, NO_FACE, FAILED = "ok", "no_face", "failed"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FaceprintError("Parquet output needs pyarrow: pip install 'faceprint[batch]'") from None
    return pa, pq


def photo_schema():
    pa, _ = _pa()
    return pa.schema([
        ("path", pa.string()), ("sha256", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
        ("width", pa.int32()), ("height", pa.int32()), ("status", pa.string()), ("faces", pa.int32()),
        ("error", pa.string()),
    ])


def face_schema(dims: int):
    """A face: its photo (path and content hash), where it is, how sure, which models, the vector."""
    pa, _ = _pa()
    return pa.schema([
        ("path", pa.string()), ("sha256", pa.string()), ("face", pa.int32()),
        ("box", pa.list_(pa.float32(), 4)), ("landmarks", pa.map_(pa.string(), pa.list_(pa.float32(), 2))),
        ("score", pa.float32()), ("detector", pa.string()), ("embedder", pa.string()),
        ("vector", pa.list_(pa.float32(), dims)),
    ])


@dataclass(frozen=True)
class Photo:
    """A file to embed, as found by ``stat``: what a re-run compares to skip it."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> Photo:
        p = Path(path).absolute()
        try:
            st = p.stat()
        except OSError as e:
            raise FaceprintError(f"{p}: cannot read: {e.strerror or e}") from None
        return cls(str(p), st.st_size, st.st_mtime_ns)


@dataclass
class Summary:
    photos: int = 0
    skipped: int = 0
    embedded: int = 0
    faces: int = 0
    no_face: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "failed": [{"path": p, "error": e} for p, e in self.failed]}


def embed_batch(detector: str, embedder: str, photos: list[Photo]) -> tuple[bytes, bytes]:
    """Every face of each photo: the photos and faces tables of one batch, as Arrow IPC bytes.

    Bytes, so the same result crosses a process pool or Ray unchanged. A photo that cannot be read
    or decoded is recorded as failed with the reason; anything else that goes wrong is a bug and
    raises (the batch is lost, nothing is written, a re-run does it again).
    """
    pa, _ = _pa()
    pipe = get_pipeline(detector, embedder)
    rows, faces = [], []
    for photo in photos:
        row = {"path": photo.path, "size": photo.size, "mtime_ns": photo.mtime_ns, "sha256": None,
               "width": None, "height": None, "faces": 0, "error": None}
        try:
            data = Path(photo.path).read_bytes()
            row["sha256"] = hashlib.sha256(data).hexdigest()
            image = load_image(data, name=photo.path)
            row["height"], row["width"] = image.shape[:2]
            found = pipe.embed(image)
        except OSError as e:
            rows.append({**row, "status": FAILED, "error": f"cannot read: {e.strerror or e}"})
            continue
        except FaceprintError as e:
            rows.append({**row, "status": FAILED, "error": _strip(str(e), photo.path)})
            continue
        rows.append({**row, "status": OK if found else NO_FACE, "faces": len(found)})
        faces += [{"path": photo.path, "sha256": row["sha256"], "face": i, "box": list(e.face.box),
                   "landmarks": [(k, list(v)) for k, v in e.face.landmarks.items()], "score": e.face.score,
                   "detector": detector, "embedder": embedder, "vector": e.vector}
                  for i, e in enumerate(found)]
    return (_ipc(pa.Table.from_pylist(rows, photo_schema())),
            _ipc(pa.Table.from_pylist(faces, face_schema(pipe.embedder.dims))))


def _embed_job(args: tuple[str, str, list[Photo]]) -> tuple[bytes, bytes]:
    return embed_batch(*args)


def _strip(message: str, path: str) -> str:
    return message[len(path) + 2:] if message.startswith(f"{path}: ") else message


def _ipc(table) -> bytes:
    pa, _ = _pa()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(data: bytes):
    pa, _ = _pa()
    return pa.ipc.open_stream(data).read_all()


class FaceDataset:
    """A dataset folder being written: one writer at a time (a lock), parts numbered in order."""

    def __init__(self, root: str | os.PathLike, detector: str, embedder: str):
        self.root = Path(root)
        self.faces_dir, self.photos_dir = self.root / "faces", self.root / "photos"
        if self.root.exists() and not self.root.is_dir():
            raise FaceprintError(f"{self.root}: exists and is not a dataset folder")
        pipe = get_pipeline(detector, embedder)
        self.manifest = {"schema": SCHEMA, "detector": detector, "embedder": embedder,
                         "dims": pipe.embedder.dims, "fingerprints": {"detector": pipe.detector.fingerprint,
                                                               "embedder": pipe.embedder.fingerprint}}
        self._lock = None

    def __enter__(self) -> FaceDataset:
        import fcntl  # POSIX; imported here so that importing faceprint.cli needs no fcntl

        self.faces_dir.mkdir(parents=True, exist_ok=True)
        self.photos_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise FaceprintError(f"{self.root}: another run is writing here") from None
        manifest = self.root / MANIFEST
        if manifest.is_file():
            found = read_manifest(self.root)
            if {k: found.get(k) for k in self.manifest} != self.manifest:
                raise FaceprintError(f"{self.root}: made with {found.get('detector')} + {found.get('embedder')} "
                                     f"(other models or versions); write to another folder")
        else:
            atomic_write(manifest, (json.dumps(self.manifest, indent=2) + "\n").encode())
        for stale in [*self.root.glob("*.tmp"), *self.root.glob("*/*.tmp"), *self._orphans()]:
            log.info("removing %s, left by a run that stopped mid-batch", stale)
            stale.unlink()
        numbers = [_number(p) for p in self.photos_dir.glob("part-*.parquet")]
        self.next_part = max(numbers, default=-1) + 1
        return self

    def __exit__(self, *exc) -> None:
        self._lock.close()

    def _orphans(self) -> list[Path]:
        return [p for p in self.faces_dir.glob("part-*.parquet") if not (self.photos_dir / p.name).exists()]

    def pending(self, photos: list[Photo], retry_failed: bool = False) -> list[Photo]:
        """The photos not yet done: new, changed since (size or mtime), or failed when ``retry_failed``."""
        done = {}
        for row in read_photos(self.root).select(["path", "size", "mtime_ns", "status"]).to_pylist():
            done[row["path"]] = row
        todo = []
        for p in photos:
            d = done.get(p.path)
            if d is None or (d["size"], d["mtime_ns"]) != (p.size, p.mtime_ns) or (retry_failed and d["status"] == FAILED):
                todo.append(p)
        return todo

    def write(self, photos_ipc: bytes, faces_ipc: bytes):
        """Commit one batch: its faces part, then its photos part (the commit record). Returns the photos."""
        _, pq = _pa()
        photos, faces = _from_ipc(photos_ipc), _from_ipc(faces_ipc)
        name = f"part-{self.next_part:05d}.parquet"
        for table, folder in ((faces, self.faces_dir), (photos, self.photos_dir)):
            with atomic_file(folder / name) as f:
                pq.write_table(table, f)
        self.next_part += 1
        return photos


def embed_photos(files: Iterable[str | os.PathLike], out: str | os.PathLike, detector: str, embedder: str, *,
                 engine: str = "local", workers: int = 1, batch_size: int | None = None, address: str | None = None,
                 retry_failed: bool = False, on_start: Callable[[int], None] | None = None,
                 on_batch: Callable[[int], None] | None = None) -> Summary:
    """Embed every face of ``files`` into the dataset folder ``out``, skipping what a previous run did.

    ``batch_size``: photos per batch (default ``BATCH_SIZE``). ``on_start`` gets the number of
    photos to do, ``on_batch`` the size of each batch written.
    """
    batch_size = BATCH_SIZE if batch_size is None else batch_size
    if engine not in ENGINES:
        raise FaceprintError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}")
    if batch_size < 1 or workers < 1:
        raise FaceprintError("--batch-size and --workers must be at least 1")
    if engine == "ray":
        _ray()  # before anything is written
    start = time.perf_counter()
    photos = list(dict.fromkeys(Photo.of(f) for f in files))
    summary = Summary(photos=len(photos))
    with FaceDataset(out, detector, embedder) as dataset:
        todo = dataset.pending(photos, retry_failed)
        summary.skipped = len(photos) - len(todo)
        on_start and on_start(len(todo))
        batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        results = (_ray_map if engine == "ray" else _local_map)(detector, embedder, batches, workers, address)
        for photos_ipc, faces_ipc in results:
            rows = dataset.write(photos_ipc, faces_ipc).to_pylist()
            summary.embedded += len(rows)
            summary.faces += sum(r["faces"] for r in rows)
            summary.no_face += sum(r["status"] == NO_FACE for r in rows)
            summary.failed += [(r["path"], r["error"]) for r in rows if r["status"] == FAILED]
            on_batch and on_batch(len(rows))
    summary.seconds = time.perf_counter() - start
    return summary


def _local_map(detector: str, embedder: str, batches: list[list[Photo]], workers: int, address: str | None
               ) -> Iterator[tuple[bytes, bytes]]:
    if address:
        raise FaceprintError("--address is for --engine ray")
    return process_map(_embed_job, [(detector, embedder, b) for b in batches], workers)


class _RayEmbedder:
    """A Ray actor: loads the models once, then embeds batch after batch of the file list."""

    def __init__(self, detector: str, embedder: str, fingerprints: dict):
        os.environ.setdefault("FACEPRINT_THREADS", "1")  # one CPU per actor, as Ray schedules it
        self.detector, self.embedder = detector, embedder
        pipe = get_pipeline(detector, embedder)
        here = {"detector": pipe.detector.fingerprint, "embedder": pipe.embedder.fingerprint}
        if here != fingerprints:
            raise FaceprintError(f"models on {os.uname().nodename} differ from the driver's: {here} != {fingerprints}")

    def __call__(self, batch: dict) -> dict:
        photos = [Photo(str(p), int(s), int(m)) for p, s, m in zip(batch["path"], batch["size"], batch["mtime_ns"])]
        photos_ipc, faces_ipc = embed_batch(self.detector, self.embedder, photos)
        return {"photos": np.array([photos_ipc], dtype=object), "faces": np.array([faces_ipc], dtype=object)}


def _ray_map(detector: str, embedder: str, batches: list[list[Photo]], workers: int, address: str | None
             ) -> Iterator[tuple[bytes, bytes]]:
    """The batches on Ray Data: the file list as a dataset, an actor pool of embedders mapping batches.

    Ray restarts a lost actor and retries its batch (``max_restarts``/``max_task_retries`` default
    to unlimited for actor pools); only finished batches reach this process, which writes them.
    """
    ray = _ray()
    if not batches:
        return
    pipe = get_pipeline(detector, embedder)
    fingerprints = {"detector": pipe.detector.fingerprint, "embedder": pipe.embedder.fingerprint}
    # Ray prints its nodes' news ("(raylet) ...") on stdout; keep stdout for the caller's output
    with contextlib.redirect_stdout(sys.stderr):
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 include_dashboard=False, configure_logging=False)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            items = [{"path": p.path, "size": p.size, "mtime_ns": p.mtime_ns} for b in batches for p in b]
            ds = ray.data.from_items(items, override_num_blocks=len(batches))
            ds = ds.map_batches(_RayEmbedder, fn_constructor_args=(detector, embedder, fingerprints),
                                batch_size=len(batches[0]), batch_format="numpy", num_cpus=1,
                                compute=ray.data.ActorPoolStrategy(size=workers))
            for row in ds.iter_rows():
                yield row["photos"], row["faces"]
        finally:
            ray.shutdown()


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise FaceprintError("--engine ray needs Ray Data: pip install 'faceprint[ray]'") from None
    return ray


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except OSError as e:
        raise FaceprintError(f"{root}: not a faces dataset (no readable {MANIFEST}: {e.strerror or e})") from None
    except ValueError:
        raise FaceprintError(f"{path}: not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise FaceprintError(f"{root}: not a {SCHEMA} dataset")
    return manifest


def is_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_photos(root: str | os.PathLike):
    """Every committed photo record, the latest for each path (a photo edited and re-embedded)."""
    return _latest(root)[0]


def read_faces(root: str | os.PathLike, columns: list[str] | None = None):
    """Every committed face, each photo's from its latest batch only, in the order written."""
    pa, _ = _pa()
    tables = list(_face_tables(root, columns))
    if not tables:
        schema = face_schema(read_manifest(root)["dims"])
        return schema.empty_table().select(columns) if columns else schema.empty_table()
    return pa.concat_tables(tables)


def _face_tables(root: str | os.PathLike, columns: list[str] | None):
    """``read_faces``'s rows, one part's table at a time."""
    pa, pq = _pa()
    _, latest = _latest(root)
    cols = None if columns is None else list(dict.fromkeys(["path", *columns]))
    for number, part in _committed(Path(root), "faces"):
        table = _read_part(part, cols)
        if latest is not None:
            keep = [latest[p] == number for p in table.column("path").to_pylist()]
            table = table.filter(pa.array(keep, pa.bool_()))
        yield table.select(columns) if columns else table


def load_faces(root: str | os.PathLike) -> tuple[list[dict], np.ndarray, dict]:
    """The faces of a dataset for clustering: ``[{"path", "box"}]``, their vectors (N x dims), the manifest.

    Read a part at a time into one numpy array: a million faces' vectors as one Arrow table and
    then one array held 4 GB at once, and Arrow's allocator kept the pages after (2.2 GB more at
    the clustering's peak).
    """
    _, pq = _pa()
    manifest = read_manifest(root)
    dims = manifest["dims"]
    most = sum(_read_part(part, metadata=True).num_rows for _, part in _committed(Path(root), "faces"))
    X, n, faces = np.empty((most, dims), np.float32), 0, []
    for table in _face_tables(root, ["path", "box", "vector"]):
        rows = len(table)
        X[n:n + rows] = _column_rows(table, "vector", dims)
        faces += [{"path": p, "box": [round(float(v), 1) for v in b]}
                  for p, b in zip(table.column("path").to_pylist(), _column_rows(table, "box", 4))]
        n += rows
    return faces, (X if n == most else X[:n].copy()), manifest


def _column_rows(table, column: str, width: int) -> np.ndarray:
    """A fixed-width list column as a ``(rows, width)`` array."""
    values = table.column(column).combine_chunks().flatten()  # flatten, not values: honours a slice
    return values.to_numpy(zero_copy_only=False).reshape(len(table), width)


def central_vectors(root: str | os.PathLike) -> dict[str, np.ndarray | None]:
    """Each photo's face nearest its centre (None: no face), as ``evaluation.embed_images`` gives them.

    What `faceprint eval` scores on LFW, whose crops are centred on their subject.
    """
    from .lfw import central
    from .types import Face

    table = read_faces(root, ["path", "box", "vector"])
    shapes = {r["path"]: (r["height"], r["width"]) for r in read_photos(root).to_pylist()}
    by_photo: dict[str, list[int]] = {}
    for i, p in enumerate(table.column("path").to_pylist()):
        by_photo.setdefault(p, []).append(i)
    boxes = table.column("box").to_pylist()
    vectors = table.column("vector")
    out: dict[str, np.ndarray | None] = dict.fromkeys(shapes)
    for path, rows in by_photo.items():
        faces = [Face(tuple(boxes[i]), 1.0) for i in rows]
        chosen = rows[faces.index(central(faces, shapes[path]))]
        out[path] = vectors[chosen].values.to_numpy(zero_copy_only=False)
    return out


def _latest(root: str | os.PathLike):
    """All photo records, deduplicated to each path's latest; and path -> its latest part when any repeat."""
    pa, pq = _pa()
    root = Path(root)
    read_manifest(root)
    parts = _committed(root, "photos")
    if not parts:
        return photo_schema().empty_table(), None
    tables = [_read_part(p) for _, p in parts]
    numbers = np.concatenate([np.full(t.num_rows, n) for (n, _), t in zip(parts, tables)])
    photos = pa.concat_tables(tables)
    paths = photos.column("path").to_pylist()
    last = {p: i for i, p in enumerate(paths)}
    if len(last) == len(paths):
        return photos, None
    rows = np.array(sorted(last.values()))
    return photos.take(pa.array(rows)), {p: int(numbers[i]) for p, i in last.items()}


def _read_part(part: Path, columns: list[str] | None = None, *, metadata: bool = False):
    """A committed part's table (or only its footer's metadata); a torn or foreign file is a one-line
    error naming it, not pyarrow's traceback. Nothing is written, so nothing stored is lost."""
    pa, pq = _pa()
    try:
        return pq.read_metadata(part) if metadata else pq.read_table(part, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise FaceprintError(f"{part}: not a readable Parquet part ({e})") from None


def _committed(root: Path, kind: str) -> list[tuple[int, Path]]:
    """Parts of batches whose photos part (the commit record) exists, by number."""
    numbers = sorted(_number(p) for p in (root / "photos").glob("part-*.parquet"))
    return [(n, root / kind / f"part-{n:05d}.parquet") for n in numbers]


def _number(part: Path) -> int:
    return int(part.name.split("-")[1].split(".")[0])
