"""Shared fixtures: real faces from LFW (skipped with a reason when absent), a portrait from scikit-image,
and throwaway servers (PostgreSQL; Milvus standalone, started early so it comes up while other tests run)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from .servers import MilvusServer

LFW = Path(os.environ.get("FACEPRINT_LFW", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"))
#: Real footage (not in the repository): see ../shared/datasets/video/README.md.
CROWD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "video" / "crowd-1080p.mp4"


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW folder; also named in FACEPRINT_LFW for the code under test (int8 models calibrate on it)."""
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW not found at {LFW} (set FACEPRINT_LFW to its folder)")
    os.environ.setdefault("FACEPRINT_LFW", str(LFW))
    return LFW


def lfw_image(lfw: Path, name: str, n: int) -> Path:
    return lfw / "images" / name / f"{name}_{n:04d}.jpg"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins' portrait, shipped inside scikit-image's wheel: one real face, always present."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A throwaway PostgreSQL server for the whole test run."""
    from .servers import postgres

    with postgres() as url:
        yield url


@pytest.fixture(scope="session")
def analysis_server(tmp_path_factory):
    """One ``faceprint serve`` on an empty gallery, with a read key and an enroll key, for the tests of
    the analysis routes (``/v1/analyze``, ``/v1/liveness``): they store nothing, so they share it."""
    import httpx

    from .servers import api_key, faceprint_server

    db = tmp_path_factory.mktemp("analysis-server") / "gallery.db"
    keys = {scope: api_key(db, scope) for scope in ("read", "enroll")}
    with faceprint_server(str(db)) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, keys


# -- Milvus standalone: one server for the session, for the tests marked ``milvus_server`` ---------------
_milvus: dict = {}  # "server": the MilvusServer once started ("error": how its start failed), or "skip": why not
_MILVUS_MODULES = pytest.StashKey[set]()  # the test files with such tests


def pytest_configure(config):
    config.addinivalue_line("markers", "milvus_server: uses the session's Milvus standalone server "
                            "(runs last in its module; the server starts when the module does)")


@pytest.hookimpl(trylast=True)  # after -m / -k deselected theirs
def pytest_collection_modifyitems(config, items):
    """Tests that need the Milvus server go last in their module: the server is started when the module's
    first test is (``pytest_runtest_setup``) and comes up (10-40 s) while the others run."""
    modules = {}
    for item in items:
        modules.setdefault(item.path, len(modules))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (modules[item.path], item.get_closest_marker("milvus_server") is not None,
                                 order[id(item)]))
    config.stash[_MILVUS_MODULES] = {item.path for item in items if item.get_closest_marker("milvus_server")}


def pytest_runtest_setup(item):
    if item.path in item.config.stash.get(_MILVUS_MODULES, set()):
        _start_milvus()


def _start_milvus() -> None:
    if _milvus:
        return
    if importlib.util.find_spec("milvus") is None:
        _milvus["skip"] = "Milvus standalone is not installed (make setup installs it: pip install milvus==2.3.5)"
        return
    _milvus["server"] = MilvusServer()
    try:
        _milvus["server"].start()
    except Exception as e:  # noqa: BLE001 - raised by the fixture, in the tests that need the server
        _milvus["error"] = e


def pytest_sessionfinish(session):
    if "server" in _milvus:
        _milvus.pop("server").close()


@pytest.fixture(scope="session")
def milvus_server() -> MilvusServer:
    """Milvus 2.3 standalone on free local ports (``tests/servers.py``), its data in a temporary folder;
    killed at the end of the session. Tests that stop it start it again (``stop``, ``start``, ``wait``)."""
    _start_milvus()
    if "skip" in _milvus:
        pytest.skip(_milvus["skip"])
    if "error" in _milvus:
        raise _milvus["error"]
    _milvus["server"].wait()
    return _milvus["server"]
