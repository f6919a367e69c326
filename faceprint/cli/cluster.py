"""``faceprint cluster``: group the faces of a photo collection by person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ._common import (IMAGE_SUFFIXES, ClusterThresholdOpt, DetOpt, EmbOpt, each_image, out, report_failures, run,
                      write_json)

app = typer.Typer()

MethodOpt = Annotated[Optional[str], typer.Option(help="Clustering method: average (default) or chinese-whispers.")]


def _image_files(paths: list[Path]) -> list[Path]:
    """The given files, and every image file under the given folders (recursively, sorted)."""
    files: list[Path] = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()) \
            if p.is_dir() else [p]
    return files


@app.command()
def cluster(paths: Annotated[list[Path], typer.Argument(help="Images, or folders searched recursively.")],
            json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the clusters here.")] = None,
            html_dir: Annotated[Optional[Path], typer.Option(
                "--html", help="Write a contact sheet here: index.html and faces/*.jpg.")] = None,
            method: MethodOpt = None, threshold: ClusterThresholdOpt = None,
            detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER) -> None:
    """Group every face in a photo collection by person, unnamed, biggest group first."""
    import numpy as np

    from ..clustering import DEFAULT_METHOD, make_estimator, write_contact_sheet
    from ..imageio import load_image
    from ..pipeline import get_pipeline

    def go() -> None:
        pipe = get_pipeline(detector, embedder)
        name = method or DEFAULT_METHOD
        estimator = make_estimator(name, threshold, pipe.embedder.name)  # bad names fail before any work
        done, failures = each_image(_image_files(paths), lambda p: pipe.embed(load_image(p)), False, "embedding")
        embedded = [(p, e) for p, found in done for e in found]
        faces = [{"path": str(p.absolute()), "box": [round(float(v), 1) for v in e.face.box]} for p, e in embedded]
        labels = estimator.fit_predict(np.stack([e.vector for _, e in embedded])) if faces else np.zeros(0, int)
        clusters = [[faces[i] for i in np.flatnonzero(labels == c)] for c in range(labels.max(initial=-1) + 1)]
        alone = [faces[i] for i in np.flatnonzero(labels < 0)]
        if json_path:
            write_json(json_path, {"clusters": clusters, "noise": alone})
        if html_dir:
            write_contact_sheet(html_dir, clusters, alone)
        t = Table("cluster", "faces", "first face", title=f"{len(faces)} face(s) in {len(done)} image(s): "
                  f"{len(clusters)} cluster(s), {len(alone)} face(s) alone ({name})")
        for i, c in enumerate(clusters[:20]):
            t.add_row(str(i), str(len(c)), c[0]["path"])
        if len(clusters) > 20:
            t.add_row("...", str(sum(map(len, clusters[20:]))), f"in {len(clusters) - 20} more clusters")
        out.print(t)
        report_failures(failures, False)
    run(go)
