"""Commands on photos: detect, verify, identify, enroll, reindex."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ..errors import FaceprintError, about
from ._common import (IMAGE_SUFFIXES, DbOpt, DetOpt, EmbOpt, FpirOpt, GalleryEmbOpt, IdentifyThresholdOpt, JsonOpt,
                      VectorsOpt, each_image,
                      faces_in_each, out, print_json, progress_to, report_failures, run)

app = typer.Typer()

ImagesArg = Annotated[list[Path], typer.Argument(help="Image files.")]


@app.command()
def detect(images: ImagesArg,
           draw: Annotated[Optional[Path], typer.Option(help="Write annotated image(s) here (file or folder).")] = None,
           detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """Find every face: box, score, landmarks."""
    from ..draw import draw_faces
    from ..pipeline import get_pipeline

    def line(f) -> str:
        x1, y1, x2, y2 = f.box
        return f"box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score={f.score:.3f}"

    run(lambda: faces_in_each(images, get_pipeline(detector).detect, draw, json_out, "detecting", line,
                              paint=draw_faces))


@app.command()
def verify(image_a: Path, image_b: Path, detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
           threshold: Annotated[Optional[float], typer.Option(help="Cosine-distance threshold (default: calibrated).")] = None,
           metric: Annotated[str, typer.Option(help="Report distances as 'cosine' or 'euclidean'.")] = "cosine",
           json_out: JsonOpt = False) -> None:
    """Are the (largest) faces in two photos the same person?"""
    from ..matching import verify_vectors
    from ..pipeline import get_pipeline

    def go() -> None:
        pipe = get_pipeline(detector, embedder)
        pipe.embedder  # load the model first, so a bad model name is not blamed on an image
        a, b = (_embed_one(pipe, p) for p in (image_a, image_b))
        if metric not in ("cosine", "euclidean"):
            raise FaceprintError(f"unknown metric {metric!r}; use cosine or euclidean")
        v = verify_vectors(a, b, pipe.threshold if threshold is None else threshold, pipe.embedder.name, metric)
        if json_out:
            return print_json({k: v.to_dict()[k] for k in ("same", "distance", "threshold", "embedder")})
        verdict = "[green]same person[/]" if v.same else "[yellow]different people[/]"
        out.print(f"{verdict} ({metric} distance {v.distance:.3f}, threshold {v.threshold:.3f}, {v.embedder})")
    run(go)


def _embed_one(pipe, path: Path):
    from ..imageio import load_image

    try:
        return pipe.embed_one(load_image(path)).vector
    except FaceprintError as e:
        raise about(path, e) from None


@app.command()
def identify(images: ImagesArg, db: DbOpt = None,
             draw: Annotated[Optional[Path], typer.Option(help="Write image(s) with boxes and names here.")] = None,
             detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
             threshold: IdentifyThresholdOpt = None, fpir: FpirOpt = None,
             json_out: JsonOpt = False, vectors: VectorsOpt = None) -> None:
    """Name every face in each image against the gallery (null/unknown when nobody is close enough)."""
    from ..draw import draw_faces
    from ..gallery import Gallery

    def line(m) -> str:
        d = "-" if m.distance is None else f"{m.distance:.3f}"
        return f"{m.name or 'unknown':24} distance={d} box={[round(v) for v in m.face.box]}"

    def go() -> None:
        # read-only, but Milvus follows the log under the gallery's write lock
        with Gallery(db, detector=detector, embedder=embedder, threshold=threshold, fpir=fpir, vectors=vectors,
                     readonly=not vectors) as gallery:
            faces_in_each(images, gallery.identify, draw, json_out, "identifying", line,
                          paint=lambda image, ms: draw_faces(image, [m.face for m in ms],
                                                             [m.name or "unknown" for m in ms]))
    run(go)


def _enrol_jobs(paths: list[Path], name: Optional[str]) -> list[tuple[str, Path]]:
    from ..gallery.names import valid_name

    if name is not None:
        name = valid_name(name)  # refused once, not once per image
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
    from ..gallery import Gallery

    def go() -> None:
        jobs = _enrol_jobs(paths, name)
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            done, failures = each_image(jobs, lambda job: gallery.enroll(*job), json_out, "enrolling",
                                        path=lambda job: job[1])
            added = sum(1 for _, fid in done if fid is not None)
            summary = {"enrolled": added, "already_enrolled": len(done) - added,
                       "people": len({n for (n, _), _ in done}),
                       "failed": [{"path": p, "error": e} for p, e in failures], "db": gallery.location}
        if json_out:
            print_json(summary)
        else:
            out.print(f"enrolled {added} face(s) of {summary['people']} people into {summary['db']}"
                      + (f" ({summary['already_enrolled']} already there)" if summary["already_enrolled"] else ""),
                      highlight=False)
        report_failures(failures, json_out)
    run(go)


@app.command()
def reindex(embedder: Annotated[str, typer.Option("--embedder", "-e", help="Embedder to switch the gallery to.")],
            db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Re-embed every stored face with another embedder (all faces or none)."""
    from ..gallery import Gallery

    def go() -> None:
        with Gallery(db) as gallery, progress_to("re-embedding", json_out) as step:
            n = gallery.reindex(embedder, step)
        if json_out:
            print_json({"faces": n, "embedder": embedder})
        else:
            out.print(f"re-embedded {n} face(s) with {embedder}")
    run(go)
