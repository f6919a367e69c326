"""The REST service against issue 17's probe, over real HTTP with real models and LFW faces: a request
means one thing, every failure is JSON with a stable code, large images stay cheap, a full worker
says busy, and the pages carry their security headers."""

from __future__ import annotations

import base64
import io
import logging
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceprint.imageio import load_image
from faceprint.pipeline import get_pipeline
from faceprint.server.app import Settings, create_app

from .conftest import lfw_image
from .servers import api_key, bearer, faceprint_server, faceprint_server_process

BUSH, POWELL = "George_W_Bush", "Colin_Powell"
#: The probe's image: 6000x6600 (39.6 megapixels, under the 40 MP limit), here with a face in it.
LARGE = (6000, 6600)
FACE_AT, FACE_SIDE = (2500, 3000), 1000


def _file(lfw: Path, name: str, n: int) -> tuple[str, bytes, str]:
    path = lfw_image(lfw, name, n)
    return path.name, path.read_bytes(), "image/jpeg"


def _error(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.json()["error"]["code"], r.json()["error"]["message"]


def _large(lfw: Path, fmt: str) -> bytes:
    """An LFW portrait scaled 4x onto a grey 6000x6600 canvas: a large photo whose face is findable."""
    canvas = Image.new("RGB", LARGE, (200, 200, 200))
    canvas.paste(Image.open(lfw_image(lfw, BUSH, 1)).resize((FACE_SIDE, FACE_SIDE)), FACE_AT)
    buf = io.BytesIO()
    canvas.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory, lfw_dir):
    db = tmp_path_factory.mktemp("hardening") / "gallery.db"
    with faceprint_server(str(db), "--thumbnails") as url, \
            httpx.Client(base_url=url, headers=bearer(api_key(db, "admin")), timeout=300) as client:
        yield client


# -- item 2: each documented field exactly once -----------------------------------------------------
def test_a_field_given_twice_or_unknown_is_refused_naming_it(server, lfw_dir):
    c = server
    bush, powell = _file(lfw_dir, BUSH, 1), _file(lfw_dir, POWELL, 1)
    # the probe's attack: image_a twice, then image_b. The old server compared image_a with itself: same.
    code = _error(c.post("/v1/verify", files=[("image_a", bush), ("image_a", bush), ("image_b", powell)]))
    assert code[:2] == (400, "bad_request") and "'image_a'" in code[2] and "2 times" in code[2]
    # the honest request is answered about the two images it names, in either order
    r = c.post("/v1/verify", files=[("image_b", powell), ("image_a", bush)])
    assert r.status_code == 200 and r.json()["same"] is False
    b64 = base64.b64encode(bush[1]).decode()
    assert c.post("/v1/people", json={"name": "Kept"}).status_code == 201
    refused = [
        ("/v1/detect", {"files": [("image", bush), ("image", powell)]}, "'image'"),
        ("/v1/identify", {"files": [("image", bush), ("image", powell)]}, "'image'"),
        ("/v1/detect", {"files": [("image", bush)], "data": {"note": "plain text"}}, "'note'"),
        ("/v1/identify", {"files": [("image", bush), ("picture", powell)]}, "'picture'"),
        ("/v1/verify", {"files": [("image_a", bush), ("image_b", powell), ("image_c", powell)]}, "'image_c'"),
        ("/v1/people/Kept/faces", {"files": [("images", bush), ("image", powell)]}, "'image'"),
        ("/v1/detect", {"content": f'{{"image": "{b64}", "image": "{b64}"}}'.encode()}, "'image'"),
        ("/v1/verify", {"json": {"image_a": b64, "image_b": b64, "image_c": b64}}, "'image_c'"),
        ("/v1/people/Kept/faces", {"json": {"images": [b64], "name": "Other"}}, "'name'"),
        ("/v1/people", {"content": b'{"name": "A", "name": "B"}'}, "'name'"),
        ("/v1/people", {"json": {"name": "C", "scopes": ["admin"]}}, "'scopes'"),
    ]
    for path, send, named in refused:
        if "content" in send:
            send = {**send, "headers": {"content-type": "application/json"}}
        status, code, message = _error(c.post(path, **send))
        assert (status, code) == (400, "bad_request") and named in message, (path, named, message)
    status, code, message = _error(c.patch("/v1/people/Kept", json={"name": "D", "faces": 3}))
    assert (status, code) == (400, "bad_request") and "'faces'" in message
    # none of it was acted on
    assert c.get("/v1/people").json() == [{"name": "Kept", "faces": 0}]


# -- item 3: every failure is JSON ------------------------------------------------------------------
def test_malformed_images_get_json_errors(server, lfw_dir):
    c = server
    jpeg = lfw_image(lfw_dir, BUSH, 2).read_bytes()
    for body in ({"image": "data:abc"}, {"image": "data:"}):
        assert _error(c.post("/v1/detect", json=body))[:2] == (400, "bad_image")
    r = c.post("/v1/detect", json={"image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    # base64 wrapped in 76-character lines (MIME), as `base64` and many mail tools write it
    r = c.post("/v1/detect", json={"image": base64.encodebytes(jpeg).decode()})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    assert _error(c.post("/v1/detect", files={"image": (None, "text, not a file")}))[:2] == (422, "invalid_request")


def test_an_unexpected_error_is_json_500_logged_once_and_counted(tmp_path, caplog):
    app = create_app(Settings(db=str(tmp_path / "g.db")))

    @app.get("/v1/broken")
    def broken() -> dict:
        raise RuntimeError("secret detail of a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        caplog.set_level(logging.ERROR)
        r = client.get("/v1/broken")
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json()["error"]["code"] == "internal" and "secret" not in r.text and "Traceback" not in r.text
        logged = [rec for rec in caplog.records if rec.exc_info and rec.exc_info[0] is RuntimeError]
        assert len(logged) == 1 and logged[0].name == "faceprint.server"
        assert 'faceprint_requests_total{method="GET",route="/v1/broken",status="500"} 1.0' in client.get("/metrics").text
        assert client.get("/v1/health").status_code == 200


# -- item 10: auth first, names, the pixel limit's message -------------------------------------------
def test_auth_before_body_and_name_rules(server):
    c = server
    anonymous = {"Authorization": "", "content-type": "application/json"}
    for method, path in (("POST", "/v1/people"), ("PATCH", "/v1/people/Kept")):
        r = c.request(method, path, headers=anonymous, content=b'{"name": ')
        assert _error(r)[:2] == (401, "unauthorized"), (method, r.text)
    for name in ("", "   ", "x" * 201, "two\nlines"):
        assert _error(c.post("/v1/people", json={"name": name}))[:2] == (422, "invalid_name"), name
    assert _error(c.post("/v1/people", json={"name": 7}))[:2] == (422, "invalid_request")
    assert _error(c.post("/v1/people", headers={"content-type": "application/json"}, content=b"{"))[:2] == \
        (400, "invalid_json")


def test_an_image_over_pillows_bomb_limit_gets_faceprints_message(server):
    from .test_imageio import raw_png

    for side in (10_000, 14_000):  # 100 MP: Pillow warns; 196 MP: Pillow refuses with its own words
        status, code, message = _error(server.post("/v1/detect", files={"image": ("h.png", raw_png(side, side, 8, 2, None))}))
        assert (status, code) == (413, "too_large") and "over the limit of 40.0" in message, message


# -- item 6: large images decoded reduced, coordinates in the original ------------------------------
def test_a_large_photo_answers_in_its_own_coordinates(server, lfw_dir):
    c = server
    jpeg = _large(lfw_dir, "JPEG")
    reference = get_pipeline().detect(load_image(jpeg))  # every pixel decoded, in this process
    assert len(reference) == 1
    ref_box = np.array(reference[0].box)
    tolerance = 0.03 * FACE_SIDE  # a few pixels on a 1000 px face

    def close(box) -> bool:
        return np.abs(np.array(box) - ref_box).max() < tolerance

    r = c.post("/v1/detect", files={"image": ("big.jpg", jpeg)})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == LARGE
    (face,) = r.json()["faces"]
    assert close(face["box"]), (face["box"], ref_box)
    ref_eye = np.array(reference[0].landmarks["left_eye"])
    assert np.abs(np.array(face["landmarks"]["left_eye"]) - ref_eye).max() < tolerance

    assert c.post("/v1/people", json={"name": "Large"}).status_code == 201
    r = c.post("/v1/people/Large/faces", files={"images": ("big.png", _large(lfw_dir, "PNG"))})
    assert r.status_code == 201, r.text
    (stored,) = c.get("/v1/people/Large").json()["faces"]
    assert close(stored["box"]) and stored["thumbnail"]
    # the thumbnail is the face, cut from the reduced image
    thumb = load_image(c.get("/v1/people/Large/thumbnail").content)
    assert max(thumb.shape[:2]) > 200 and len(get_pipeline().detect(thumb)) == 1
    r = c.post("/v1/identify", files={"image": ("big.jpg", jpeg)})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == LARGE
    (match,) = r.json()["faces"]
    assert match["name"] == "Large" and close(match["box"])
    r = c.post("/v1/identify", files={"image": _file(lfw_dir, BUSH, 3)})
    assert [f["name"] for f in r.json()["faces"]] == ["Large"]  # the enrolment is a good one
    c.delete("/v1/people/Large")


def _peak_rss_mb(pid: int) -> float:
    """The most memory the process has held (VmHWM): no sampling can miss a peak."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def test_16_concurrent_largest_images_keep_a_worker_under_1_gb(tmp_path, lfw_dir):
    png = _large(lfw_dir, "PNG")  # PNG is the costly case: decoded whole, then reduced
    db = tmp_path / "gallery.db"
    key = api_key(db, "read")
    # 3 slots: the most the default gives, whatever the machine's cores
    with faceprint_server_process(str(db), env={"FACEPRINT_CONCURRENCY": "3"}) as (url, proc), \
            httpx.Client(base_url=url, headers=bearer(key), timeout=600) as c:
        answers = []

        def send() -> None:
            answers.append(c.post("/v1/detect", files={"image": ("big.png", png)}))

        clients = [threading.Thread(target=send) for _ in range(16)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        peak = _peak_rss_mb(proc.pid)
    assert [r.status_code for r in answers] == [200] * 16
    assert all(len(r.json()["faces"]) == 1 for r in answers)
    assert peak < 1000, f"worker peaked at {peak:.0f} MB"


def test_past_the_queue_the_answer_is_503_busy(tmp_path, lfw_dir):
    db = tmp_path / "gallery.db"
    key = api_key(db, "read")
    jpeg = lfw_image(lfw_dir, BUSH, 1).read_bytes()
    body = (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--xyz--\r\n")
    finish = threading.Event()

    def slow():  # the first request holds the only slot until told to finish sending its body
        yield body[:100]
        finish.wait(60)
        yield body[100:]

    headers = {**bearer(key), "content-type": "multipart/form-data; boundary=xyz", "content-length": str(len(body))}
    env = {"FACEPRINT_CONCURRENCY": "1", "FACEPRINT_QUEUE": "0"}
    with faceprint_server(str(db), env=env) as url, httpx.Client(base_url=url, timeout=120) as c:
        first: list[httpx.Response] = []
        holder = threading.Thread(target=lambda: first.append(c.post("/v1/detect", headers=headers, content=slow())))
        holder.start()
        deadline = time.monotonic() + 30
        while "faceprint_image_requests 1.0" not in c.get("/metrics").text:
            assert time.monotonic() < deadline, "the first request never reached the image slot"
            time.sleep(0.05)
        r = c.post("/v1/detect", headers=bearer(key), files={"image": ("b.jpg", jpeg)})
        assert _error(r)[:2] == (503, "busy") and r.headers["retry-after"] == "1"
        assert c.get("/v1/health").status_code == 200  # health does not queue behind images
        finish.set()
        holder.join()
        assert first[0].status_code == 200 and len(first[0].json()["faces"]) == 1
        r = c.post("/v1/detect", headers=bearer(key), files={"image": ("b.jpg", jpeg)})
        assert r.status_code == 200
        assert 'route="/v1/detect",status="503"} 1.0' in c.get("/metrics").text


# -- item 9: headers, and docs that need no third-party site ----------------------------------------
def test_security_headers_and_offline_docs(server):
    c = server
    page = c.get("/")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert c.get("/v1/health").headers["x-content-type-options"] == "nosniff"
    docs = c.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(r"url: '([^']+)'", docs.text)
    assert len(urls) >= 4 and not [u for u in urls if "//" in u], urls
    assert "validatorUrl" in docs.text  # Swagger UI would otherwise send the spec to its online validator
    kinds = {u.rsplit(".", 1)[-1]: c.get(u) for u in urls}
    assert all(r.status_code == 200 for r in kinds.values()), {u: r.status_code for u, r in kinds.items()}
    assert "SwaggerUIBundle" in kinds["js"].text and kinds["css"].headers["content-type"].startswith("text/css")
    assert "/v1/verify" in kinds["json"].json()["paths"]
