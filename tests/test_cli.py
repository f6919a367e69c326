"""The command line as a user runs it: real processes, real models, real LFW faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint.imageio import load_image, save_image

from .conftest import lfw_image
from .test_imageio import raw_png

FACEPRINT = [sys.executable, "-m", "faceprint"]


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(FACEPRINT + list(args), capture_output=True, text=True, timeout=600)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_verify_json(lfw_dir):
    a, b = lfw_image(lfw_dir, "Aaron_Peirsol", 1), lfw_image(lfw_dir, "Aaron_Peirsol", 2)
    c = lfw_image(lfw_dir, "Colin_Powell", 1)
    same = json.loads(run("verify", str(a), str(b), "--json").stdout)
    assert set(same) == {"same", "distance", "threshold", "embedder"}
    assert same["same"] is True and same["distance"] < same["threshold"]
    diff = json.loads(run("verify", str(a), str(c), "--json").stdout)
    assert diff["same"] is False and diff["distance"] > diff["threshold"]
    assert "same person" in run("verify", str(a), str(b)).stdout
    euclid = json.loads(run("verify", str(a), str(b), "--metric", "euclidean", "--json").stdout)
    assert euclid["distance"] == pytest.approx((2 * same["distance"]) ** 0.5, abs=1e-5)
    assert euclid["threshold"] == pytest.approx((2 * same["threshold"]) ** 0.5, abs=1e-5)


def test_bad_inputs_give_one_line_errors(tmp_path, lfw_dir):
    good = lfw_image(lfw_dir, "Aaron_Peirsol", 1)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    blank = tmp_path / "blank.png"
    save_image(blank, np.full((200, 200, 3), 128, np.uint8))
    for bad, why in [(empty, "empty"), (text, ""), (blank, "no face"), (tmp_path / "missing.jpg", "")]:
        p = run("verify", str(good), str(bad), ok=False)
        assert p.returncode == 1
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and why in lines[0], p.stderr
    p = run("verify", str(good), str(good), "--embedder", "nope", ok=False)
    assert p.returncode == 1 and "unknown embedder" in p.stderr


def test_detect_counts_faces_on_a_tiled_image_and_draws(tmp_path, lfw_dir):
    names = ["Aaron_Peirsol", "Colin_Powell", "Serena_Williams", "Tony_Blair", "Gloria_Macapagal_Arroyo",
             "Vladimir_Putin"]
    tiles = [load_image(lfw_image(lfw_dir, n, 1))[40:210, 40:210] for n in names]  # crop to the subject
    grid = np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:])])
    path = tmp_path / "group.png"
    save_image(path, grid)
    report = json.loads(run("detect", str(path), "--json", "--draw", str(tmp_path / "drawn.jpg")).stdout)
    assert report[0]["path"] == str(path) and len(report[0]["faces"]) == 6
    drawn = load_image(tmp_path / "drawn.jpg")
    assert drawn.shape == grid.shape and np.abs(drawn.astype(int) - grid).mean() > 0.5


def test_enroll_identify_people_roundtrip(tmp_path, lfw_dir):
    db = str(tmp_path / "g.db")
    root = tmp_path / "people"
    for name in ("Colin_Powell", "Serena_Williams"):
        (root / name).mkdir(parents=True)
        for i in (1, 2):
            (root / name / f"{i}.jpg").write_bytes(lfw_image(lfw_dir, name, i).read_bytes())
    (root / "Colin_Powell" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    p = run("enroll", str(root), "--db", db, "--json", ok=False)
    assert p.returncode == 1  # the bad file is reported, the rest enrolled
    summary = json.loads(p.stdout)
    assert summary["enrolled"] == 4 and summary["people"] == 2
    assert [f["path"] for f in summary["failed"]] == [str(root / "Colin_Powell" / "broken.jpg")]
    run("enroll", "--name", "Tony Blair", str(lfw_image(lfw_dir, "Tony_Blair", 1)), "--db", db)

    probe = lfw_image(lfw_dir, "Serena_Williams", 5)
    stranger = lfw_image(lfw_dir, "Aaron_Peirsol", 1)
    out = json.loads(run("identify", str(probe), str(stranger), "--db", db, "--json",
                         "--draw", str(tmp_path / "drawn")).stdout)
    assert [r["path"] for r in out] == [str(probe), str(stranger)]
    for r, expected in zip(out, ["Serena_Williams", None]):
        subject = min(r["faces"], key=lambda f: abs((f["box"][0] + f["box"][2]) / 2 - 125))
        assert set(subject) == {"box", "name", "distance"} and len(subject["box"]) == 4
        assert subject["name"] == expected
    assert (tmp_path / "drawn" / f"{probe.stem}.jpg").is_file()

    people = json.loads(run("people", "list", "--db", db, "--json").stdout)
    assert {p["name"]: p["faces"] for p in people} == {"Colin_Powell": 2, "Serena_Williams": 2, "Tony Blair": 1}
    show = json.loads(run("people", "show", "Colin_Powell", "--db", db, "--json").stdout)
    assert len(show["faces"]) == 2 and all(len(f["image_sha256"]) == 64 for f in show["faces"])
    reindexed = json.loads(run("reindex", "--embedder", "dlib-resnet", "--db", db, "--json").stdout)
    assert reindexed == {"faces": 5, "embedder": "dlib-resnet"}
    out = json.loads(run("identify", str(probe), "--db", db, "--json").stdout)
    assert "Serena_Williams" in [f["name"] for f in out[0]["faces"]]
    run("people", "rename", "Tony Blair", "Tony_Blair", "--db", db)
    assert json.loads(run("people", "remove", "Tony_Blair", "--db", db, "--json").stdout)["faces"] == 1
    p = run("people", "show", "Tony_Blair", "--db", db, ok=False)
    assert p.returncode == 1 and "no person named" in p.stderr


def test_models_list_and_verify():
    rows = json.loads(run("models", "list", "--json").stdout)
    names = {r["name"] for r in rows}
    assert {"mtcnn", "blazeface", "dlib-hog", "dlib-resnet", "facenet", "mobilefacenet"} <= names
    assert all(r["licence"] and r["sources"] for r in rows)
    assert all(r["threshold"] for r in rows if r["kind"] == "embedder")
    p = run("models", "verify", "--json")
    checks = json.loads(p.stdout)
    assert all(r["status"] in {"ok", "missing"} for r in checks)
    cached = {r["name"] for r in rows if r["kind"] == "embedder" and r["cached"]}
    assert {r["model"] for r in checks if r["file"] == "self-test" and r["status"] == "ok"} == cached


def test_every_format_reaches_the_detector_and_bad_ones_fail_cleanly(tmp_path, astronaut):
    from PIL import Image

    img = Image.fromarray(astronaut)
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    files = {
        "a.webp": lambda p: img.save(p, quality=90),
        "a.gif": lambda p: img.convert("P").save(p),
        "cmyk.jpg": lambda p: img.convert("CMYK").save(p, quality=95),
        "a.tiff": lambda p: img.save(p),
        "grey.png": lambda p: img.convert("L").save(p),
        "exif.jpg": lambda p: rotated.save(p, exif=exif, quality=95),
    }
    for name, write in files.items():
        write(tmp_path / name)
    huge = tmp_path / "huge.png"  # a header claiming 100000 x 100000 pixels
    huge.write_bytes(raw_png(100_000, 100_000, 8, 2, b"\x00" * 64))
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((tmp_path / "exif.jpg").read_bytes()[:3000])
    paths = [str(tmp_path / n) for n in files] + [str(huge), str(truncated)]
    p = run("detect", *paths, "--json", ok=False)
    assert p.returncode == 1
    report = {r["path"]: r for r in json.loads(p.stdout)}
    for name in files:
        faces = report[str(tmp_path / name)]["faces"]
        assert len(faces) == 1, name
        x1, y1, x2, y2 = faces[0]["box"]
        assert 150 < (x1 + x2) / 2 < 280 and 50 < (y1 + y2) / 2 < 200, name  # upright: the face is top-centre
    assert "pixels" in report[str(huge)]["error"]
    assert report[str(truncated)]["error"]


#: Runs the CLI in-process, then reports (on exit, whatever the exit code) which heavy runtimes it
#: imported and which models it made.
_LOADED_PROBE = """
import atexit, json, sys
from faceprint.cli import app
from faceprint.detection import detectors
from faceprint.embedding import embedders
HEAVY = {"onnxruntime", "dlib", "usearch", "psycopg", "pymilvus", "sklearn", "scipy", "tensorflow"}
atexit.register(lambda: print("LOADED " + json.dumps({
    "modules": sorted(HEAVY & {m.split(".")[0] for m in sys.modules}),
    "models": detectors.loaded() + embedders.loaded()}), file=sys.stderr))
sys.argv = ["faceprint", *sys.argv[1:]]
app()
"""


def _probe(*args: str) -> tuple[subprocess.CompletedProcess, str, dict]:
    """Run the CLI under ``_LOADED_PROBE``: the process, its stderr before the report, and the report."""
    p = subprocess.run([sys.executable, "-c", _LOADED_PROBE, *args], capture_output=True, text=True, timeout=120)
    before, report = p.stderr.rsplit("LOADED ", 1)
    return p, before, json.loads(report)


def _gallery_with_ada(db: Path):
    """A gallery file holding one face of Ada (a made-up vector: no model made it); the store, open."""
    from faceprint.gallery.store import NewFace, open_store

    store = open_store(db)
    store.add_face(NewFace("Ada", "faceplugin", np.ones(512, np.float32) / np.sqrt(512), "0" * 64,
                           box=[0, 0, 10, 10], landmarks={}, detector="test"))
    return store


@pytest.mark.parametrize("command", [["people", "list"], ["keys", "list"], ["people", "show", "Ada"]])
def test_commands_that_need_no_model_load_none(tmp_path, command):
    from faceprint.gallery.keys import create_key

    db = tmp_path / "g.db"
    store = _gallery_with_ada(db)
    create_key(store, "k", ["read"])
    store.close()
    p, _, loaded = _probe(*command, "--db", str(db), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)  # it listed something
    assert loaded == {"modules": [], "models": []}


@pytest.mark.parametrize("gallery", ["present", "missing"])
def test_watch_refuses_a_missing_video_or_gallery_before_loading_anything(tmp_path, gallery):
    """The one-line error comes before any model or heavy import (scikit-learn, SciPy's optimiser):
    it took 4 s here when ``watch`` imported them first."""
    db = tmp_path / "g.db"
    if gallery == "present":
        _gallery_with_ada(db).close()
    p, error, loaded = _probe("watch", str(tmp_path / "nope.mp4"), "--db", str(db))
    assert p.returncode == 1 and len(error.strip().splitlines()) == 1, p.stderr
    assert ("no such video file" if gallery == "present" else "no gallery at") in error
    assert loaded == {"modules": [], "models": []}
