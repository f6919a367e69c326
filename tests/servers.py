"""Throwaway servers for tests: a PostgreSQL cluster and a Milvus standalone server in temporary
folders, on free loopback ports.

Started by the tests themselves (``make setup`` installs PostgreSQL from Debian's packages where
it is missing, and the ``milvus`` wheel from PyPI), so no test needs a server started by hand.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from platformdirs import user_cache_dir


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


class MilvusServer:
    """Milvus 2.3 standalone as PyPI's ``milvus`` package (2.3.5) ships it: the server binary, with an
    embedded etcd and local storage, its data in a temporary folder.

    The package's own config writer (what its ``milvus-server`` command runs) writes the config with
    every port a free one picked here: the gRPC proxy (the one clients use), the coordinators' and
    nodes' internal ports, the metrics/health port and the embedded etcd's client and peer ports,
    which listen on loopback only (``ETCD_CONFIG_PATH``). Milvus 2.3 has no listen address setting:
    its gRPC ports bind every interface. The binary is run directly rather than through
    ``milvus-server``: that moves a port it cannot bind at once (one in TIME_WAIT after a restart) to
    the next one, so a restarted server would not be where its clients look.

    ``start`` returns at once (startup takes 3-40 s: etcd and the coordinators come up; the first time
    on a machine, the binary is also unpacked into faceprint's cache); ``wait`` blocks until it is
    healthy. ``stop`` (a kill) then ``start`` restarts it on the same data, config and ports."""

    PORTS = ("proxy", "proxy_internal", "etcd", "root_coord", "query_coord", "query_node", "index_coord",
             "index_node", "data_coord", "data_node")
    #: Quicker than the defaults, for tests: Strong reads wait for the next time tick (200 ms by default);
    #: a server killed and started again waits for its old etcd sessions to expire (30 s) before it
    #: loads collections; a new collection is loaded in a few query coordinator rounds (1 s each).
    SETTINGS = {"proxy.timeTickInterval": 50, "common.session.ttl": 10, "queryCoord.checkInterval": 200,
                "queryCoord.distPullInterval": 100}

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="faceprint-milvus-"))
        self.ports = {name: free_port() for name in self.PORTS}
        self.metrics = free_port()
        self.uri = f"http://127.0.0.1:{self.ports['proxy']}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        data = self.root / "data"
        if not data.is_dir():
            self._prepare(data)
        env = {**os.environ, "DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(self.metrics),
               "MILVUS_RUN_DIR": str(data / "run"), "ETCD_CONFIG_PATH": str(self.root / "etcd.yaml"),
               "LD_LIBRARY_PATH": ":".join(filter(None, [str(data / "bin"), os.environ.get("LD_LIBRARY_PATH")]))}
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen([str(data / "bin" / "milvus"), "run", "standalone"], cwd=data, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _prepare(self, data: Path) -> None:
        """The binary unpacked and the config written, as ``milvus-server`` does before it starts one."""
        import milvus

        config = milvus.MilvusServerConfig(data_dir=str(data), **{f"{k}_port": v for k, v in self.ports.items()})
        for key, value in self.SETTINGS.items():
            config.set(key, value)
        config.resolve()  # binds each given port once to check it is free, writes configs/milvus.yaml
        # the binary (250 MB, 6 s of CPU to unpack) once per machine and version, in faceprint's cache
        cache = Path(user_cache_dir("faceprint")) / f"milvus-{milvus.__version__}"
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be unpacking it
            milvus._initialize_data_files(str(cache))  # pinned to 2.3.5; only checksums once unpacked
        (data / "bin").symlink_to(cache / "bin")
        etcd, peer = f"http://127.0.0.1:{self.ports['etcd']}", f"http://127.0.0.1:{free_port()}"
        (self.root / "etcd.yaml").write_text(
            f"listen-client-urls: {etcd}\nadvertise-client-urls: {etcd}\nlisten-peer-urls: {peer}\n"
            f"initial-advertise-peer-urls: {peer}\ninitial-cluster: default={peer}\n")

    def wait(self, timeout: float = 180.0) -> str:
        """The URI, once the server reports itself healthy."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Milvus exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.metrics}/healthz", timeout=2).text.strip() == "OK":
                    return self.uri
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Milvus was not healthy within {timeout:.0f} s: {self.log()}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Killed, as in a crash (SIGKILL to its process group: anything it started goes too)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        """Killed (its data is thrown away: no need to shut down cleanly), its folder removed."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-2000:]


def api_key(db: Path | str, *scopes: str, env: dict | None = None) -> str:
    """A key made the way an operator makes one: `faceprint keys create`."""
    args = [str(Path(sys.executable).parent / "faceprint"), "keys", "create", "test", "--db", str(db), "--json"]
    done = subprocess.run(args + [a for s in scopes for a in ("-s", s)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["key"]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def faceprint_server(db: str, *args: str, env: dict | None = None, timeout: float = 120.0) -> Iterator[str]:
    """``faceprint serve`` in a subprocess on a free loopback port; yields its base URL."""
    with faceprint_server_process(db, *args, env=env, timeout=timeout) as (url, _):
        yield url


@contextmanager
def faceprint_server_process(db: str, *args: str, env: dict | None = None,
                             timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """``faceprint serve`` in a subprocess on a free loopback port; yields ``(base URL, process)``, for
    tests that kill the server (``process.kill()``: SIGKILL, no shutdown; with one worker the process
    is uvicorn itself) or look at its workers. Stopped at exit, workers included, if it still runs.
    Output goes to ``server.log`` beside a SQLite ``db`` (or in a temp folder, kept only when the
    start or the test failed), for failing tests to show."""
    import httpx

    port = free_port()
    own_dir = "://" in db  # a database URL: the log goes in a temp folder of its own, removed unless a test failed
    log_dir = Path(tempfile.mkdtemp(prefix="faceprint-serve-")) if own_dir else Path(db).parent
    log = open(log_dir / "server.log", "ab")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "faceprint"), "serve", "--port", str(port),
                             "--db", db, *args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
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
        yield url, proc
    except BaseException:
        own_dir = False  # keep the log of a failed start or a failing test
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, 9)  # its own session: workers a killed parent left behind go too
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (e.g. the uvicorn workers of a ``faceprint serve``)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parent.items() if pp == p} - found
        found |= kids
        todo += kids
    return found


def connection_owner(server_port: int, client_port: int, pids: set[int]) -> int | None:
    """Which of ``pids`` holds the server end of the loopback TCP connection from ``client_port``:
    the worker that is serving that connection (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == server_port and int(f[2].rsplit(":", 1)[1], 16) == client_port:
                inodes.add(f"socket:[{f[9]}]")
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                pass
    return None
