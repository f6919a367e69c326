"""``faceprint people``: list, show, rename and remove enrolled people, or enrol a cluster as one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..detection import DEFAULT_DETECTOR
from ..errors import FaceprintError
from ._common import DbOpt, DetOpt, GalleryEmbOpt, JsonOpt, each_image, out, print_json, report_failures, run

app = typer.Typer(help="Manage enrolled people.", no_args_is_help=True)


@app.command("list")
def people_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Everyone enrolled, with face counts."""
    from ..gallery import Gallery

    def go() -> None:
        with Gallery(db, readonly=True) as g:
            people = [{"name": p["name"], "faces": p["faces"]} for p in g.people()]
        if json_out:
            return print_json(people)
        t = Table("name", "faces")
        for p in people:
            t.add_row(p["name"], str(p["faces"]))
        out.print(t)
        out.print(f"{len(people)} people")
    run(go)


@app.command("show")
def people_show(name: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """One person's enrolled faces."""
    from ..gallery import Gallery

    def go() -> None:
        with Gallery(db, readonly=True) as g:
            faces = [{"id": f.id, "source": f.source, "image_sha256": f.image_sha256, "box": f.box,
                      "detector": f.detector} for f in g.faces(name)]
        if json_out:
            return print_json({"name": name, "faces": faces})
        out.print(f"{name}: {len(faces)} face(s)", highlight=False)
        for f in faces:
            out.print(f"  #{f['id']} {f['source']} box={[round(v) for v in f['box']]}", highlight=False)
    run(go)


@app.command("rename")
def people_rename(old: str, new: str, db: DbOpt = None) -> None:
    """Rename a person."""
    from ..gallery import Gallery

    def go() -> None:
        with Gallery(db) as g:
            stored = g.rename(old, new)
        out.print(f"renamed {old} -> {stored}", highlight=False)
    run(go)


@app.command("remove")
def people_remove(name: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a person and every face and embedding stored for them."""
    from ..gallery import Gallery

    def go() -> None:
        with Gallery(db) as g:
            gone = g.remove(name)
        if json_out:
            return print_json({"removed": name, **dataclasses.asdict(gone)})
        out.print(f"removed {name}: {gone.faces} face(s), {gone.embeddings} embedding(s), {gone.images} face image(s)",
                  highlight=False)
    run(go)


@app.command("from-cluster")
def people_from_cluster(
        clusters_json: Annotated[Path, typer.Option("--json", help="A file written by `faceprint cluster --json`.")],
        index: Annotated[int, typer.Option("--cluster", help="Which cluster: 0 is the biggest.")],
        name: Annotated[str, typer.Option(help="Enrol its faces as this person.")],
        db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None) -> None:
    """Enrol the faces of one cluster as a person (in a photo of several, the face at the cluster's box)."""
    from ..gallery import Gallery
    from ..gallery.names import valid_name

    def go() -> None:
        valid_name(name)
        faces = _cluster_faces(clusters_json, index)
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            def one(face: dict) -> int | None:
                return gallery.enroll(name, face["path"], box=tuple(face["box"]))

            done, failures = each_image(faces, one, False, "enrolling", path=lambda face: face["path"])
            where = gallery.location
        added = sum(1 for _, fid in done if fid is not None)
        out.print(f"enrolled {added} of {len(faces)} face(s) of cluster {index} as {name} into {where}"
                  + (f"; {len(done) - added} already there" if len(done) > added else "")
                  + (f"; {len(failures)} skipped" if failures else ""), highlight=False)
        report_failures(failures, False)
    run(go)


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
