"""Single-image liveness on real LFW faces with the real model: the package feeds fr_liveness as the
survey's probe does, real faces outscore their own generated print and screen attacks, and the
library call, the CLI, ``analyze`` and the REST route give it. Photos ``_0002`` only: the
benchmark calibrates the threshold on ``_0001`` photos (benchmarks/liveness.py)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import faceprint
from faceprint.analysis import DEFAULT_ONLY, Analyzer, get_model
from faceprint.analysis._crops import box_like
from faceprint.detection import get_detector
from faceprint.errors import FaceprintError
from faceprint.imageio import load_image, save_image
from faceprint.lfw import central
from faceprint.testing.attacks import print_attack, screen_attack

from .conftest import lfw_image
from .servers import bearer

FACEPRINT = [sys.executable, "-m", "faceprint"]
PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon",
          "Hugo_Chavez", "Junichiro_Koizumi", "Vladimir_Putin", "Serena_Williams", "Jennifer_Capriati", "Laura_Bush",
          "Jennifer_Lopez", "Nicole_Kidman", "Venus_Williams", "Hillary_Clinton"]


def _live(image: np.ndarray) -> float:
    (a,) = Analyzer("liveness").analyze(image, [central(get_detector().detect(image), image.shape)])
    assert not a.errors, a.errors
    return a.liveness.probability


def test_the_package_feeds_the_model_as_the_probe_does(lfw_dir, monkeypatch):
    """Same box, same p(live) as benchmarks/prototypes/analysis_probe.py (crop, RGB, raw 0..255, softmax[0])."""
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("analysis_probe", benchmarks / "prototypes" / "analysis_probe.py")
    probe = importlib.util.module_from_spec(spec)
    # the probe puts benchmarks/ first on the path for its labels: undone after this test, with the
    # modules it imported from there, or `import milvus` later in the session finds benchmarks/milvus.py
    monkeypatch.setattr(sys, "path", list(sys.path))
    loaded = set(sys.modules)
    spec.loader.exec_module(probe)
    for name in set(sys.modules) - loaded:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(benchmarks)):
            del sys.modules[name]
    model = get_model("liveness")
    diffs = []
    for name in PEOPLE[:4]:
        image = load_image(lfw_image(lfw_dir, name, 2))
        face = central(get_detector().detect(image), image.shape)
        ours = model.predict(image, face, {}).probability
        diffs.append(abs(ours - float(probe.fr_liveness({"img": image, "fp": box_like(face, "fr_detect")})[0])))
    assert max(diffs) < 1e-5, diffs


def test_real_faces_outscore_their_own_print_and_screen_attacks(lfw_dir):
    """Measured: 16 of 16 (each photo over the next person's as background, seed = its index)."""
    wins = 0
    for i, name in enumerate(PEOPLE):
        image = load_image(lfw_image(lfw_dir, name, 2))
        background = load_image(lfw_image(lfw_dir, PEOPLE[(i + 1) % len(PEOPLE)], 2))
        rng = np.random.default_rng(i)
        attacks = [print_attack(image, background, rng), screen_attack(image, background, rng)]
        wins += _live(image) > max(_live(a) for a in attacks)
    assert wins >= 14, f"{wins}/{len(PEOPLE)}"


def test_attacks_are_seeded():
    a, b = np.full((80, 80, 3), 100, np.uint8), np.full((80, 80, 3), 30, np.uint8)
    for make in (print_attack, screen_attack):
        x, y = make(a, b, np.random.default_rng(1)), make(a, b, np.random.default_rng(1))
        assert x.shape == a.shape and x.dtype == np.uint8 and np.array_equal(x, y)


def test_library_call_and_analyze(lfw_dir):
    photo = lfw_image(lfw_dir, "Hugo_Chavez", 2)
    (a,) = faceprint.liveness(photo)
    d = a.to_dict()
    assert set(d) == {"face", "liveness"} and d["liveness"]["model"] == "fr-liveness"
    assert d["liveness"]["live"] is (d["liveness"]["probability"] >= d["liveness"]["threshold"])
    assert 0 <= a.liveness.probability <= 1
    (b,) = faceprint.analyze(photo, only="age,liveness")
    assert set(b.to_dict()) == {"face", "age", "liveness"} and b.liveness == a.liveness
    assert "liveness" not in DEFAULT_ONLY and faceprint.analyze(photo)[0].liveness is None  # asked for only
    assert faceprint.liveness(np.full((100, 100, 3), 128, np.uint8)) == []
    with pytest.raises(FaceprintError, match="unknown liveness model 'nope'"):
        faceprint.liveness(photo, model="nope")


# -- the command line ------------------------------------------------------------------------------
def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(FACEPRINT + list(args), capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_cli_liveness(lfw_dir, tmp_path):
    photo = lfw_image(lfw_dir, "Serena_Williams", 2)
    p = run("liveness", str(photo), "--json")
    assert p.returncode == 0, p.stderr
    (entry,) = json.loads(p.stdout)
    (face,) = entry["faces"]
    assert face["liveness"]["model"] == "fr-liveness" and isinstance(face["liveness"]["live"], bool)

    blank, corrupt = tmp_path / "blank.png", tmp_path / "corrupt.jpg"
    save_image(blank, np.full((120, 120, 3), 90, np.uint8))
    corrupt.write_bytes(photo.read_bytes()[:300])
    p = run("liveness", str(blank))
    assert p.returncode == 0 and "blank.png: 0 face(s)" in p.stdout, p.stdout + p.stderr
    for bad in (tmp_path / "missing.jpg", corrupt):
        p = run("liveness", str(bad))
        assert p.returncode == 1 and f"{bad}: " in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run("liveness", str(photo), "--model", "nope")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "unknown liveness model 'nope'" in lines[0], p.stderr


# -- the REST route --------------------------------------------------------------------------------
def test_rest_liveness(analysis_server, lfw_dir):
    client, keys = analysis_server
    read = bearer(keys["read"])
    photo = lfw_image(lfw_dir, "Venus_Williams", 2)
    files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
    r = client.post("/v1/liveness", headers=read, files=files)
    assert r.status_code == 200, r.text
    (face,) = r.json()["faces"]
    assert set(face) == {"face", "liveness"} and face["liveness"]["model"] == "fr-liveness"
    assert face["liveness"]["probability"] == round(faceprint.liveness(photo)[0].liveness.probability, 4)
    r = client.post("/v1/liveness", params={"model": "fr-liveness"}, headers=read,
                    json={"image": base64.b64encode(photo.read_bytes()).decode()})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1, r.text

    def error(r):
        return r.status_code, r.json()["error"]["code"]

    assert error(client.post("/v1/liveness", files=files)) == (401, "unauthorized")
    assert client.post("/v1/liveness", headers=bearer(keys["enroll"]), files=files).status_code == 403
    assert error(client.post("/v1/liveness", params={"model": "nope"}, headers=read, files=files)) == \
        (400, "bad_request")
    assert error(client.post("/v1/liveness", params={"only": "age"}, headers=read, files=files)) == (400, "bad_request")
    assert error(client.post("/v1/liveness", headers=read, files={"image": ("x.jpg", b"not an image", "image/jpeg")})) \
        == (400, "bad_image")
    assert error(client.post("/v1/liveness", headers=read, json={"image": "***"})) == (400, "bad_image")
