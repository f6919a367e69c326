"""``faceprint cluster``: group the faces of a photo collection by person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ..errors import FaceprintError
from ._common import (ClusterThresholdOpt, DetOpt, EmbOpt, each_image, image_files, out, report_failures, run,
                      write_json)

app = typer.Typer()

MethodOpt = Annotated[Optional[str], typer.Option(help="Clustering method: average (default) or chinese-whispers.")]


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

    from ..clustering import DEFAULT_METHOD, make_estimator, write_contact_sheet
    from ..imageio import load_image
    from ..pipeline import get_pipeline

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
            done, failures = each_image(image_files(paths), lambda p: pipe.embed(load_image(p)), False, "embedding")
            embedded = [(p, e) for p, found in done for e in found]
            faces = [{"path": str(p.absolute()), "box": [round(float(v), 1) for v in e.face.box]} for p, e in embedded]
            X, images = np.stack([e.vector for _, e in embedded]) if faces else None, len(done)
        labels = make_estimator(name, threshold, used).fit_predict(X) if faces else np.zeros(0, int)
        clusters = [[faces[i] for i in np.flatnonzero(labels == c)] for c in range(labels.max(initial=-1) + 1)]
        alone = [faces[i] for i in np.flatnonzero(labels < 0)]
        if json_path:
            write_json(json_path, {"clusters": clusters, "noise": alone})
        if html_dir:
            write_contact_sheet(html_dir, clusters, alone)
        t = Table("cluster", "faces", "first face", title=f"{len(faces)} face(s) in {images} image(s): "
                  f"{len(clusters)} cluster(s), {len(alone)} face(s) alone ({name})")
        for i, c in enumerate(clusters[:20]):
            t.add_row(str(i), str(len(c)), c[0]["path"])
        if len(clusters) > 20:
            t.add_row("...", str(sum(map(len, clusters[20:]))), f"in {len(clusters) - 20} more clusters")
        out.print(t)
        report_failures(failures, False)
    run(go)


def _dataset_faces(paths: list[Path]):
    """The faces, vectors and embedder of the `faceprint embed` datasets among ``paths`` (all must
    be), or None when there are none."""
    import numpy as np

    from ..batch import is_dataset, load_faces

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
