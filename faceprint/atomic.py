"""Files replaced whole or not at all: written beside their destination and renamed into place, so a
crash or a full disk never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: str | os.PathLike, *, sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``path`` when the block ends without error (and is
    removed if it raises). ``sync``: flushed to disk before the rename, and the rename itself synced
    (the folder), so after a power cut the file is the old one or the new one, never empty, and a
    file taken as a commit record (``faceprint.batch``'s parts) stays. It gets the mode any new
    file would (0666 less the umask), not the private 0600 of a temporary file."""
    path = Path(path)
    fd, tmp = _new_file(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        _sync_folder(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def _sync_folder(folder: Path) -> None:
    with suppress(OSError):  # not every platform or filesystem lets a folder be opened and synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _new_file(folder: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """``mkstemp`` with the mode ``open()`` gives instead of 0600: created with O_EXCL under a random
    name, the kernel applying the umask (no process-wide ``os.umask`` call)."""
    for _ in range(100):
        name = str(folder / f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")
