"""What every command group shares: the consoles, the common options, one-line errors, JSON output,
progress bars, the batch loop that carries on past bad files, and the per-face loop of the
commands that find faces in photos (detect, identify, analyze, landmarks).

Only light modules are imported here: a command imports the gallery, the pipeline or OpenCV in its
own body, so ``faceprint --help`` and the commands that need no model stay quick.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..detection import detector_names
from ..embedding import embedder_names
from ..errors import FaceprintError, ModelError
from ..imageio import IMAGE_SUFFIXES

T = TypeVar("T")
R = TypeVar("R")

out = Console()
err = Console(stderr=True, soft_wrap=True)


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
IdentifyThresholdOpt = Annotated[Optional[float], typer.Option(
    help="Cosine-distance threshold for a name (default: set by --fpir and the gallery's size).")]
FpirOpt = Annotated[Optional[float], typer.Option(
    min=1e-6, max=0.5,
    help="Share of strangers the gallery may name, whatever its size (default 0.01, and never looser than "
         "FAR 1e-4 per comparison). Ignored with --threshold.")]
TrainedOpt = Annotated[Optional[list[str]], typer.Option(
    help="An attribute trained with `faceprint attribute train`, repeatable; alone, only those are computed.")]
AttributesOpt = Annotated[Optional[Path], typer.Option(
    help="Folder of trained attributes (default: beside the gallery, GALLERY.attributes/).")]
ClusterThresholdOpt = Annotated[Optional[float], typer.Option(
    help="Cosine-distance threshold of the method (default: calibrated on LFW, docs/benchmarks.md).")]



def attribute_dir_of(db: str | None, attributes: Path | None) -> Path:
    """Where trained attributes are: ``attributes``, else beside the gallery (GALLERY.attributes/)."""
    from ..analysis.trained import attribute_dir
    from ..gallery import default_location

    return attributes or attribute_dir(db or default_location())


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # "faceprint[ray]" is no markup
    raise typer.Exit(1)


def run(fn: Callable[[], None]) -> None:
    """Turn faceprint's own errors into one line and exit 1; anything else is a bug and shows a traceback."""
    try:
        fn()
    except FaceprintError as e:
        fail(str(e))


def image_files(paths: list[Path]) -> list[Path]:
    """The given files, and every image file under the given folders (recursively, sorted)."""
    files: list[Path] = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()) \
            if p.is_dir() else [p]
    return files


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def command_line() -> str:
    """How this run was started, for reports."""
    return "faceprint " + " ".join(sys.argv[1:])


def progress(json_mode: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=json_mode or not err.is_terminal)


@contextmanager
def progress_to(what: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed by the library's ``progress(done, total)`` callbacks."""
    with progress(quiet) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def report_failures(failures: list[tuple[str, str]], json_mode: bool) -> None:
    if failures:
        if not json_mode:
            err.print(f"[bold red]{len(failures)} file(s) failed:[/]")
            for path, why in failures:
                err.print(f"  {path}: {why}", highlight=False)
        raise typer.Exit(1)


def each_image(items: Iterable[T], fn: Callable[[T], R], json_mode: bool, what: str,
               path: Callable[[T], Path] = lambda item: item) -> tuple[list[tuple[T, R]], list[tuple[str, str]]]:
    """Apply ``fn`` to every item, carrying on past failures, which come back as (path, reason)."""
    items = list(items)
    done, failures = [], []
    with progress(json_mode) as bar:
        task = bar.add_task(what, total=len(items))
        for item in items:
            try:
                done.append((item, fn(item)))
            except ModelError:  # models load on first use: one that cannot load is no image's fault
                raise
            except FaceprintError as e:
                failures.append((str(path(item)), _strip_path(str(e), path(item))))
            bar.advance(task)
    return done, failures


def faces_in_each(images: list[Path], find: Callable[[Any], list], draw: Path | None, json_out: bool, what: str,
                  line: Callable[[Any], str], paint: Callable[[Any, list], Any]) -> None:
    """The loop of the commands that find faces in photos: ``find`` them in each image, write
    ``paint(image, found)`` under ``draw`` if asked, print each image's faces, one ``line`` each
    (JSON: one entry per image, its faces or its error), then the failures."""
    from ..imageio import load_image, save_image

    def one(path: Path) -> list:
        image = load_image(path)
        found = find(image)
        if draw:
            save_image(_draw_target(draw, path, len(images) > 1), paint(image, found))
        return found

    done, failures = each_image(images, one, json_out, what)
    if json_out:
        print_json([{"path": str(p), "faces": [f.to_dict() for f in found]} for p, found in done]
                   + [{"path": p, "error": e} for p, e in failures])
    else:
        for p, found in done:
            out.print(f"{p}: {len(found)} face(s)", highlight=False)
            for f in found:
                out.print(f"  {line(f)}", highlight=False)
    report_failures(failures, json_out)


def _draw_target(out_arg: Path, source: Path, many: bool) -> Path:
    """``--draw``: the file named, for one image; else a folder with one ``STEM.jpg`` per image."""
    if not many and out_arg.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}:
        return out_arg
    out_arg.mkdir(parents=True, exist_ok=True)
    return out_arg / f"{source.stem}.jpg"


def _strip_path(message: str, path: Path) -> str:
    """The message without its leading path (as given, or resolved as the gallery records sources),
    since the report prints the path before it."""
    for prefix in (f"{path}: ", f"{Path(path).resolve()}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message
