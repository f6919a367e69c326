"""The REST service: FastAPI routes over one ``Gallery`` per worker process.

Images arrive as multipart uploads or as base64 in JSON. Every error is JSON with a stable
``code`` (``{"error": {"code": ..., "message": ...}}``), and bodies or images over the limits are
refused before they are decoded. Model work runs in the thread pool; the gallery is thread-safe,
and each worker's search index follows the database's change log, so workers (and hosts) sharing
one database see each other's enrolments.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import (BusyError, FaceprintError, GalleryError, ImageError, ImageTooLargeError, InvalidNameError,
                      NoFaceError, PersonExistsError, UnknownPersonError)
from ..gallery import Gallery
from ..gallery.store import KeyRow
from ..imageio import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, load_image
from ..matching import verify_vectors
from .auth import allows, check_key

#: Environment the app factory reads (``faceprint serve`` sets them for its workers).
ENV = {"db": "FACEPRINT_DB", "max_body": "FACEPRINT_MAX_BODY", "thumbnails": "FACEPRINT_THUMBNAILS",
       "vectors": "FACEPRINT_VECTORS"}
DEFAULT_MAX_BODY = 20 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    db: str | None = None  # None: the gallery's default location
    max_body: int = DEFAULT_MAX_BODY  # bytes per request
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked from the header
    thumbnails: bool = False  # keep a face image with each enrolled face (biometric data: off by default)
    vectors: str | None = None  # search index in Milvus (faceprint.gallery.milvus); None: in memory

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(db=env.get(ENV["db"]) or None, max_body=int(env.get(ENV["max_body"]) or DEFAULT_MAX_BODY),
                   max_pixels=int(env.get(MAX_PIXELS_ENV) or DEFAULT_MAX_PIXELS),
                   thumbnails=env.get(ENV["thumbnails"], "") in ("1", "true", "yes"),
                   vectors=env.get(ENV["vectors"]) or None)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


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
#: sent with every 503: when a client may try again, in seconds
RETRY_AFTER = "1"
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
class ImageJson(BaseModel):
    image: str = Field(description="The image file, base64-encoded.")


class PairJson(BaseModel):
    image_a: str
    image_b: str


class ImagesJson(BaseModel):
    images: list[str] = Field(min_length=1)


class PersonJson(BaseModel):
    name: str = Field(description="A person's name (faceprint.gallery.names: refused with 422 invalid_name)")


def _b64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_image", f"{what}: not valid base64") from None


async def _images(request: Request, fields: tuple[str, ...], many: str | None = None) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the images in a multipart form (fields ``fields``, or every ``many``
    file) or in a JSON body of base64 strings."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        found = []
        for key in fields if many is None else (many,):
            files = [v for v in form.getlist(key) if isinstance(v, UploadFile)]
            if not files:
                raise ApiError(422, "invalid_request", f"multipart field {key!r} with an image file is required")
            found += [(f.filename or key, await f.read()) for f in files]
        return found
    if ctype == "application/json":
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deep for the json module
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        model = {("image",): ImageJson, ("image_a", "image_b"): PairJson}.get(fields, ImagesJson)
        try:
            parsed = model.model_validate(body)
        except Exception as e:  # pydantic's ValidationError
            raise ApiError(422, "invalid_request", f"expected JSON fields {', '.join(model.model_fields)}: "
                           f"{str(e).splitlines()[0]}") from None
        if many is not None:
            return [(f"images[{i}]", _b64(s, f"images[{i}]")) for i, s in enumerate(parsed.images)]
        return [(k, _b64(getattr(parsed, k), k)) for k in fields]
    raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")


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
        Gauge("faceprint_gallery_people", "Enrolled people", registry=registry).set_function(
            gallery.store.count_people)
        Gauge("faceprint_gallery_faces", "Enrolled faces", registry=registry).set_function(
            gallery.store.count_faces)
        yield
        gallery.close()

    app = FastAPI(title="faceprint", version="1", lifespan=lifespan,
                  description="Face detection, verification, identification and a gallery of enrolled people.")

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
            response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"
        requests.labels(path, request.method, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return _error_response(e.status, e.code, e.message, headers)

    @app.exception_handler(FaceprintError)
    async def faceprint_error(_: Request, e: FaceprintError) -> JSONResponse:
        err = _as_api_error(e)
        return _error_response(err.status, err.code, err.message,
                               {"Retry-After": RETRY_AFTER} if err.status == 503 else None)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return _error_response(e.status_code, _HTTP_CODES.get(e.status_code, "http_error"), str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    async def decode(items: list[tuple[str, bytes]]) -> list[np.ndarray]:
        return [await run_in_threadpool(load_image, data, max_pixels=settings.max_pixels, name=name)
                for name, data in items]

    # -- routes -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files(__package__).joinpath("static/index.html").read_text())

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
        (image,) = await decode(await _images(request, ("image",)))
        faces = await run_in_threadpool(gallery().pipeline.detect, image)
        return {"faces": [f.to_dict() for f in faces], "width": image.shape[1], "height": image.shape[0]}

    @app.post("/v1/verify", openapi_extra=_upload_doc(("image_a", "image_b"), PairJson))
    async def verify(request: Request, _: Read) -> dict:
        images = await decode(await _images(request, ("image_a", "image_b")))
        pipe = gallery().pipeline
        vectors = []
        for which, image in zip(("image_a", "image_b"), images):
            try:
                vectors.append((await run_in_threadpool(pipe.embed_one, image)).vector)
            except NoFaceError:
                raise ApiError(422, "no_face", f"{which}: no face found") from None
        v = verify_vectors(*vectors, pipe.threshold, pipe.embedder.name, "cosine")
        return {k: v.to_dict()[k] for k in ("same", "distance", "threshold", "embedder")}

    @app.post("/v1/identify", openapi_extra=_upload_doc(("image",), ImageJson))
    async def identify(request: Request, _: Read) -> dict:
        (image,) = await decode(await _images(request, ("image",)))
        matches = await run_in_threadpool(gallery().identify, image)
        return {"faces": [m.to_dict() for m in matches], "width": image.shape[1], "height": image.shape[0]}

    @app.get("/v1/people")
    def people(_: Read) -> list[dict]:
        return [{"name": p["name"], "faces": p["faces"]} for p in gallery().people()]

    @app.post("/v1/people", status_code=201)
    def create_person(body: PersonJson, _: Enroll) -> dict:
        return {"name": gallery().add_person(body.name), "faces": 0}

    @app.get("/v1/people/{name}")
    def person(name: str, _: Read) -> dict:
        faces = gallery().faces(name)
        return {"name": name, "faces": [{"id": f.id, "source": f.source, "image_sha256": f.image_sha256,
                                         "box": f.box, "detector": f.detector, "thumbnail": bool(f.chip)}
                                        for f in faces]}

    @app.patch("/v1/people/{name}")
    def rename(name: str, body: PersonJson, _: Enroll) -> dict:
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

    @app.post("/v1/people/{name}/faces", openapi_extra=_upload_doc(("images",), ImagesJson))
    async def enroll(name: str, request: Request, _: Enroll) -> JSONResponse:
        items = await _images(request, (), many="images")
        g = gallery()
        if not g.store.has_person(name):
            raise ApiError(404, "unknown_person", f"no person named {name!r} (create it with POST /v1/people)")
        enrolled, already, failed = [], 0, []
        for label, data in items:
            try:
                fid = await run_in_threadpool(lambda: g.enroll(name, data, source=label, create=False))
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


def _upload_doc(fields: tuple[str, ...], json_model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for routes that read their body by hand: multipart files or base64 JSON."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}} if fields == ("images",) else \
        {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": list(fields),
                                           "properties": {f: files for f in fields}}},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}
