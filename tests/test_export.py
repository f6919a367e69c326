"""`faceprint export`: the bundle's runner, in a virtualenv holding only the runtimes (onnxruntime, LiteRT),
numpy and OpenCV, gives faceprint's answers on real LFW pairs, for each exportable pipeline and format; a
damaged bundle is refused; bad arguments fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.detection import get_detector
from faceprint.imageio import load_image
from faceprint.lfw import central, read_pairs
from faceprint.testing.masks import put_mask
from faceprint.pipeline import get_pipeline

from .runner_venv import RUNTIME, runner_python

FACEPRINT = [sys.executable, "-m", "faceprint"]
#: Each exportable pipeline: its detector and embedder, and the detector's networks (bundle files).
PIPELINES = {"fast": ("blazeface-short", "expo-mobilefacenet", ["blazeface"]),
             "default": ("blazeface-mtcnn", "faceplugin", ["blazeface", "onet", "pnet", "retinaface", "rnet"])}


@pytest.fixture(scope="module", params=[("fast", "onnx"), ("default", "onnx"), ("fast", "tflite")], ids="-".join)
def bundle(request, tmp_path_factory) -> Path:
    pipeline, fmt = request.param
    folder = tmp_path_factory.mktemp("export") / "bundle"
    done = subprocess.run([*FACEPRINT, "export", "--target", str(folder), "--pipeline", pipeline, "--format", fmt,
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    networks = [f"detector-{n}.{fmt}" for n in PIPELINES[pipeline][2]]
    assert json.loads(done.stdout)["files"] == ["bundle.json", *networks, f"embedder.{fmt}", "runner.py"]
    return folder


def pipeline_of(bundle: Path) -> str:
    return json.loads((bundle / "bundle.json").read_text())["pipeline"]


def test_a_tflite_bundle_holds_the_published_files(tmp_path):
    """``--format tflite`` ships the fast pipeline's networks as MediaPipe and expo published them."""
    from faceprint import zoo
    from faceprint.export import export

    export(tmp_path, "fast", "tflite")
    for name, file in (("blazeface-short", "detector-blazeface.tflite"), ("expo-mobilefacenet", "embedder.tflite")):
        assert (tmp_path / file).read_bytes() == zoo.get(name).path("model").read_bytes()


@pytest.fixture(scope="module")
def clean_python() -> Path:
    """A virtualenv with nothing but the runner's dependencies (made by `make setup`)."""
    python = runner_python()
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "faceprint" not in names and "pillow" not in names
    assert {n.lower() for n in RUNTIME} <= names
    return python


def close_up(lfw_dir: Path, folder: Path) -> str:
    """A face filling the frame, which BlazeFace misses: the default pipeline finds it only by its
    MTCNN fallback (none of the LFW photos below needs it)."""
    photo = cv2.imread(str(lfw_dir / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"))
    path = folder / "close_up.png"
    cv2.imwrite(str(path), cv2.resize(photo[70:180, 70:180], None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
    assert not get_detector("blazeface").detect(load_image(path), tiles=4)
    return str(path)


def masked(lfw_dir: Path, folder: Path) -> str:
    """A face under a drawn mask (generated) that BlazeFace and MTCNN lose: the default pipeline
    finds it only by its last resort, RetinaFace."""
    photo = load_image(lfw_dir / "images" / "Daniela_Cicarelli" / "Daniela_Cicarelli_0001.jpg")
    path = folder / "masked.png"
    cv2.imwrite(str(path), cv2.cvtColor(put_mask(photo, central(get_detector().detect(photo), photo.shape), seed=0),
                                        cv2.COLOR_RGB2BGR))
    assert not get_detector("mtcnn").detect(load_image(path)) and get_detector("retinaface").detect(load_image(path))
    return str(path)


def test_runner_gives_faceprints_answers_on_lfw_pairs(bundle, clean_python, lfw_dir, tmp_path):
    pairs = read_pairs(lfw_dir, folds=1, per_fold=50)  # 50 same-person and 50 different-person pairs
    images = sorted({str(p) for pair in pairs for p in (pair.a, pair.b)})
    if pipeline_of(bundle) == "default":
        images += [close_up(lfw_dir, tmp_path), masked(lfw_dir, tmp_path)]
    done = subprocess.run([str(clean_python), str(bundle / "runner.py"), "embed", *images],
                          capture_output=True, text=True, cwd=bundle.parent)
    assert done.returncode == 0, done.stderr
    theirs = {row["image"]: row for row in map(json.loads, done.stdout.splitlines())}
    pipe = get_pipeline(*PIPELINES[pipeline_of(bundle)][:2])
    ours = {path: pipe.embed_one(path).vector for path in images}
    worst = max(1.0 - float(np.dot(ours[p], theirs[p]["vector"])) for p in images)
    assert worst < 1e-5, worst  # the same faceprint, to float rounding
    threshold = json.loads((bundle / "bundle.json").read_text())["embedder"]["threshold"]
    assert threshold == pipe.embedder.threshold

    def same(vectors: dict, pair) -> bool:
        return 1.0 - float(np.dot(vectors[str(pair.a)], vectors[str(pair.b)])) <= threshold
    runner = {p: np.array(row["vector"], np.float32) for p, row in theirs.items()}
    assert [same(runner, pair) for pair in pairs] == [same(ours, pair) for pair in pairs]
    assert sum(same(ours, pair) == pair.same for pair in pairs) >= 95  # and the answers are mostly right

    a, b = pairs[0].a, pairs[0].b
    verdict = subprocess.run([str(clean_python), str(bundle / "runner.py"), "verify", str(a), str(b)],
                             capture_output=True, text=True)
    assert verdict.returncode == 0 and json.loads(verdict.stdout)["same"] is True, verdict.stderr


def test_a_damaged_bundle_is_refused(bundle, clean_python, tmp_path, lfw_dir):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in bundle.iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    victim = next(f.name for f in sorted(bundle.iterdir()) if f.name.startswith("embedder.")) \
        if pipeline_of(bundle) == "fast" else "detector-onet.onnx"
    model = bytearray((damaged / victim).read_bytes())
    model[len(model) // 2] ^= 0xFF
    (damaged / victim).write_bytes(bytes(model))
    done = subprocess.run([str(clean_python), str(damaged / "runner.py"), "embed",
                           str(lfw_dir / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg")], capture_output=True, text=True)
    assert done.returncode != 0 and victim in done.stderr and "SHA-256" in done.stderr, done.stderr


@pytest.mark.parametrize("args, message", [
    (["--pipeline", "huge"], "unknown pipeline 'huge'"),
    (["--format", "int8"], "unknown format 'int8'"),
    (["--format", "tflite", "--pipeline", "default"], "not all published as TFLite files"),
])
def test_bad_arguments_fail_in_one_line(tmp_path, args, message):
    done = subprocess.run([*FACEPRINT, "export", "--target", str(tmp_path / "b"), *args], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "b").exists()


def test_a_target_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "bundle"
    target.write_text("not a folder")
    done = subprocess.run([*FACEPRINT, "export", "--target", str(target)], capture_output=True, text=True)
    assert done.returncode == 1 and "is not a folder" in done.stderr and "Traceback" not in done.stderr
    assert target.read_text() == "not a folder"


def test_a_bundle_written_over_another_leaves_none_of_its_detector_files(tmp_path):
    from faceprint.export import export

    target = tmp_path / "bundle"
    export(target, "default")
    assert (target / "detector-onet.onnx").is_file()
    for fmt in ("onnx", "tflite"):
        export(target, "fast", fmt)
        listed = json.loads((target / "bundle.json").read_text())["files"]
        assert sorted(p.name for p in target.iterdir()) == sorted([*listed, "bundle.json"])
