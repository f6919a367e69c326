"""The REST service: FastAPI routes over one ``Gallery`` per worker process.

Images arrive as multipart uploads or as base64 in JSON; a route takes exactly the fields it
documents, each once, so a request cannot mean two things. Every error is JSON with a stable
``code`` (``{"error": {"code": ..., "message": ...}}``), anything unexpected included (500
``internal``, logged), and bodies or images over the limits are refused before they are decoded.
Image work runs in the thread pool, a few requests at a time (``concurrency``, each holding a
decoded image) with a bounded queue behind them; past it the answer is 503 ``busy``. The gallery
is thread-safe, and each worker's search index follows the database's change log, so workers
(and hosts) sharing one database see each other's enrolments.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from ..analysis import ATTRIBUTES, Analyzer
from ..errors import (BusyError, FaceprintError, GalleryError, ImageError, ImageTooLargeError, InvalidNameError,
                      NoFaceError, PersonExistsError, UnknownPersonError)
from ..gallery import Gallery
from ..gallery.keys import KeyRow, allows, check_key
from ..imageio import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, Decoded, load_reduced
from ..matching import verify_vectors
from ..video.challenge import STEP_SECONDS, STEPS, Challenge, parse_challenge
from ..video.liveness import FPS, judge_frames

log = logging.getLogger("faceprint.server")

#: Environment the app factory reads (``faceprint serve`` sets them for its workers).
ENV = {"db": "FACEPRINT_DB", "max_body": "FACEPRINT_MAX_BODY", "thumbnails": "FACEPRINT_THUMBNAILS",
       "vectors": "FACEPRINT_VECTORS", "concurrency": "FACEPRINT_CONCURRENCY", "queue": "FACEPRINT_QUEUE"}
DEFAULT_MAX_BODY = 20 * 1024 * 1024
#: Image requests at work at once, by default: the cores, at most 3. The costliest image (40
#: megapixels of PNG, decoded whole before it is reduced) holds ~200 MB while at work, so three
#: keep a worker under 1 GB; more would add little speed, as each model call already uses the cores.
DEFAULT_CONCURRENCY = min(os.cpu_count() or 1, 3)
#: Image requests waiting for a slot, per slot, before new ones are turned away busy
QUEUE_PER_SLOT = 8
#: Frames a liveness session takes: at least two, at most 6 s at 25 fps (decoded one at a time).
SESSION_FRAMES = (2, 150)

#: The web page's policy, as a header (a <meta> policy cannot forbid framing): its own inline
#: script and style, requests to this origin only, camera frames and blob/data images.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Settings:
    db: str | None = None  # None: the gallery's default location
    max_body: int = DEFAULT_MAX_BODY  # bytes per request
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked from the header
    thumbnails: bool = False  # keep a face image with each enrolled face (biometric data: off by default)
    vectors: str | None = None  # search index in Milvus (faceprint.gallery.milvus); None: in memory
    concurrency: int = DEFAULT_CONCURRENCY  # image requests at work at once
    queue: int | None = None  # image requests waiting for one of those; None: QUEUE_PER_SLOT per slot

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(db=env.get(ENV["db"]) or None, max_body=int(env.get(ENV["max_body"]) or DEFAULT_MAX_BODY),
                   max_pixels=int(env.get(MAX_PIXELS_ENV) or DEFAULT_MAX_PIXELS),
                   thumbnails=env.get(ENV["thumbnails"], "") in ("1", "true", "yes"),
                   vectors=env.get(ENV["vectors"]) or None,
                   concurrency=max(1, int(env.get(ENV["concurrency"]) or DEFAULT_CONCURRENCY)),
                   queue=int(env[ENV["queue"]]) if env.get(ENV["queue"]) else None)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class _Gate:
    """At most ``slots`` image requests at work and ``queue`` waiting; past that, 503 ``busy``.

    Each request at work holds a decoded image, so the slots bound a worker's memory; the queue
    bounds how long a request waits before it is told to come back (Retry-After) instead.
    """

    def __init__(self, slots: int, queue: int) -> None:
        self._slots, self._limit, self.inside = asyncio.Semaphore(slots), slots + queue, 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if self.inside >= self._limit:
            raise ApiError(503, "busy", "the server is busy with other images; try again shortly")
        self.inside += 1
        try:
            async with self._slots:
                yield
        finally:
            self.inside -= 1


#: faceprint's own errors as HTTP: most specific first
_ERRORS: list[tuple[type[FaceprintError], int, str]] = [
    (NoFaceError, 422, "no_face"),
    (ImageTooLargeError, 413, "too_large"),
    (ImageError, 400, "bad_image"),
    (UnknownPersonError, 404, "unknown_person"),
    (InvalidNameError, 422, "invalid_name"),
    (PersonExistsError, 409, "person_exists"),
    (GalleryError, 409, "gallery_conflict"),
    (BusyError, 503, "busy"),  # the gallery's write lock stayed taken: nothing written, try again
    (FaceprintError, 400, "bad_request"),
]
# 400 comes from Starlette/FastAPI for a body they cannot parse (malformed multipart, too many parts)
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


async def _body_within(request: Request, limit: int) -> bool:
    """Read a body sent without Content-Length (chunked), counting: False once it passes ``limit``.

    Kept on the request, so routes that parse it themselves (FastAPI's JSON models) never read an
    unbounded stream; the middleware hands the cached body on downstream.
    """
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return False
        chunks.append(chunk)
    request._body = b"".join(chunks)
    return True


def _as_api_error(e: FaceprintError) -> ApiError:
    status, code = next((s, c) for t, s, c in _ERRORS if isinstance(e, t))
    return ApiError(status, code, str(e))


# -- request bodies ---------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, never ignored


class ImageJson(_Body):
    image: str = Field(description="The image file, base64-encoded.")


class PairJson(_Body):
    image_a: str
    image_b: str


class ImagesJson(_Body):
    images: list[str] = Field(min_length=1)


class FramesJson(_Body):
    frames: list[str] = Field(min_length=1, description="Video frames in time order, each base64-encoded.")


class PersonJson(_Body):
    name: str = Field(description="A person's name (faceprint.gallery.names: refused with 422 invalid_name)")


Model = TypeVar("Model", bound=_Body)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key given twice would leave it to the parser which one counts."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = next(k for k, n in collections.Counter(k for k, _ in pairs).items() if n > 1)
        raise ApiError(400, "bad_request", f"JSON key {twice!r} is given more than once")
    return obj


async def _json(request: Request, model: type[Model]) -> Model:
    """The body as ``model``: exactly its fields, each once (missing: 422; unknown, twice: 400)."""
    try:
        body = json.loads(await request.body(), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the json module
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    try:
        return model.model_validate(body)
    except ValidationError as e:
        errors = e.errors()
        fields = ", ".join(model.model_fields)
        unknown = [err["loc"][0] for err in errors if err["type"] == "extra_forbidden"]
        if unknown and not any(err["type"] == "missing" for err in errors):
            raise ApiError(400, "bad_request", f"unknown JSON field {unknown[0]!r}; expected {fields}") from None
        first = errors[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise ApiError(422, "invalid_request", f"expected JSON fields {fields}: {where}: {first['msg']}") from None


def _json_body(model: type[Model]) -> Callable[[Request], Awaitable[Model]]:
    """A dependency that parses the body by hand, after the key check (declare it after the key):
    FastAPI's own body parsing would answer malformed JSON before an unauthenticated request."""
    async def parse(request: Request) -> Model:
        if _media_type(request) not in ("application/json", ""):
            raise ApiError(415, "unsupported_media_type", "send application/json")
        return await _json(request, model)
    return parse


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _b64(data: str, what: str) -> bytes:
    """Base64, as a plain string, a ``data:`` URL, or wrapped in lines (MIME)."""
    if data.startswith("data:"):
        _, comma, data = data.partition(",")
        if not comma:
            raise ApiError(400, "bad_image", f"{what}: a data: URL needs a comma before its base64 data")
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_image", f"{what}: not valid base64") from None


async def _images(request: Request, fields: tuple[str, ...], many: str | None = None) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the images in a multipart form (fields ``fields`` once each, or
    ``many`` as often as wanted) or in a JSON body of base64 strings; any other field is refused."""
    ctype = _media_type(request)
    if ctype == "multipart/form-data":
        form = await request.form()
        expected = fields if many is None else (many,)
        for key in expected:
            if key not in form:
                raise ApiError(422, "invalid_request", f"multipart field {key!r} with an image file is required")
        for key, count in collections.Counter(k for k, _ in form.multi_items()).items():
            if key not in expected:
                raise ApiError(400, "bad_request", f"unknown multipart field {key!r}; expected {', '.join(expected)}")
            if count > 1 and many is None:
                raise ApiError(400, "bad_request", f"multipart field {key!r} is given {count} times; send it once")
        found = []
        for key in expected:
            for value in form.getlist(key):
                if not isinstance(value, UploadFile):
                    raise ApiError(422, "invalid_request", f"multipart field {key!r} must be an image file, not text")
                found.append((value.filename or key, await value.read()))
        return found
    if ctype == "application/json":
        model = {"images": ImagesJson, "frames": FramesJson}[many] if many else \
            {("image",): ImageJson, ("image_a", "image_b"): PairJson}[fields]
        parsed = await _json(request, model)
        if many is not None:
            return [(f"{many}[{i}]", _b64(s, f"{many}[{i}]")) for i, s in enumerate(getattr(parsed, many))]
        return [(k, _b64(getattr(parsed, k), k)) for k in fields]
    raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")


def _query_only(request: Request, allowed: tuple[str, ...], once: tuple[str, ...]) -> None:
    """Refuse query parameters a route does not take, and those of ``once`` given twice: FastAPI
    would ignore the first and keep the last of a repeated one."""
    for key, count in collections.Counter(k for k, _ in request.query_params.multi_items()).items():
        if key not in allowed:
            raise ApiError(400, "bad_request", f"unknown query parameter {key!r}; expected {', '.join(allowed)}")
        if key in once and count > 1:
            raise ApiError(400, "bad_request", f"query parameter {key!r} is given more than once; send it once")


# -- authentication ---------------------------------------------------------------------------------
def _need(scope: str) -> Callable[[Request], Awaitable[KeyRow]]:
    async def check(request: Request) -> KeyRow:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not token:
            raise ApiError(401, "unauthorized", "an API key is required (Authorization: Bearer KEY)")
        row = await run_in_threadpool(check_key, request.app.state.gallery.store, token)
        if row is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        if not allows(row, scope):
            raise ApiError(403, "forbidden", f"this key lacks the {scope!r} scope")
        return row
    return check


Read = Annotated[KeyRow, Depends(_need("read"))]
Enroll = Annotated[KeyRow, Depends(_need("enroll"))]
Admin = Annotated[KeyRow, Depends(_need("admin"))]


# -- the app ----------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for one worker (uvicorn ``--factory``: settings from the environment)."""
    settings = settings or Settings.from_env()
    registry = CollectorRegistry()
    requests = Counter("faceprint_requests", "HTTP requests", ["route", "method", "status"], registry=registry)
    latency = Histogram("faceprint_request_seconds", "Request latency", ["route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        gallery = Gallery(settings.db, keep_images=settings.thumbnails, vectors=settings.vectors)
        # load the models and build the index from the database before the first request
        await run_in_threadpool(gallery.pipeline.detect, np.zeros((64, 64, 3), np.uint8))
        await run_in_threadpool(gallery.search, np.zeros((1, gallery.pipeline.embedder.dims), np.float32))
        app.state.gallery = gallery
        app.state.min_side = _decode_side(gallery)
        Gauge("faceprint_gallery_people", "Enrolled people", registry=registry).set_function(
            gallery.store.count_people)
        Gauge("faceprint_gallery_faces", "Enrolled faces", registry=registry).set_function(
            gallery.store.count_faces)
        yield
        gallery.close()

    app = FastAPI(title="faceprint", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Face detection, verification, identification, face analysis and a gallery of "
                              "enrolled people.")
    gate = _Gate(settings.concurrency, QUEUE_PER_SLOT * settings.concurrency if settings.queue is None
                 else settings.queue)
    Gauge("faceprint_image_requests", "Image requests at work or waiting for a slot", registry=registry
          ).set_function(lambda: gate.inside)

    def gallery() -> Gallery:
        return app.state.gallery

    # -- cross-cutting: limits, errors, metrics -----------------------------------------------------
    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        declared = request.headers.get("content-length")
        if (declared and declared.isdigit() and int(declared) > settings.max_body) or \
                (declared is None and not await _body_within(request, settings.max_body)):
            response = _error_response(413, "too_large", f"request body over the limit of {settings.max_body} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception:  # a bug: the client gets JSON without the details, the log gets them once
                log.exception("unexpected error answering %s %s", request.method, request.url.path)
                response = _error_response(500, "internal", "unexpected server error (details in the server log)")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"
        requests.labels(path, request.method, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error_response(e.status, e.code, e.message)

    @app.exception_handler(FaceprintError)
    async def faceprint_error(_: Request, e: FaceprintError) -> JSONResponse:
        err = _as_api_error(e)
        return _error_response(err.status, err.code, err.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return _error_response(e.status_code, _HTTP_CODES.get(e.status_code, "http_error"), str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    async def decode(items: list[tuple[str, bytes]]) -> list[Decoded]:
        return [await run_in_threadpool(load_reduced, data, app.state.min_side, max_pixels=settings.max_pixels,
                                        name=name) for name, data in items]

    # -- routes -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files(__package__).joinpath("static/index.html").read_text(),
                            headers={"Content-Security-Policy": PAGE_POLICY, "Referrer-Policy": "no-referrer"})

    # the API docs, with Swagger UI's files from its Python package: no third-party site involved
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        assets = request.scope.get("root_path", "") + "/docs/assets"
        return get_swagger_ui_html(openapi_url=request.scope.get("root_path", "") + app.openapi_url,
                                   title="faceprint API", swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{assets}/swagger-ui.css",
                                   swagger_favicon_url=f"{assets}/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/v1/health")
    def health() -> dict:
        g = gallery()
        return {"status": "ok", "people": g.store.count_people(), "faces": g.store.count_faces(),
                "embedder": g.pipeline.embedder.name, "database": "sqlite" if g.store.path else "postgresql"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/detect", openapi_extra=_upload_doc(("image",), ImageJson))
    async def detect(request: Request, _: Read) -> dict:
        async with gate():
            (image,) = await decode(await _images(request, ("image",)))
            faces = await run_in_threadpool(gallery().pipeline.detect, image.pixels)
        return {"faces": [f.scaled(image.scale).to_dict() for f in faces], "width": image.width,
                "height": image.height}

    @app.post("/v1/verify", openapi_extra=_upload_doc(("image_a", "image_b"), PairJson))
    async def verify(request: Request, _: Read) -> dict:
        pipe = gallery().pipeline
        vectors = []
        async with gate():
            images = await decode(await _images(request, ("image_a", "image_b")))
            for which, image in zip(("image_a", "image_b"), images, strict=True):
                try:
                    vectors.append((await run_in_threadpool(pipe.embed_one, image.pixels)).vector)
                except NoFaceError:
                    raise ApiError(422, "no_face", f"{which}: no face found") from None
        v = verify_vectors(*vectors, pipe.threshold, pipe.embedder.name, "cosine")
        return {k: v.to_dict()[k] for k in ("same", "distance", "threshold", "embedder")}

    @app.post("/v1/identify", openapi_extra=_upload_doc(("image",), ImageJson))
    async def identify(request: Request, _: Read) -> dict:
        async with gate():
            (image,) = await decode(await _images(request, ("image",)))
            matches = await run_in_threadpool(gallery().identify, image.pixels)
        return {"faces": [replace(m, face=m.face.scaled(image.scale)).to_dict() for m in matches],
                "width": image.width, "height": image.height}

    async def analysed(request: Request, analyzer: Analyzer) -> dict:
        """The answer of the analysis routes: every face of the request's image through ``analyzer``."""
        async with gate():
            (image,) = await decode(await _images(request, ("image",)))
            faces = await run_in_threadpool(gallery().pipeline.detect, image.pixels)
            found = await run_in_threadpool(analyzer.analyze, image.pixels, faces)
        return {"faces": [a.scaled(image.scale).to_dict() for a in found], "width": image.width,
                "height": image.height}

    @app.post("/v1/analyze", openapi_extra=_upload_doc(("image",), ImageJson))
    async def analyze(request: Request, _: Read,
                      only: Annotated[str | None, Query(description=f"comma-separated: {','.join(ATTRIBUTES)}")] = None,
                      model: Annotated[list[str] | None, Query(description="ATTRIBUTE=MODEL, repeatable")] = None
                      ) -> dict:
        """Every face with the attributes asked for; one whose model is unavailable is in its ``errors``."""
        _query_only(request, ("only", "model"), once=("only",))
        return await analysed(request, Analyzer(only, model))  # an unknown attribute or model: 400 before any image

    @app.post("/v1/liveness", openapi_extra=_upload_doc(("image",), ImageJson))
    async def liveness(request: Request, _: Read,
                       model: Annotated[str | None, Query(description="the liveness model (default fr-liveness)")] = None
                       ) -> dict:
        """Every face with its p(live) and verdict; a model that is unavailable is in the face's ``errors``."""
        _query_only(request, ("model",), once=("model",))
        return await analysed(request, Analyzer("liveness", {"liveness": model} if model else None))

    @app.post("/v1/liveness/session", openapi_extra=_upload_doc(("frames",), FramesJson, many=True))
    async def liveness_session(
            request: Request, _: Read,
            fps: Annotated[float, Query(gt=0, le=120, description="frames per second they were taken at")] = FPS,
            challenge: Annotated[str | None, Query(
                description=f"steps the person was asked to do, in order: comma-separated {', '.join(STEPS)}")] = None,
            step_seconds: Annotated[float, Query(gt=0, le=60, description="seconds each step may take")]
            = STEP_SECONDS) -> dict:
        """Video liveness on 2-150 frames of one person in time order (the largest face of each): live,
        spoof, undecided, or failed (a challenge step not done in time), and why. ~3 s at 15-30 fps."""
        _query_only(request, ("fps", "challenge", "step_seconds"), once=("fps", "challenge", "step_seconds"))
        steps = parse_challenge(challenge)  # an unknown step: 400 before any image
        async with gate():
            items = await _images(request, (), many="frames")
            if not SESSION_FRAMES[0] <= len(items) <= SESSION_FRAMES[1]:
                raise ApiError(413 if len(items) > SESSION_FRAMES[1] else 422, "frame_count",
                               f"a session takes {SESSION_FRAMES[0]} to {SESSION_FRAMES[1]} frames, not {len(items)}")
            first: list[Decoded] = []

            def frames() -> Iterator[np.ndarray]:  # decoded one at a time: a worker holds one frame
                for name, data in items:
                    image = load_reduced(data, app.state.min_side, max_pixels=settings.max_pixels, name=name)
                    if not first:
                        first.append(image)
                    elif (image.width, image.height) != (first[0].width, first[0].height):
                        raise ApiError(422, "frame_size", f"{name} is {image.width}x{image.height}, not "
                                       f"{first[0].width}x{first[0].height} like the first frame")
                    yield image.pixels

            session = await run_in_threadpool(judge_frames, frames(), gallery().pipeline.detect, fps=fps,
                                              challenge=Challenge(steps, step_seconds) if steps else None)
        return {"verdict": session.verdict, "reason": session.reason, "frames": session.frames,
                "frames_with_face": session.with_face, "face": session.face.scaled(first[0].scale).to_dict(),
                "width": first[0].width, "height": first[0].height}

    @app.get("/v1/people")
    def people(_: Read) -> list[dict]:
        return [{"name": p["name"], "faces": p["faces"]} for p in gallery().people()]

    person_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": PersonJson.model_json_schema()}}}}

    @app.post("/v1/people", status_code=201, openapi_extra=person_body)
    def create_person(_: Enroll, body: Annotated[PersonJson, Depends(_json_body(PersonJson))]) -> dict:
        return {"name": gallery().add_person(body.name), "faces": 0}

    @app.get("/v1/people/{name}")
    def person(name: str, _: Read) -> dict:
        faces = gallery().faces(name)
        return {"name": name, "faces": [{"id": f.id, "source": f.source, "image_sha256": f.image_sha256,
                                         "box": f.box, "detector": f.detector, "thumbnail": bool(f.chip)}
                                        for f in faces]}

    @app.patch("/v1/people/{name}", openapi_extra=person_body)
    def rename(name: str, _: Enroll, body: Annotated[PersonJson, Depends(_json_body(PersonJson))]) -> dict:
        return {"name": gallery().rename(name, body.name), "renamed_from": name}

    @app.delete("/v1/people/{name}")
    def delete(name: str, _: Admin) -> dict:
        return {"removed": name, **asdict(gallery().remove(name))}

    @app.get("/v1/people/{name}/thumbnail", responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(name: str, _: Read) -> Response:
        jpeg = gallery().thumbnail(name)
        if jpeg is None:
            raise ApiError(404, "no_thumbnail", f"no face image is kept for {name!r} (thumbnails are off)")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.post("/v1/people/{name}/faces", openapi_extra=_upload_doc(("images",), ImagesJson, many=True))
    async def enroll(name: str, request: Request, _: Enroll) -> JSONResponse:
        g = gallery()
        enrolled, already, failed = [], 0, []
        async with gate():
            items = await _images(request, (), many="images")
            if not g.store.has_person(name):
                raise ApiError(404, "unknown_person", f"no person named {name!r} (create it with POST /v1/people)")
            for label, data in items:
                try:
                    fid = await run_in_threadpool(g.enroll, name, data, source=label, create=False,
                                                  min_side=app.state.min_side)
                except (ImageError, NoFaceError) as e:
                    err = _as_api_error(e)
                    failed.append({"path": label, "error": err.message, "code": err.code, "status": err.status})
                    continue
                if fid is None:
                    already += 1
                else:
                    enrolled.append(fid)
        if failed and not enrolled and not already:
            first = failed[0]
            raise ApiError(first["status"], first["code"], first["error"])
        return JSONResponse({"enrolled": len(enrolled), "already_enrolled": already, "faces": enrolled,
                             "failed": [{k: f[k] for k in ("path", "error", "code")} for f in failed]},
                            status_code=201 if enrolled else 200)

    return app


def _decode_side(gallery: Gallery) -> int | None:
    """The long side images are decoded at, at least: where the detector's smallest face still
    covers the embedder's input (no detail is lost); None where the detector needs every pixel."""
    pipe = gallery.pipeline
    fraction = pipe.detector.min_face_fraction
    return math.ceil(pipe.embedder.size / fraction) if fraction else None


def _upload_doc(fields: tuple[str, ...], json_model: type[BaseModel], many: bool = False) -> dict[str, Any]:
    """OpenAPI for routes that read their body by hand: multipart files (``many``: repeated) or base64 JSON."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}} if many else \
        {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": list(fields),
                                           "properties": {f: files for f in fields}}},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}
