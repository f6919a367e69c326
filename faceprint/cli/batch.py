"""``faceprint embed``: every face of a photo library into a resumable Parquet dataset, on this
machine's processes or on Ray. ``cluster`` and ``eval`` read the dataset back (``faceprint.batch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ._common import DetOpt, EmbOpt, JsonOpt, image_files, out, print_json, progress, report_failures, run

app = typer.Typer()


@app.command()
def embed(paths: Annotated[list[Path], typer.Argument(help="Images, or folders searched recursively.")],
          out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to write (or resume): faces/ and "
                                                "photos/ Parquet parts, manifest.json.")],
          engine: Annotated[str, typer.Option(help="local (processes on this machine) or ray (Ray Data).")] = "local",
          address: Annotated[Optional[str], typer.Option(
              help="Ray cluster to join (ray://host:10001, or auto); default: start Ray on this machine.")] = None,
          workers: Annotated[int, typer.Option(help="Embedding processes, or Ray actors (one CPU each).")] = 1,
          batch_size: Annotated[Optional[int], typer.Option(
              help="Photos per Parquet part, what a crash may lose (default: faceprint.batch.BATCH_SIZE, 256).")]
          = None,
          retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the photos that failed before.")]
          = False,
          detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER, json_out: JsonOpt = False) -> None:
    """Every face of every photo into Parquet (path, SHA-256, box, landmarks, score, models, vector), resumable."""
    from ..batch import embed_photos

    def go() -> None:
        with progress(json_out) as bar:
            task = bar.add_task("embedding", total=None)
            summary = embed_photos(image_files(paths), out_dir, detector, embedder, engine=engine, workers=workers,
                                   batch_size=batch_size, address=address, retry_failed=retry_failed,
                                   on_start=lambda n: bar.update(task, total=n),
                                   on_batch=lambda n: bar.advance(task, n))
        if json_out:
            print_json({**summary.to_dict(), "out": str(out_dir)})
        else:
            out.print(f"{out_dir}: {summary.embedded} photo(s) embedded ({summary.faces} faces, {summary.no_face} "
                      f"without a face, {len(summary.failed)} failed), {summary.skipped} done before; "
                      f"{summary.seconds:.1f} s", highlight=False)
        report_failures(summary.failed, json_out)
    run(go)
