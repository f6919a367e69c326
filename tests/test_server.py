"""The REST service over real HTTP: a `faceprint serve` process on loopback, real models, LFW faces."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from faceprint.gallery.store import open_store
from faceprint.gallery.keys import create_key

from .conftest import lfw_image
from .servers import api_key, bearer, faceprint_server

FACEPRINT = str(Path(sys.executable).parent / "faceprint")
BUSH, POWELL, STRANGER = "George_W_Bush", "Colin_Powell", "Tony_Blair"


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory, lfw_dir):
    db = tmp_path_factory.mktemp("serve") / "gallery.db"
    keys = {scope: api_key(db, scope) for scope in ("read", "enroll", "admin")}
    with faceprint_server(str(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, keys, db


def _photo(lfw: Path, name: str, n: int) -> tuple[str, bytes, str]:
    path = lfw_image(lfw, name, n)
    return path.name, path.read_bytes(), "image/jpeg"


def test_enrol_identify_verify_detect_delete(server, lfw_dir):
    client, keys, db = server
    enroll, admin, read = bearer(keys["enroll"]), bearer(keys["admin"]), bearer(keys["read"])
    assert client.post("/v1/people", json={"name": "Bush"}, headers=enroll).status_code == 201
    assert client.post("/v1/people", json={"name": "Bush"}, headers=enroll).json()["error"]["code"] == "person_exists"
    # several images in one multipart request
    r = client.post("/v1/people/Bush/faces", headers=enroll,
                    files=[("images", _photo(lfw_dir, BUSH, i)) for i in (1, 2, 3)])
    assert r.status_code == 201 and r.json()["enrolled"] == 3, r.text
    # the same photo again is acknowledged, not duplicated
    r = client.post("/v1/people/Bush/faces", headers=enroll, files=[("images", _photo(lfw_dir, BUSH, 1))])
    assert r.status_code == 200 and r.json()["already_enrolled"] == 1
    # JSON with base64 works the same
    b64 = base64.b64encode(lfw_image(lfw_dir, POWELL, 1).read_bytes()).decode()
    assert client.post("/v1/people", json={"name": "Powell"}, headers=enroll).status_code == 201
    r = client.post("/v1/people/Powell/faces", headers=enroll, json={"images": [b64]})
    assert r.status_code == 201 and r.json()["enrolled"] == 1
    assert client.get("/v1/people", headers=read).json() == [{"name": "Bush", "faces": 3}, {"name": "Powell", "faces": 1}]

    r = client.post("/v1/identify", headers=read, files={"image": _photo(lfw_dir, BUSH, 4)})
    assert [f["name"] for f in r.json()["faces"]] == ["Bush"]
    r = client.post("/v1/identify", headers=read, files={"image": _photo(lfw_dir, STRANGER, 1)})
    assert [f["name"] for f in r.json()["faces"]] == [None]
    r = client.post("/v1/verify", headers=read, files={"image_a": _photo(lfw_dir, BUSH, 5),
                                                       "image_b": _photo(lfw_dir, BUSH, 6)})
    assert r.json()["same"] is True and r.json()["embedder"] == "faceplugin"
    r = client.post("/v1/detect", headers=read, json={"image": b64})
    assert len(r.json()["faces"]) == 1 and set(r.json()["faces"][0]["landmarks"]) >= {"left_eye", "nose"}

    # rename, then delete: every face and embedding goes, and the service says so
    assert client.patch("/v1/people/Powell", json={"name": "Colin Powell"}, headers=enroll).status_code == 200
    r = client.delete("/v1/people/Bush", headers=admin)
    assert r.json() == {"removed": "Bush", "faces": 3, "embeddings": 3, "images": 0}
    assert client.get("/v1/people/Bush", headers=read).json()["error"]["code"] == "unknown_person"
    r = client.post("/v1/identify", headers=read, files={"image": _photo(lfw_dir, BUSH, 4)})
    assert [f["name"] for f in r.json()["faces"]] == [None]
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 1
    assert con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    # thumbnails are off by default: no face image is kept
    assert con.execute("SELECT COUNT(*) FROM faces WHERE length(chip) > 0").fetchone()[0] == 0
    assert client.get("/v1/people/Colin Powell/thumbnail", headers=read).json()["error"]["code"] == "no_thumbnail"


def test_keys_scopes_and_revocation(server, tmp_path):
    client, keys, db = server
    assert client.get("/v1/people").status_code == 401
    assert client.get("/v1/people", headers=bearer("fp_000000000000_wrong")).status_code == 401
    assert client.get("/v1/people", headers={"X-API-Key": keys["read"]}).status_code == 200
    r = client.post("/v1/people", json={"name": "x"}, headers=bearer(keys["read"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.delete("/v1/people/x", headers=bearer(keys["enroll"])).status_code == 403
    # keys are stored only as hashes
    stored = sqlite3.connect(db).execute("SELECT id, hash FROM api_keys").fetchall()
    assert all(secret.split("_", 2)[2] not in str(stored) for secret in keys.values())
    # revoke with the CLI: the key stops working at once
    key = api_key(db, "read")
    assert client.get("/v1/people", headers=bearer(key)).status_code == 200
    listed = json.loads(subprocess.run([FACEPRINT, "keys", "list", "--db", str(db), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    key_id = key.split("_")[1]
    assert key_id in {k["id"] for k in listed} and all("hash" not in k for k in listed)
    subprocess.run([FACEPRINT, "keys", "revoke", key_id, "--db", str(db)], check=True, capture_output=True)
    assert client.get("/v1/people", headers=bearer(key)).status_code == 401
    bad = subprocess.run([FACEPRINT, "keys", "create", "x", "-s", "root", "--db", str(db)], capture_output=True, text=True)
    assert bad.returncode == 1 and "scopes must be some of" in bad.stderr


def test_errors_are_json_with_stable_codes(server, lfw_dir):
    client, keys, _ = server
    read, enroll = bearer(keys["read"]), bearer(keys["enroll"])

    def code(r: httpx.Response) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]

    blank = _jpeg(np.full((200, 200, 3), 128, np.uint8))
    assert code(client.post("/v1/detect", headers=read, files={"image": ("x.bin", os.urandom(5000))})) == \
        (400, "bad_image")
    truncated = lfw_image(lfw_dir, BUSH, 1).read_bytes()[:3000]
    assert code(client.post("/v1/detect", headers=read, files={"image": ("t.jpg", truncated)})) == (400, "bad_image")
    assert code(client.post("/v1/verify", headers=read, files={"image_a": ("a.jpg", blank),
                                                               "image_b": _photo(lfw_dir, BUSH, 1)})) == \
        (422, "no_face")
    assert client.post("/v1/people", json={"name": "Nobody"}, headers=enroll).status_code == 201
    assert code(client.post("/v1/people/Nobody/faces", headers=enroll, files={"images": ("b.jpg", blank)})) == \
        (422, "no_face")
    assert code(client.post("/v1/people/Ghost/faces", headers=enroll, files={"images": _photo(lfw_dir, BUSH, 1)})) == \
        (404, "unknown_person")
    assert code(client.post("/v1/detect", headers={**read, "content-type": "text/plain"}, content=b"abc")) == \
        (415, "unsupported_media_type")
    assert code(client.post("/v1/detect", headers=read, json={"picture": "x"})) == (422, "invalid_request")
    assert code(client.post("/v1/detect", headers=read, json={"image": "not base64!"})) == (400, "bad_image")
    assert code(client.post("/v1/detect", headers={**read, "content-type": "application/json"}, content=b"{")) == \
        (400, "invalid_json")
    assert code(client.post("/v1/detect", headers=read, content=b"x" * (21 * 1024 * 1024))) == (413, "too_large")
    assert code(client.get("/v1/nothing", headers=read)) == (404, "not_found")
    assert client.get("/v1/health").json()["status"] == "ok"


def test_openapi_and_metrics(server):
    client, keys, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/verify", "/v1/identify", "/v1/people", "/v1/people/{name}",
            "/v1/people/{name}/faces", "/v1/health"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/identify"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    client.get("/v1/people", headers=bearer(keys["read"]))
    text = client.get("/metrics").text
    assert 'faceprint_requests_total{method="GET",route="/v1/people",status="200"}' in text
    assert "faceprint_request_seconds_bucket" in text and "faceprint_gallery_faces" in text


def test_encryption_at_rest_and_thumbnails(tmp_path, lfw_dir):
    db = tmp_path / "sealed.db"
    env = {"FACEPRINT_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    key = api_key(db, "admin", env=env)
    with faceprint_server(str(db), "--thumbnails", env=env) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/v1/people", json={"name": "Bush"}, headers=bearer(key)).status_code == 201
        r = c.post("/v1/people/Bush/faces", headers=bearer(key), files={"images": _photo(lfw_dir, BUSH, 1)})
        assert r.status_code == 201
        r = c.post("/v1/identify", headers=bearer(key), files={"image": _photo(lfw_dir, BUSH, 2)})
        assert [f["name"] for f in r.json()["faces"]] == ["Bush"]
        thumb = c.get("/v1/people/Bush/thumbnail", headers=bearer(key))
        assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).size[0] > 50
    con = sqlite3.connect(db)
    vector, = con.execute("SELECT vector FROM embeddings").fetchone()
    chip, = con.execute("SELECT chip FROM faces").fetchone()
    assert len(vector) == 512 * 4 + 12 + 16  # nonce + ciphertext + tag: not a float32 vector
    assert not chip.startswith(b"\xff\xd8")  # not a readable JPEG
    assert not (tmp_path / "sealed.db.index").exists()  # the index would hold vectors in the clear
    with pytest.raises(Exception, match="encrypted; set FACEPRINT_ENCRYPTION_KEY"):
        open_store(db)
    other = {"FACEPRINT_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    done = subprocess.run([FACEPRINT, "people", "list", "--db", str(db)], capture_output=True, text=True,
                          env={**os.environ, **other})
    assert done.returncode == 1 and "not the key this gallery was encrypted with" in done.stderr


def test_key_checks_reject_forgeries(tmp_path):
    store = open_store(tmp_path / "k.db")
    key = create_key(store, "k", ["read"])
    from faceprint.gallery.keys import check_key

    assert check_key(store, key).scopes == ("read",)
    assert check_key(store, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert check_key(store, "fp__") is None and check_key(store, "") is None and check_key(store, "garbage") is None
