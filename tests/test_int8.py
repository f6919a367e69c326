"""int8 embedders: calibrated on LFW DevTrain faces only, and giving their float model's answers."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import zoo
from faceprint.errors import ModelError
from faceprint.evaluation import central, read_pairs
from faceprint.zoo.quantize import calibration_images, lfw_folder

#: float model -> its int8 variant
PAIRS = {"dlib-resnet": "dlib-resnet-int8"}
#: same/different decisions (each model at its own threshold) that may differ, of the 100 pairs
MAX_CHANGED = 3


@pytest.fixture(scope="module")
def subset_faces(lfw_dir):
    """100 View 2 pairs (5 same and 5 different from each fold) and each image's detected face."""
    from faceprint.detection import get_detector
    from faceprint.imageio import load_image

    pairs = []
    for fold in range(10):
        in_fold = [p for p in read_pairs(lfw_dir) if p.fold == fold]
        pairs += [p for p in in_fold if p.same][:5] + [p for p in in_fold if not p.same][:5]
    det = get_detector()
    faces = {}
    for path in sorted({str(p) for pair in pairs for p in (pair.a, pair.b)}):
        image = load_image(path)
        found = det.detect(image)
        faces[path] = (image, central(found, image.shape)) if found else None
    return pairs, faces


def _distances(name, pairs, faces):
    from faceprint.embedding import get_embedder

    emb = get_embedder(name)
    vec = {p: emb.embed_faces(f[0], [f[1]])[0] for p, f in faces.items() if f is not None}
    return np.array([1 - vec[str(p.a)] @ vec[str(p.b)] for p in pairs if str(p.a) in vec and str(p.b) in vec])


@pytest.mark.parametrize("float_name", list(PAIRS))
def test_int8_model_gives_the_float_models_answers(float_name, subset_faces):
    if not zoo.get(float_name).cached:
        pytest.skip(f"{float_name} is not in the cache")
    pairs, faces = subset_faces
    d_float = _distances(float_name, pairs, faces)
    d_int8 = _distances(PAIRS[float_name], pairs, faces)
    assert len(d_float) >= 98
    same_float = d_float <= zoo.get(float_name).threshold
    same_int8 = d_int8 <= zoo.get(PAIRS[float_name]).threshold
    assert (same_float != same_int8).sum() <= MAX_CHANGED
    # the distances themselves move by a small part of the threshold, not by chance agreement
    assert np.abs(d_int8 - d_float).mean() <= 0.1 * zoo.get(float_name).threshold


def test_calibration_uses_devtrain_people_and_no_view2_image(lfw_dir):
    images = calibration_images(lfw_dir)
    assert len(images) == 256 and len(set(images)) == 256
    assert images == calibration_images(lfw_dir)  # deterministic: the same model on every machine
    view2 = {str(p) for pair in read_pairs(lfw_dir) for p in (pair.a, pair.b)}
    assert not view2 & {str(p) for p in images}
    dev_train = {line.split()[0] for line in (lfw_dir / "peopleDevTrain.txt").read_text().split("\n")[1:] if line}
    assert {p.parent.name for p in images} <= dev_train


def test_without_lfw_the_int8_build_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEPRINT_LFW", raising=False)
    with pytest.raises(ModelError, match="set FACEPRINT_LFW") as e:
        lfw_folder()
    assert "\n" not in str(e.value)
    monkeypatch.setenv("FACEPRINT_LFW", str(tmp_path))
    with pytest.raises(ModelError, match="has no peopleDevTrain.txt"):
        lfw_folder()


def test_eval_caches_of_an_int8_model_are_keyed_on_its_quantisation():
    """A changed quantiser (its converter_revision bumped) must not reuse vectors cached by the old one."""
    from faceprint.embedding.dlib_resnet import DlibResNet, DlibResNetInt8

    # fingerprints read only class settings and the zoo's pins: no model needs loading
    old = object.__new__(DlibResNetInt8)
    new = object.__new__(type("Requantised", (DlibResNetInt8,), {"converter_revision": 2}))
    assert old.fingerprint != new.fingerprint
    assert "int8" not in object.__new__(DlibResNet).fingerprint  # float models' caches stay valid



def test_fetching_every_model_without_lfw_leaves_the_int8_build_for_later(tmp_path):
    """A fresh machine's `faceprint models fetch` (what `make setup` runs) must not fail for want of
    an LFW folder to calibrate on: the int8 model is left to be built when asked for by name."""
    import os
    import subprocess
    import sys

    real = zoo.cache_dir()
    if not (real / "files").is_dir():
        pytest.skip("no model cache (run `faceprint models fetch`)")
    cache = tmp_path / "models"
    (cache / "converted").mkdir(parents=True)
    (cache / "files").symlink_to(real / "files")  # read-only use of the real weights
    int8 = zoo.get("dlib-resnet-int8")
    for p in (real / "converted").iterdir():
        if not p.name.startswith(f"{int8.name}-"):
            (cache / "converted" / p.name).symlink_to(p)
    env = {k: v for k, v in os.environ.items() if k != "FACEPRINT_LFW"} | {"FACEPRINT_MODELS": str(cache)}
    everything = subprocess.run([sys.executable, "-m", "faceprint", "models", "fetch"], env=env,
                                capture_output=True, text=True, timeout=600)
    assert everything.returncode == 0, everything.stderr
    assert f"{int8.name}: sources cached; built on first use" in " ".join(everything.stdout.split())
    assert not any(p.name.startswith(f"{int8.name}-") for p in (cache / "converted").iterdir())
    by_name = subprocess.run([sys.executable, "-m", "faceprint", "models", "fetch", int8.name], env=env,
                             capture_output=True, text=True, timeout=600)
    assert by_name.returncode == 1 and "set FACEPRINT_LFW" in by_name.stderr


@pytest.mark.parametrize("float_name", PAIRS)
def test_int8_self_test_holds_it_to_its_float_models_reference(float_name):
    """An int8 model is built on the user's machine and runs on its integer instructions, so its
    vector for the pinned face differs between CPUs (0.011 cosine on an AMD EPYC, 0.0007 on a Xeon
    with VNNI): its self-test compares it with the float model's reference, at a tolerance that
    still fails a damaged model, rather than with a vector recorded on one CPU."""
    from faceprint.zoo import selftest

    name = PAIRS[float_name]
    if not zoo.get(name).cached:
        pytest.skip(f"{name} is not built (run `faceprint models fetch {name}` with FACEPRINT_LFW set)")
    assert name not in selftest._reference()["vectors"] and float_name in selftest._reference()["vectors"]
    assert selftest.tolerance(name) == selftest.INT8_TOLERANCE and selftest.tolerance(float_name) == selftest.TOLERANCE
    assert selftest.distance(name) <= selftest.INT8_TOLERANCE
