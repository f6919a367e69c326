"""Throwaway servers for tests: a PostgreSQL cluster in a temporary folder, on loopback only.

Started by the tests themselves (``make setup`` installs PostgreSQL from Debian's packages where
it is missing), so no test needs a server started by hand.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, or Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL server; yields its URL. As root, the server runs as the ``postgres`` user."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (make setup installs it: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="faceprint-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, cwd=root)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "faceprint", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=on -c max_connections=200", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "faceprint", "faceprint")
        yield f"postgresql://faceprint@127.0.0.1:{port}/faceprint"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def faceprint_server(db: str, *args: str, env: dict | None = None, timeout: float = 120.0) -> Iterator[str]:
    """``faceprint serve`` in a subprocess on a free loopback port; yields its base URL.

    Output goes to ``server.log`` beside a SQLite ``db`` (or a temp folder), for failing tests to show.
    """
    import httpx

    port = free_port()
    log_dir = Path(db).parent if "://" not in db else Path(tempfile.mkdtemp(prefix="faceprint-serve-"))
    log = open(log_dir / "server.log", "ab")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "faceprint"), "serve", "--port", str(port),
                             "--db", db, *args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"faceprint serve exited with {proc.returncode}: "
                                   f"{(log_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"faceprint serve did not answer within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
