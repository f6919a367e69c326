"""The ``faceprint`` command: enrol, verify, identify and detect from the shell.

Every command prints for people by default and JSON with ``--json``. Batch commands carry on past
bad files, list them at the end and exit 1; nothing stored is lost if a run is killed mid-way,
because each enrolment is its own transaction.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import zoo
from .batch import BATCH_SIZE
from .detection import DEFAULT_DETECTOR, detector_names
from .embedding import DEFAULT_EMBEDDER, embedder_names
from .errors import FaceprintError, about
from .gallery import Gallery
from .imageio import load_image, save_image
from .matching import verify_vectors
from .pipeline import get_pipeline

T = TypeVar("T")
R = TypeVar("R")

app = typer.Typer(help="Face recognition: detect, align, embed, match.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="List, fetch and verify pretrained models.", no_args_is_help=True)
people_app = typer.Typer(help="Manage enrolled people.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(people_app, name="people")

out = Console()
err = Console(stderr=True, soft_wrap=True)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

DbOpt = Annotated[Optional[str], typer.Option(
    "--db", help="Gallery: a SQLite file or a postgresql:// URL (default $FACEPRINT_DB or the user data dir).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DetOpt = Annotated[str, typer.Option("--detector", "-d", help=f"One of: {', '.join(detector_names())}.")]
EmbOpt = Annotated[str, typer.Option("--embedder", "-e", help=f"One of: {', '.join(embedder_names())}.")]
GalleryEmbOpt = Annotated[Optional[str], typer.Option(
    "--embedder", "-e", help="Embedder (default: the one the gallery was built with).")]
VectorsOpt = Annotated[Optional[str], typer.Option(
    "--vectors", envvar="FACEPRINT_VECTORS", show_envvar=False,
    help="Search index in Milvus: a Milvus Lite path ending in .db, or http://host:19530 "
         "(default $FACEPRINT_VECTORS, else in memory). See docs/server-milvus.md.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # "faceprint[ray]" is no markup
    raise typer.Exit(1)


def _run(fn: Callable[[], None]) -> None:
    """Turn faceprint's own errors into one line and exit 1; anything else is a bug and shows a traceback."""
    try:
        fn()
    except FaceprintError as e:
        _fail(str(e))


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _progress(json_mode: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=json_mode or not err.is_terminal)


def _report_failures(failures: list[tuple[str, str]], json_mode: bool) -> None:
    if failures:
        if not json_mode:
            err.print(f"[bold red]{len(failures)} file(s) failed:[/]")
            for path, why in failures:
                err.print(f"  {path}: {why}", highlight=False)
        raise typer.Exit(1)


def _each_image(items: Iterable[T], fn: Callable[[T], R], json_mode: bool, what: str,
                path: Callable[[T], Path] = lambda item: item) -> tuple[list[tuple[T, R]], list[tuple[str, str]]]:
    """Apply ``fn`` to every item, carrying on past failures, which come back as (path, reason)."""
    items = list(items)
    done, failures = [], []
    with _progress(json_mode) as bar:
        task = bar.add_task(what, total=len(items))
        for item in items:
            try:
                done.append((item, fn(item)))
            except FaceprintError as e:
                failures.append((str(path(item)), _strip_path(str(e), path(item))))
            bar.advance(task)
    return done, failures


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _print_per_image(done: list[tuple[Path, list]], failures: list[tuple[str, str]]) -> None:
    """detect's and identify's --json: one entry per image, its faces or its error."""
    _print_json([{"path": str(p), "faces": [f.to_dict() for f in found]} for p, found in done]
                + [{"path": p, "error": e} for p, e in failures])


def _draw_target(out_arg: Path, source: Path, many: bool) -> Path:
    if not many and out_arg.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}:
        return out_arg
    out_arg.mkdir(parents=True, exist_ok=True)
    return out_arg / f"{source.stem}.jpg"


# -- models ---------------------------------------------------------------------------------
@models_app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """Every model in the zoo: kind, size, licence, source, cached or not."""
    rows = [
        {"name": s.name, "kind": s.kind, "cached": s.cached, "size_bytes": s.size, "licence": s.licence,
         "summary": s.summary, "input": s.input, "threshold": s.threshold, "sources": s.sources}
        for s in zoo.specs()
    ]
    if json_out:
        return _print_json(rows)
    t = Table("name", "kind", "size", "licence", "cached", "what")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.1f} MB" if r["size_bytes"] else "-"
        t.add_row(r["name"], r["kind"], size, r["licence"], "yes" if r["cached"] else "no", r["summary"])
    out.print(t)


@models_app.command("fetch")
def models_fetch(names: Annotated[Optional[list[str]], typer.Argument(help="Models to fetch (default all).")] = None,
                 force: Annotated[bool, typer.Option(
                     "--force", help="Download again even if cached and redo the conversions: "
                                     "the fix for a file that `models verify` or a load refused.")] = False,
                 ) -> None:
    """Download, verify and convert models into the cache (then everything works offline)."""
    def go() -> None:
        specs = [zoo.get(n) for n in names] if names else zoo.specs()
        fix = " ".join(["faceprint models fetch --force", *(names or [])])
        zoo.fetch([f for s in specs for f in s.files.values()], progress=err.is_terminal, force=force, fix=fix)
        for s in specs:
            _load_model(s)  # converts on first load, so using the cache later needs no write access
            out.print(f"{s.name}: cached ({', '.join(s.sources)})", highlight=False)
    _run(go)


def _load_model(spec: zoo.ModelSpec) -> None:
    from .detection import get_detector
    from .embedding import get_embedder

    (get_detector if spec.kind == "detector" else get_embedder)(spec.name)


@models_app.command("verify")
def models_verify(json_out: JsonOpt = False) -> None:
    """Re-hash every cached model file and conversion, and run each embedder's known-answer self-test."""
    from .zoo import selftest

    status = {None: "missing", True: "ok", False: "CORRUPT"}
    results, seen = [], set()
    for s in zoo.specs():
        for f in s.files.values():
            results.append({"model": s.name, "file": f.member, "status": status[zoo.verify(f)]})
            for stamp in zoo.converted_from(f.sha256):
                if stamp.suffix == ".json" and stamp not in seen:
                    seen.add(stamp)
                    results.append({"model": s.name, "file": f"converted/{stamp.stem}", **_conversion_status(stamp)})
    for s in zoo.specs("embedder"):
        row = {"model": s.name, "file": "self-test", "status": "missing"}
        if s.cached:
            try:
                d = selftest.distance(s.name)
                row.update(status="ok" if d <= selftest.TOLERANCE else "FAILED",
                           detail=f"cosine distance {d:.1e} to the reference (at most {selftest.TOLERANCE:g})")
            except FaceprintError as e:
                row.update(status="FAILED", detail=str(e))
        results.append(row)
    if json_out:
        _print_json(results)
    else:
        for r in results:
            detail = f"  {r['detail']}" if "detail" in r else ""
            out.print(f"{r['status']:9} {r['model']:22} {r['file']}{detail}", highlight=False, soft_wrap=True)
    bad = sorted({r["model"] for r in results if r["status"] in {"CORRUPT", "FAILED"}})
    if bad:
        err.print(f"damaged: {', '.join(bad)}; run `faceprint models fetch --force {' '.join(bad)}`", highlight=False)
        raise typer.Exit(1)


def _conversion_status(stamp: Path) -> dict:
    """A conversion whose file is gone is ``missing``: it is made again on next use."""
    try:
        return {"status": "ok" if zoo.checked_conversion(stamp, fresh=True) else "missing"}
    except FaceprintError as e:
        return {"status": "CORRUPT", "detail": str(e)}


# -- one-shot commands ----------------------------------------------------------------------
@app.command()
def detect(images: Annotated[list[Path], typer.Argument(help="Image files.")],
           draw: Annotated[Optional[Path], typer.Option(help="Write annotated image(s) here (file or folder).")] = None,
           detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """Find every face: box, score, landmarks."""
    def go() -> None:
        pipe = get_pipeline(detector)

        def one(path: Path) -> list:
            image = load_image(path)
            faces = pipe.detect(image)
            if draw:
                from .draw import draw_faces
                save_image(_draw_target(draw, path, len(images) > 1), draw_faces(image, faces))
            return faces

        done, failures = _each_image(images, one, json_out, "detecting")
        if json_out:
            _print_per_image(done, failures)
        else:
            for p, faces in done:
                out.print(f"{p}: {len(faces)} face(s)", highlight=False)
                for f in faces:
                    x1, y1, x2, y2 = f.box
                    out.print(f"  box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score={f.score:.3f}", highlight=False)
        _report_failures(failures, json_out)
    _run(go)


@app.command()
def verify(image_a: Path, image_b: Path, detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
           threshold: Annotated[Optional[float], typer.Option(help="Cosine-distance threshold (default: calibrated).")] = None,
           metric: Annotated[str, typer.Option(help="Report distances as 'cosine' or 'euclidean'.")] = "cosine",
           json_out: JsonOpt = False) -> None:
    """Are the (largest) faces in two photos the same person?"""
    def go() -> None:
        pipe = get_pipeline(detector, embedder)
        pipe.embedder  # load the model first, so a bad model name is not blamed on an image
        a, b = (_embed_one(pipe, p) for p in (image_a, image_b))
        if metric not in ("cosine", "euclidean"):
            raise FaceprintError(f"unknown metric {metric!r}; use cosine or euclidean")
        v = verify_vectors(a, b, pipe.threshold if threshold is None else threshold, pipe.embedder.name, metric)
        if json_out:
            return _print_json({k: v.to_dict()[k] for k in ("same", "distance", "threshold", "embedder")})
        verdict = "[green]same person[/]" if v.same else "[yellow]different people[/]"
        out.print(f"{verdict} ({metric} distance {v.distance:.3f}, threshold {v.threshold:.3f}, {v.embedder})")
    _run(go)


def _embed_one(pipe, path: Path):
    try:
        return pipe.embed_one(load_image(path)).vector
    except FaceprintError as e:
        raise about(path, e) from None


@app.command()
def identify(images: Annotated[list[Path], typer.Argument(help="Image files.")], db: DbOpt = None,
             draw: Annotated[Optional[Path], typer.Option(help="Write image(s) with boxes and names here.")] = None,
             detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
             threshold: Annotated[Optional[float], typer.Option(
                 help="Cosine-distance threshold (default: the embedder's identification threshold).")] = None,
             json_out: JsonOpt = False, vectors: VectorsOpt = None) -> None:
    """Name every face in each image against the gallery (null/unknown when nobody is close enough)."""
    def go() -> None:
        with Gallery(db, detector=detector, embedder=embedder, threshold=threshold, vectors=vectors) as gallery:
            def one(path: Path) -> list:
                image = load_image(path)
                matches = gallery.identify(image)
                if draw:
                    from .draw import draw_faces
                    labels = [m.name or "unknown" for m in matches]
                    save_image(_draw_target(draw, path, len(images) > 1),
                               draw_faces(image, [m.face for m in matches], labels))
                return matches

            done, failures = _each_image(images, one, json_out, "identifying")
        if json_out:
            _print_per_image(done, failures)
        else:
            for p, ms in done:
                out.print(f"{p}: {len(ms)} face(s)", highlight=False)
                for m in ms:
                    d = "-" if m.distance is None else f"{m.distance:.3f}"
                    out.print(f"  {m.name or 'unknown':24} distance={d} box={[round(v) for v in m.face.box]}",
                              highlight=False)
        _report_failures(failures, json_out)
    _run(go)


# -- gallery --------------------------------------------------------------------------------
def _enrol_jobs(paths: list[Path], name: Optional[str]) -> list[tuple[str, Path]]:
    if name:
        return [(name, p) for p in paths]
    jobs = []
    for root in paths:
        if not root.is_dir():
            raise FaceprintError(f"{root}: not a folder of PERSON/ subfolders (use --name NAME for single images)")
        for person in sorted(d for d in root.iterdir() if d.is_dir()):
            jobs += [(person.name, f) for f in sorted(person.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return jobs


@app.command()
def enroll(paths: Annotated[list[Path], typer.Argument(help="Folders of PERSON/*.jpg, or images with --name.")],
           name: Annotated[Optional[str], typer.Option(help="Enrol the given images as this person.")] = None,
           db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
           json_out: JsonOpt = False) -> None:
    """Add people to the gallery from photos (the largest face in each photo)."""
    def go() -> None:
        jobs = _enrol_jobs(paths, name)
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            done, failures = _each_image(jobs, lambda job: gallery.enroll(*job), json_out, "enrolling",
                                         path=lambda job: job[1])
            added = sum(1 for _, fid in done if fid is not None)
            summary = {"enrolled": added, "already_enrolled": len(done) - added,
                       "people": len({n for (n, _), _ in done}),
                       "failed": [{"path": p, "error": e} for p, e in failures], "db": gallery.location}
        if json_out:
            _print_json(summary)
        else:
            out.print(f"enrolled {added} face(s) of {summary['people']} people into {summary['db']}"
                      + (f" ({summary['already_enrolled']} already there)" if summary["already_enrolled"] else ""),
                      highlight=False)
        _report_failures(failures, json_out)
    _run(go)


@app.command()
def reindex(embedder: Annotated[str, typer.Option("--embedder", "-e", help="Embedder to switch the gallery to.")],
            db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Re-embed every stored face with another embedder (all faces or none)."""
    def go() -> None:
        with Gallery(db) as gallery, _progress(json_out) as bar:
            task = bar.add_task("re-embedding", total=None)
            n = gallery.reindex(embedder, lambda i, total: bar.update(task, completed=i, total=total))
        if json_out:
            _print_json({"faces": n, "embedder": embedder})
        else:
            out.print(f"re-embedded {n} face(s) with {embedder}")
    _run(go)


@people_app.command("list")
def people_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Everyone enrolled, with face counts."""
    def go() -> None:
        with Gallery(db) as g:
            people = [{"name": p["name"], "faces": p["faces"]} for p in g.people()]
        if json_out:
            return _print_json(people)
        t = Table("name", "faces")
        for p in people:
            t.add_row(p["name"], str(p["faces"]))
        out.print(t)
        out.print(f"{len(people)} people")
    _run(go)


@people_app.command("show")
def people_show(name: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """One person's enrolled faces."""
    def go() -> None:
        with Gallery(db) as g:
            faces = [{"id": f.id, "source": f.source, "image_sha256": f.image_sha256, "box": f.box,
                      "detector": f.detector} for f in g.faces(name)]
        if json_out:
            return _print_json({"name": name, "faces": faces})
        out.print(f"{name}: {len(faces)} face(s)", highlight=False)
        for f in faces:
            out.print(f"  #{f['id']} {f['source']} box={[round(v) for v in f['box']]}", highlight=False)
    _run(go)


@people_app.command("rename")
def people_rename(old: str, new: str, db: DbOpt = None) -> None:
    """Rename a person."""
    def go() -> None:
        with Gallery(db) as g:
            g.rename(old, new)
        out.print(f"renamed {old} -> {new}", highlight=False)
    _run(go)


@people_app.command("remove")
def people_remove(name: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a person and every face and embedding stored for them."""
    def go() -> None:
        with Gallery(db) as g:
            gone = g.remove(name)
        if json_out:
            return _print_json({"removed": name, **dataclasses.asdict(gone)})
        out.print(f"removed {name}: {gone.faces} face(s), {gone.embeddings} embedding(s), {gone.images} face image(s)",
                  highlight=False)
    _run(go)


# -- service --------------------------------------------------------------------------------
keys_app = typer.Typer(help="API keys for `faceprint serve`: stored as hashes, each with scopes.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the service to the network.")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          db: DbOpt = None,
          workers: Annotated[int, typer.Option(help="Worker processes (each loads the models).")] = 1,
          thumbnails: Annotated[bool, typer.Option(
              "--thumbnails/--no-thumbnails", help="Keep a face image with each enrolled face.")] = False,
          max_body_mb: Annotated[float, typer.Option(help="Largest request body accepted, in MB.")] = 20.0,
          vectors: VectorsOpt = None) -> None:
    """Run the REST service and its web page (API docs at /docs)."""
    def go() -> None:
        try:
            import uvicorn
        except ImportError:
            raise FaceprintError("the service needs its extras: pip install 'faceprint[server]'") from None
        from .gallery import Gallery
        from .server.app import ENV

        if vectors and workers > 1:
            from .gallery.milvus import is_lite

            if is_lite(vectors):
                raise FaceprintError("Milvus Lite serves one process: use --workers 1, or run `milvus-lite server "
                                     "--data-dir PATH` and --vectors http://127.0.0.1:19530 (docs/server-milvus.md)")
        with Gallery(db, vectors=vectors):  # a bad URL, wrong key or locked file fails here, not in each worker
            pass
        os.environ.update({ENV["max_body"]: str(int(max_body_mb * 1024 * 1024)),
                           ENV["thumbnails"]: "1" if thumbnails else "0", **({ENV["db"]: db} if db else {}),
                           **({ENV["vectors"]: vectors} if vectors else {})})
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(f"[yellow]warning:[/] listening on {host}: reachable from the network; "
                      "put TLS in front of it (API keys travel in headers)")
        uvicorn.run("faceprint.server.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info")
    _run(go)


ScopeOpt = Annotated[list[str], typer.Option("--scope", "-s", help="read, enroll or admin; repeat for several.")]


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")], scope: ScopeOpt,
                db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Make a key; it is printed once and only its hash is stored."""
    def go() -> None:
        from .server.auth import create_key

        with Gallery(db) as g:
            key = create_key(g.store, name, scope)
        if json_out:
            return _print_json({"key": key, "id": key.split("_")[1], "name": name, "scopes": scope})
        out.print(key, highlight=False, soft_wrap=True)
        err.print("store it now: it cannot be shown again")
    _run(go)


@keys_app.command("list")
def keys_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Every key: id, name, scopes, created, revoked (never the key)."""
    def go() -> None:
        with Gallery(db) as g:
            rows = [{"id": k.id, "name": k.name, "scopes": list(k.scopes), "created": k.created,
                     "revoked": k.revoked} for k in g.store.keys()]
        if json_out:
            return _print_json(rows)
        t = Table("id", "name", "scopes", "created", "revoked")
        for r in rows:
            t.add_row(r["id"], r["name"], " ".join(r["scopes"]), _when(r["created"]),
                      _when(r["revoked"]) if r["revoked"] else "")
        out.print(t)
    _run(go)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
                db: DbOpt = None) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    def go() -> None:
        with Gallery(db) as g:
            if not g.store.revoke_key(key_id):
                raise FaceprintError(f"no live key with id {key_id!r}")
        out.print(f"revoked {key_id}", highlight=False)
    _run(go)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


# -- video ----------------------------------------------------------------------------------
SourceArg = Annotated[str, typer.Argument(help="A video file, a camera index (0) or a stream URL (rtsp://, http://).")]


def _window(show: bool) -> Callable[[np.ndarray], None] | None:
    """A function that shows a frame in a window, or None (with the reason said) when there can be none."""
    if not show:
        return None
    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        err.print("[yellow]--show:[/] no display here (DISPLAY is not set); carrying on without a window")
        return None
    try:
        cv2.namedWindow("faceprint", cv2.WINDOW_NORMAL)
    except cv2.error:
        err.print("[yellow]--show:[/] this OpenCV build has no window support (opencv-python-headless); "
                  "carrying on without a window")
        return None

    def show_frame(rgb: np.ndarray) -> None:
        cv2.imshow("faceprint", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt
    return show_frame


@app.command()
def watch(source: SourceArg,
          out_video: Annotated[Optional[Path], typer.Option("--out", help="Write the annotated video here (.mp4/.avi).")]
          = None,
          events: Annotated[Optional[Path], typer.Option(help="Append one JSON line per track event here.")] = None,
          show: Annotated[bool, typer.Option(help="Show the annotated video in a window (needs a display).")] = False,
          every: Annotated[int, typer.Option(min=1, help="Recognise every N-th frame of a file.")] = 1,
          db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
          threshold: Annotated[Optional[float], typer.Option(help="Cosine-distance threshold for a name.")] = None,
          json_out: JsonOpt = False) -> None:
    """Recognise faces in a video, camera or stream: boxes, names and track ids, events as JSON lines."""
    from .video import Watch, Writer

    def go() -> None:
        window = _window(show)
        with Gallery(db, detector=detector, embedder=embedder, threshold=threshold) as gallery:
            run = Watch(source, gallery, every=every)
            writer = Writer(out_video, run.source.fps) if out_video else None
            log = open(events, "a", encoding="utf-8") if events else None
            started, names = time.perf_counter(), set()
            try:
                with _progress(json_out) as bar:
                    task = bar.add_task("watching", total=None)
                    for result in run:
                        names.update(e.name for e in result.events if e.name)
                        _log_events(log, result.events)
                        if writer or window:
                            picture = result.annotated()
                            for sink in (writer.write if writer else None, window):
                                if sink:
                                    sink(picture)
                        bar.update(task, advance=1)
            except KeyboardInterrupt:
                err.print("stopped")
            finally:  # whatever ended the loop, the events file and the video are complete up to here
                _log_events(log, run.final_events)
                if log:
                    log.close()
                if writer:
                    writer.close()
            elapsed = time.perf_counter() - started
        if run.frames == 0:
            raise FaceprintError(f"{source}: no frames could be read")
        summary = {"source": source, "frames": run.frames, "dropped": run.source.dropped,
                   "fps": round(run.frames / elapsed, 2) if elapsed > 0 else None,
                   "names": sorted(names), "out": str(out_video) if out_video else None,
                   "events": str(events) if events else None}
        if json_out:
            return _print_json(summary)
        out.print(f"{source}: ended after {run.frames} frame(s) ({summary['fps']} fps, {run.source.dropped} dropped "
                  f"to keep up); seen: {', '.join(summary['names']) or 'nobody known'}"
                  + (f"; annotated video: {out_video}" if out_video else ""), highlight=False)
    _run(go)


def _log_events(log, events) -> None:
    if log:
        for e in events:
            log.write(json.dumps(e.to_dict()) + "\n")
        log.flush()


@app.command()
def capture(name: Annotated[str, typer.Argument(help="The person to enrol.")],
            source: Annotated[str, typer.Option(help="A video file, a camera index (0) or a stream URL.")],
            count: Annotated[int, typer.Option(min=1, help="How many good faces to collect.")] = 20,
            min_size: Annotated[int, typer.Option(help="Smallest face side accepted, in pixels.")] = 80,
            db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
            json_out: JsonOpt = False) -> None:
    """Collect good, varied faces of the one person in view and enrol them (refusals say why)."""
    from .video import capture as run_capture

    def say(verdict, frame) -> None:  # the log, on stderr, also beside --json
        status = "[green]taken[/]" if verdict.accepted else f"[dim]skipped: {verdict.reason}[/]"
        err.print(f"frame {frame.index:5d}  {status}", highlight=False)

    def go() -> None:
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            result = run_capture(name, source, gallery, count=count, min_size=min_size, on_verdict=say)
        summary = {"name": name, "enrolled": len(result.enrolled), "wanted": count, "frames": result.frames,
                   "refused": dict(result.refused.most_common())}
        if json_out:
            _print_json(summary)
        else:
            out.print(f"enrolled {len(result.enrolled)} of {count} face(s) of {name} from {result.frames} frame(s)",
                      highlight=False)
        if not result.enrolled:
            raise FaceprintError(f"{source}: no usable face of {name} found in {result.frames} frame(s)")
        if len(result.enrolled) < count:
            err.print(f"[yellow]the source ended before {count} good faces were found[/]")
    _run(go)


# -- clustering -----------------------------------------------------------------------------
MethodOpt = Annotated[Optional[str], typer.Option(help="Clustering method: average (default) or chinese-whispers.")]
ClusterThresholdOpt = Annotated[Optional[float], typer.Option(
    help="Cosine-distance threshold of the method (default: calibrated on LFW, docs/benchmarks.md).")]


def _image_files(paths: list[Path]) -> list[Path]:
    """The given files, and every image file under the given folders (recursively, sorted)."""
    files: list[Path] = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()) \
            if p.is_dir() else [p]
    return files


@app.command()
def cluster(paths: Annotated[list[Path], typer.Argument(
                help="Images, or folders searched recursively, or datasets written by `faceprint embed` "
                     "(their faces and vectors are used as stored; --embedder is then theirs).")],
            json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the clusters here.")] = None,
            html_dir: Annotated[Optional[Path], typer.Option(
                "--html", help="Write a contact sheet here: index.html and faces/*.jpg.")] = None,
            method: MethodOpt = None, threshold: ClusterThresholdOpt = None,
            detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER) -> None:
    """Group every face in a photo collection by person, unnamed, biggest group first."""
    import numpy as np

    from .clustering import DEFAULT_METHOD, make_estimator, write_contact_sheet

    def go() -> None:
        name = method or DEFAULT_METHOD
        stored = _dataset_faces(paths)
        if stored:
            faces, X, used = stored
            images, failures = len({f["path"] for f in faces}), []
        else:
            pipe = get_pipeline(detector, embedder)
            used = pipe.embedder.name
            make_estimator(name, threshold, used)  # bad names fail before any work
            done, failures = _each_image(_image_files(paths), lambda p: pipe.embed(load_image(p)), False, "embedding")
            embedded = [(p, e) for p, found in done for e in found]
            faces = [{"path": str(p.absolute()), "box": [round(float(v), 1) for v in e.face.box]} for p, e in embedded]
            X, images = np.stack([e.vector for _, e in embedded]) if faces else None, len(done)
        labels = make_estimator(name, threshold, used).fit_predict(X) if faces else np.zeros(0, int)
        clusters = [[faces[i] for i in np.flatnonzero(labels == c)] for c in range(labels.max(initial=-1) + 1)]
        alone = [faces[i] for i in np.flatnonzero(labels < 0)]
        if json_path:
            _write_json(json_path, {"clusters": clusters, "noise": alone})
        if html_dir:
            write_contact_sheet(html_dir, clusters, alone)
        t = Table("cluster", "faces", "first face", title=f"{len(faces)} face(s) in {images} image(s): "
                  f"{len(clusters)} cluster(s), {len(alone)} face(s) alone ({name})")
        for i, c in enumerate(clusters[:20]):
            t.add_row(str(i), str(len(c)), c[0]["path"])
        if len(clusters) > 20:
            t.add_row("...", str(sum(map(len, clusters[20:]))), f"in {len(clusters) - 20} more clusters")
        out.print(t)
        _report_failures(failures, False)
    _run(go)


# -- batch ----------------------------------------------------------------------------------
@app.command()
def embed(paths: Annotated[list[Path], typer.Argument(help="Images, or folders searched recursively.")],
          out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to write (or resume): faces/ and "
                                                "photos/ Parquet parts, manifest.json.")],
          engine: Annotated[str, typer.Option(help="local (processes on this machine) or ray (Ray Data).")] = "local",
          address: Annotated[Optional[str], typer.Option(
              help="Ray cluster to join (ray://host:10001, or auto); default: start Ray on this machine.")] = None,
          workers: Annotated[int, typer.Option(help="Embedding processes, or Ray actors (one CPU each).")] = 1,
          batch_size: Annotated[int, typer.Option(help="Photos per Parquet part: what a crash may lose.")] = BATCH_SIZE,
          retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the photos that failed before.")]
          = False,
          detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER, json_out: JsonOpt = False) -> None:
    """Every face of every photo into Parquet (path, SHA-256, box, landmarks, score, models, vector), resumable."""
    from .batch import embed_photos

    def go() -> None:
        with _progress(json_out) as bar:
            task = bar.add_task("embedding", total=None)
            summary = embed_photos(_image_files(paths), out_dir, detector, embedder, engine=engine, workers=workers,
                                   batch_size=batch_size, address=address, retry_failed=retry_failed,
                                   on_start=lambda n: bar.update(task, total=n),
                                   on_batch=lambda n: bar.advance(task, n))
        if json_out:
            _print_json({**summary.to_dict(), "out": str(out_dir)})
        else:
            out.print(f"{out_dir}: {summary.embedded} photo(s) embedded ({summary.faces} faces, {summary.no_face} "
                      f"without a face, {len(summary.failed)} failed), {summary.skipped} done before; "
                      f"{summary.seconds:.1f} s", highlight=False)
        _report_failures(summary.failed, json_out)
    _run(go)


def _dataset_faces(paths: list[Path]) -> tuple[list[dict], np.ndarray, str] | None:
    """The faces and vectors of `faceprint embed` datasets among ``paths`` (all must be), or None."""
    import numpy as np

    from .batch import is_dataset, load_faces

    datasets = [p for p in paths if is_dataset(p)]
    if not datasets:
        return None
    if len(datasets) < len(paths):
        raise FaceprintError("give either photos or `faceprint embed` datasets, not both")
    loaded = [load_faces(p) for p in datasets]
    embedders = {m["embedder"] for _, _, m in loaded}
    if len(embedders) > 1:
        raise FaceprintError(f"the datasets were made by different embedders: {', '.join(sorted(embedders))}")
    return [f for faces, _, _ in loaded for f in faces], np.concatenate([X for _, X, _ in loaded]), embedders.pop()


@people_app.command("from-cluster")
def people_from_cluster(
        clusters_json: Annotated[Path, typer.Option("--json", help="A file written by `faceprint cluster --json`.")],
        index: Annotated[int, typer.Option("--cluster", help="Which cluster: 0 is the biggest.")],
        name: Annotated[str, typer.Option(help="Enrol its faces as this person.")],
        db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None) -> None:
    """Enrol the faces of one cluster as a person (in a photo of several, the face at the cluster's box)."""
    def go() -> None:
        faces = _cluster_faces(clusters_json, index)
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            def one(face: dict) -> int | None:
                return gallery.enroll(name, face["path"], box=tuple(face["box"]))

            done, failures = _each_image(faces, one, False, "enrolling", path=lambda face: face["path"])
            where = gallery.location
        added = sum(1 for _, fid in done if fid is not None)
        out.print(f"enrolled {added} of {len(faces)} face(s) of cluster {index} as {name} into {where}"
                  + (f"; {len(done) - added} already there" if len(done) > added else "")
                  + (f"; {len(failures)} skipped" if failures else ""), highlight=False)
        _report_failures(failures, False)
    _run(go)


def _cluster_faces(path: Path, index: int) -> list[dict]:
    try:
        clusters = json.loads(path.read_text())["clusters"]
    except OSError as e:
        raise FaceprintError(f"{path}: cannot read: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError):
        raise FaceprintError(f"{path}: not a `faceprint cluster --json` file") from None
    if not isinstance(clusters, list):
        raise FaceprintError(f"{path}: not a `faceprint cluster --json` file")
    if not 0 <= index < len(clusters):
        raise FaceprintError(f"{path}: no cluster {index} (it has {len(clusters)}, numbered from 0)")
    faces = clusters[index]
    if not isinstance(faces, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("box"), list)
            and len(f["box"]) == 4 and all(isinstance(v, (int, float)) for v in f["box"]) for f in faces):
        raise FaceprintError(f"{path}: cluster {index} is not a list of faces, each a path and a box of 4 numbers")
    return faces


# -- evaluation -----------------------------------------------------------------------------
eval_app = typer.Typer(help="Measure accuracy on standard benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


PairsOpt = Annotated[Optional[int], typer.Option(
    "--pairs-per-fold", help="Use only the first N same and N different pairs of each fold (quick checks).")]
FoldsOpt = Annotated[Optional[int], typer.Option(help="Use only the first N folds.")]

#: Version of the `eval lfw` JSON report; bump only when a key changes meaning or goes away
#: (docs/benchmarks.md, "Report schema", lists every key).
LFW_REPORT_SCHEMA = "faceprint.eval.lfw/1"


@eval_app.command("lfw")
def eval_lfw(lfw: Annotated[Path, typer.Option(help="LFW folder holding pairs.txt and images/.")],
             detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
             folds: FoldsOpt = None, pairs_per_fold: PairsOpt = None,
             workers: Annotated[int, typer.Option(help="Processes for embedding.")] = 1,
             json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report here.")] = None,
             plots: Annotated[Optional[Path], typer.Option(help="Write roc.png and distances.png here.")] = None,
             no_cache: Annotated[bool, typer.Option("--no-cache", help="Embed again; don't read or write the cache.")] = False,
             ) -> None:
    """LFW View 2: 10-fold accuracy with the threshold chosen on the other folds, AUC, TAR@FAR."""
    import numpy as np

    from . import evaluation as ev

    def go() -> None:
        if not (lfw / "pairs.txt").is_file():
            raise FaceprintError(f"{lfw}: no pairs.txt here (point --lfw at the LFW folder)")
        pairs = ev.read_pairs(lfw, folds, pairs_per_fold)
        images = {p for pair in pairs for p in (pair.a, pair.b)}
        cached = not no_cache and ev.is_cached(list(images), detector, embedder)
        vectors, per_image = _embed_images(list(images), detector, embedder, workers, cache=not no_cache)
        d = ev.pair_distances(pairs, vectors)
        same = np.array([p.same for p in pairs])
        res = ev.ten_fold(pairs, d)
        missing = {p for p, v in vectors.items() if v is None}
        no_face = sorted(_rel(Path(p), lfw) for p in missing)
        n_diff = int((~same).sum())
        tars = [ev.tar_at_far(d, same, far) for far in (1e-2, 1e-3)]
        report = {
            "schema": LFW_REPORT_SCHEMA,
            "detector": detector, "embedder": embedder, "pairs": len(pairs), "folds": len(res.accuracies),
            "pairs_per_fold": pairs_per_fold or (len(pairs) // max(len(res.accuracies), 1) // 2),
            "accuracy_mean": res.mean, "accuracy_std": res.std, "fold_accuracies": res.accuracies,
            "fold_thresholds": res.thresholds, "threshold": res.threshold,
            "threshold_selection": "on the other folds" if len(res.accuracies) > 1 else "on the same fold (only one)",
            "auc": ev.auc(d, same),
            "tar_at_far": tars,
            "far_resolution": 1 / n_diff,
            "far_note": f"{n_diff} different-person pairs resolve FAR only down to ~1e-3 (steps of "
                        f"{1 / n_diff:.1e}: FAR 1e-3 rests on {int(n_diff * 1e-3)} accepted impostor pairs); "
                        "`faceprint eval thresholds` measures lower FARs over all cross-identity pairs",
            "images": len(images), "no_face_images": no_face,
            "no_face_pairs": int(sum(str(p.a) in missing or str(p.b) in missing for p in pairs)),
            "no_face_policy": "pair distance set to 2.0",
            "seconds_per_image": per_image,
            "embeddings_cached": cached,
            "pipeline": ev.fingerprints(detector, embedder),
            "plots": [],
            "command": "faceprint " + " ".join(sys.argv[1:]),
        }
        if plots:
            report["plots"] = [str(p) for p in ev.write_plots(plots, f"{detector} + {embedder}", d, same, res.threshold)]
        if json_path:
            _write_json(json_path, report)
        out.print(f"{detector} + {embedder}: {len(pairs)} pairs, accuracy {res.mean * 100:.2f}% ± "
                  f"{res.std * 100:.2f}, AUC {report['auc']:.5f}, "
                  + ", ".join(f"TAR {t['tar'] * 100:.2f}% @ FAR {t['far']:g}" for t in tars)
                  + f", threshold {res.threshold:.4f}, no face in {len(no_face)} of {len(images)} images "
                  f"(their {report['no_face_pairs']} pairs scored at distance 2.0), "
                  f"{per_image * 1000:.0f} ms/image{' (cached run)' if cached else ''}", highlight=False)
    _run(go)


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _lfw_people(lfw: Path, limit: int | None) -> dict[str, list[Path]]:
    """LFW's images by person, the first ``limit`` people only when given (quick checks)."""
    from . import evaluation as ev

    people = ev.lfw_people(lfw)
    return dict(list(people.items())[:limit]) if limit else people


FacesOpt = Annotated[Optional[Path], typer.Option(
    "--faces", help="Read the faces from a `faceprint embed` dataset of these images instead of embedding them.")]


def _embed_images(images: list[Path], detector: str, embedder: str, workers: int, cache: bool = True,
                  quiet: bool = False, faces: Path | None = None):
    """``evaluation.embed_images`` behind a progress bar (one step per image and embedder part),
    or each image's central face from the dataset ``faces`` (seconds per image: 0, nothing run)."""
    from . import evaluation as ev

    if faces:
        from .batch import central_vectors, read_manifest

        made = read_manifest(faces)
        if (made["detector"], made["embedder"]) != (detector, embedder):
            raise FaceprintError(f"{faces}: made with --detector {made['detector']} --embedder {made['embedder']}; "
                                 "give the same")
        stored = central_vectors(faces)
        missing = [p for p in images if str(p.absolute()) not in stored]
        if missing:
            raise FaceprintError(f"{faces}: {len(missing)} of the {len(images)} images are not in it "
                                 f"(first: {missing[0]}); run `faceprint embed` on them")
        return {str(p): stored[str(p.absolute())] for p in images}, 0.0

    with _progress(quiet) as bar:
        task = bar.add_task("embedding", total=len(images) * len(ev.part_names(detector, embedder)))
        return ev.embed_images(images, detector, embedder, workers, lambda n: bar.advance(task, n), cache=cache)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@eval_app.command("cluster")
def eval_cluster(lfw: Annotated[Path, typer.Option(help="LFW folder holding images/PERSON/*.jpg.")],
                 method: Annotated[Optional[list[str]], typer.Option(
                     help="Method to score; repeat for several (default: every method).")] = None,
                 threshold: ClusterThresholdOpt = None,
                 detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                 workers: Annotated[int, typer.Option(help="Processes for embedding.")] = 1,
                 limit: Annotated[Optional[int], typer.Option(help="Use only the first N people (quick checks).")] = None,
                 json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report here.")] = None,
                 faces: FacesOpt = None) -> None:
    """Cluster every LFW image (its central face) and score the clusters against the people's names."""
    import platform
    import time

    import numpy as np

    from . import evaluation as ev
    from .clustering import METHODS, make_estimator

    def go() -> None:
        methods = method or list(METHODS)
        if threshold is not None and len(methods) != 1:
            raise FaceprintError("--threshold needs exactly one --method")
        estimators = {m: make_estimator(m, threshold, embedder) for m in methods}
        people = _lfw_people(lfw, limit)
        images = [p for paths in people.values() for p in paths]
        truth = np.array([n for n, paths in people.items() for _ in paths])
        cached = bool(faces) or ev.is_cached(images, detector, embedder)
        vectors, per_image = _embed_images(images, detector, embedder, workers, faces=faces)
        found = np.array([vectors[str(p)] is not None for p in images])
        if not found.any():
            raise FaceprintError(f"{lfw}: no face found in any image")
        X = np.stack([vectors[str(p)] for p, f in zip(images, found) if f])
        runs = []
        for name, estimator in estimators.items():
            start = time.perf_counter()
            labels = estimator.fit_predict(X)
            seconds = time.perf_counter() - start
            pred = np.full(len(images), -1)
            pred[found] = labels
            clusters = int(pred.max(initial=-1) + 1)
            runs.append({"method": name, "params": estimator.get_params(),
                         "bcubed": dict(zip(("precision", "recall", "f1"), ev.bcubed_prf(truth, pred))),
                         "pairwise": dict(zip(("precision", "recall", "f1"), ev.pairwise_prf(truth, pred))),
                         "clusters": clusters + int((pred < 0).sum()), "clusters_2plus": clusters,
                         "faces_alone": int((pred < 0).sum()), "cluster_seconds": seconds})
        sizes = np.array([len(paths) for paths in people.values()])
        report = {"detector": detector, "embedder": embedder, "images": len(images), "people": len(people),
                  "people_2plus": int((sizes > 1).sum()),
                  "no_face_images": [_rel(p, lfw) for p, f in zip(images, found) if not f],
                  "no_face_policy": "kept in the ground truth, each as a face alone (a cluster of its own)",
                  "runs": runs, "seconds_per_image": per_image, "embeddings_cached": cached,
                  "pipeline": ev.fingerprints(detector, embedder), "machine": _machine(),
                  "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
                  "command": "faceprint " + " ".join(sys.argv[1:])}
        if json_path:
            _write_json(json_path, report)
        out.print(f"{detector} + {embedder}: {len(images):,} images of {len(people):,} people "
                  f"({report['people_2plus']:,} with 2 or more), {len(report['no_face_images'])} without a face "
                  "(each counted as a face alone)", highlight=False)
        for r in runs:
            b, p = r["bcubed"], r["pairwise"]
            out.print(f"  {r['method']}: BCubed P {b['precision']:.4f} R {b['recall']:.4f} F1 {b['f1']:.4f}, "
                      f"pairwise P {p['precision']:.4f} R {p['recall']:.4f} F1 {p['f1']:.4f}, "
                      f"{r['clusters']:,} clusters ({r['clusters_2plus']:,} of 2 or more faces), "
                      f"clustering {r['cluster_seconds']:.1f} s", highlight=False)
    _run(go)


def _machine() -> str:
    """CPU model, cores and system, for benchmark reports."""
    import os
    import platform

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


@eval_app.command("thresholds")
def eval_thresholds(lfw: Annotated[Path, typer.Option(help="LFW folder holding pairs.txt and images/.")],
                    detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                    folds: FoldsOpt = None, pairs_per_fold: PairsOpt = None,
                    workers: Annotated[int, typer.Option(help="Processes for embedding.")] = 1,
                    no_cache: Annotated[bool, typer.Option("--no-cache", help="Embed again; don't read or write the cache.")] = False,
                    json_out: JsonOpt = False) -> None:
    """The threshold that holds each false-accept rate, and the true-accept rate it leaves."""
    from . import evaluation as ev

    def go() -> None:
        if not (lfw / "pairs.txt").is_file():
            raise FaceprintError(f"{lfw}: no pairs.txt here (point --lfw at the LFW folder)")
        images = list({p for pair in ev.read_pairs(lfw, folds, pairs_per_fold) for p in (pair.a, pair.b)})
        vectors, _ = _embed_images(images, detector, embedder, workers, cache=not no_cache, quiet=json_out)
        points, n_imp, n_gen = ev.operating_points(vectors)
        if json_out:
            return _print_json({"detector": detector, "embedder": embedder, "images": len(images),
                                "impostor_pairs": n_imp, "genuine_pairs": n_gen, "far_resolution": 1 / max(n_imp, 1),
                                "points": [{**p.__dict__, "frr": 1 - p.tar} for p in points]})
        t = Table("FAR", "threshold (cosine)", "TAR", "FRR", title=f"{detector} + {embedder}: {n_imp:,} impostor, "
                  f"{n_gen:,} genuine pairs")
        for p in points:
            t.add_row(f"{p.far:g}", f"{p.threshold:.4f}", f"{p.tar * 100:.2f}%", f"{(1 - p.tar) * 100:.2f}%")
        out.print(t)
    _run(go)


@eval_app.command("identify")
def eval_identify(lfw: Annotated[Path, typer.Option(help="LFW folder holding images/PERSON/*.jpg.")],
                  detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                  workers: Annotated[int, typer.Option(help="Processes for embedding.")] = 1,
                  limit: Annotated[Optional[int], typer.Option(help="Use only the first N people (quick checks).")] = None,
                  no_cache: Annotated[bool, typer.Option("--no-cache", help="Embed again; don't read or write the cache.")] = False,
                  json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report here.")] = None,
                  faces: FacesOpt = None) -> None:
    """Open-set 1:N on all of LFW: one photo enrolled per person, the rest and strangers as probes."""
    from . import evaluation as ev

    def go() -> None:
        people = _lfw_people(lfw, limit)
        images = [p for paths in people.values() for p in paths]
        vectors, per_image = _embed_images(images, detector, embedder, workers, cache=not no_cache, faces=faces)
        emb = get_pipeline(detector, embedder).embedder
        split = ev.open_set_split(people, vectors)
        if len(split.gallery) == 0 or len(split.unknown) == 0:
            raise FaceprintError("too few people for open-set identification (need some with one photo and some with more)")
        shipped = {"verify": emb.threshold, "identify": emb.identify_threshold}
        report = {"detector": detector, "embedder": embedder, "people": len(people), "images": len(images),
                  **ev.open_set_identification(split, vectors, thresholds=shipped),
                  "seconds_per_image": per_image, "command": "faceprint " + " ".join(sys.argv[1:])}
        if json_path:
            _write_json(json_path, report)
        t = Table("operating point", "threshold (cosine)", "DIR", "FAR",
                  title=f"{detector} + {embedder}: gallery {report['gallery']:,} people, "
                        f"{report['known_probes']:,} known and {report['unknown_probes']:,} unknown probes; "
                        f"rank-1 {report['rank1'] * 100:.2f}%")
        for p in report["dir_at_far"]:
            t.add_row(f"FAR {p['target_far']:g}", f"{p['threshold']:.4f}", f"{p['dir'] * 100:.2f}%", f"{p['far'] * 100:.2f}%")
        for name, p in report["at_thresholds"].items():
            t.add_row(f"shipped {name}", f"{p['threshold']:.4f}", f"{p['dir'] * 100:.2f}%", f"{p['far'] * 100:.2f}%")
        out.print(t)
    _run(go)
