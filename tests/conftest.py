"""Shared fixtures: real faces from LFW (skipped with a reason when absent) and a portrait from scikit-image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

LFW = Path(os.environ.get("FACEPRINT_LFW", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"))


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
