"""Face analysis commands: analyze (attributes of every face), landmarks (the 68 iBUG points) and
liveness (is each face live or a print/screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analysis import ATTRIBUTES, model_names
from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ._common import (AttributesOpt, DbOpt, DetOpt, EmbOpt, JsonOpt, TrainedOpt, attribute_dir_of, faces_in_each, out,
                      print_json, run)

app = typer.Typer()

ImagesArg = Annotated[list[Path], typer.Argument(help="Image files.")]
attribute_app = typer.Typer(help="Train your own face attribute (a mask, glasses) from folders of photos.",
                            no_args_is_help=True)


ModelChoiceOpt = Annotated[Optional[list[str]], typer.Option(
    "--model", "-m", help="ATTRIBUTE=MODEL, repeatable (e.g. expression=fr-expression); "
                          "`faceprint models list` shows kinds landmarks/attribute.")]


def _box(a) -> str:
    return f"box={[round(v) for v in a.face.box]}"


@app.command()
def analyze(images: ImagesArg,
            only: Annotated[Optional[str], typer.Option(
                help=f"Comma-separated attributes (default all but liveness): {','.join(ATTRIBUTES)}.")] = None,
            model: ModelChoiceOpt = None,
            draw: Annotated[Optional[Path], typer.Option(help="Write annotated image(s) here (file or folder).")] = None,
            attribute: TrainedOpt = None, db: DbOpt = None, attributes: AttributesOpt = None,
            detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """Age, gender, expression, head pose, eye state, quality and 68 landmarks of every face.

    An attribute whose model cannot be fetched or loaded is reported with its reason; the rest still run.
    """
    from ..analysis import Analyzer
    from ..analysis.trained import load
    from ..draw import draw_analysis, summary
    from ..pipeline import get_pipeline

    def line(a) -> str:
        return f"{_box(a)} {summary(a)}" + "".join(f"\n    {attribute}: unavailable: {why}"
                                                   for attribute, why in a.errors.items())

    def go() -> None:
        trained = load(attribute, attribute_dir_of(db, attributes)) if attribute else []
        analyzer = Analyzer(only, model, trained)  # a bad attribute or model name fails before any image is read
        pipe = get_pipeline(detector)
        faces_in_each(images, lambda image: analyzer.analyze(image, pipe.detect(image)), draw, json_out, "analysing",
                      line, paint=draw_analysis)
    run(go)


@app.command()
def landmarks(images: ImagesArg,
              draw: Annotated[Optional[Path], typer.Option(help="Write image(s) with the 68 points drawn here.")] = None,
              model: Annotated[str, typer.Option(help=f"One of: {', '.join(model_names('landmarks68'))}.")] = "dlib-68",
              detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """The 68 iBUG landmarks of every face, as named groups (jaw, eyebrows, nose, eyes, lips)."""
    from ..analysis import Analyzer
    from ..draw import draw_analysis
    from ..pipeline import get_pipeline

    def line(a) -> str:
        lm = a.landmarks68
        return f"{_box(a)} " + (f"68 points, eyes {lm.inter_ocular:.0f} px apart" if lm else f"no landmarks: {a.errors}")

    def go() -> None:
        analyzer = Analyzer("landmarks68", {"landmarks68": model})
        pipe = get_pipeline(detector)
        faces_in_each(images, lambda image: analyzer.analyze(image, pipe.detect(image)), draw, json_out,
                      "analysing", line, paint=lambda image, found: draw_analysis(image, found, labels=False))
    run(go)


@app.command()
def liveness(images: ImagesArg,
             model: Annotated[str, typer.Option(help=f"One of: {', '.join(model_names('liveness'))}.")] = "fr-liveness",
             draw: Annotated[Optional[Path], typer.Option(help="Write image(s) with each face's verdict here.")] = None,
             detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """Is each face live, or a print or screen held up to the camera? One image is weak evidence.

    Prints p(live) and the verdict at the model's calibrated threshold (docs/benchmarks.md).
    """
    from ..analysis import parse_models
    from ..api import liveness as find_liveness
    from ..draw import draw_faces

    def verdict(a) -> str:
        lv = a.liveness
        return f"{'live' if lv.live else 'spoof'} {lv.probability:.3f}"

    def line(a) -> str:
        return f"{_box(a)} {verdict(a)} (threshold {a.liveness.threshold}, {a.liveness.model})"

    def go() -> None:
        parse_models({"liveness": model})  # a bad model name fails before any image is read
        faces_in_each(images, lambda image: find_liveness(image, model=model, detector=detector), draw, json_out,
                      "checking", line, paint=lambda image, found: draw_faces(image, [a.face for a in found],
                                                                              [verdict(a) for a in found]))
    run(go)


@attribute_app.command("train")
def attribute_train(name: Annotated[str, typer.Argument(help="The attribute's name (e.g. mask).")],
                    data: Annotated[Path, typer.Option(help="A folder with one sub-folder of face photos per class "
                                                       "(DATA/mask/*.jpg, DATA/no_mask/*.jpg).")],
                    db: DbOpt = None, attributes: AttributesOpt = None, embedder: EmbOpt = DEFAULT_EMBEDDER,
                    detector: DetOpt = DEFAULT_DETECTOR, json_out: JsonOpt = False) -> None:
    """Fit a classifier on each class's photos (their faceprints, or faceprints and the aligned crop's
    HOG, whichever cross-validates better), report its cross-validated accuracy, confusion matrix and
    learning curve, and save it for `analyze --attribute NAME`."""
    from ..analysis.trained import train

    def go() -> None:
        target = attribute_dir_of(db, attributes)
        report = train(name, data, target, embedder=embedder, detector=detector)
        if json_out:
            return print_json({**report, "saved": str(target / f"{name}.json")})
        out.print(f"{name}: {', '.join(f'{c} {n}' for c, n in report['classes'].items())} faces; "
                  f"cross-validated accuracy {report['cv_accuracy']:.1%} on {report['features']} ("
                  + ", ".join(f"{k} {v:.1%}" for k, v in report["cv_accuracy_by_features"].items())
                  + f"); saved to {target / (name + '.json')}",
                  highlight=False)
        for true, row in report["confusion"].items():
            out.print(f"  {true:>12} -> " + ", ".join(f"{p} {n}" for p, n in row.items()), highlight=False)
        out.print("  learning curve: " + ", ".join(f"{p['per_class']}/class {p['accuracy']:.1%}"
                                                   for p in report["learning_curve"]), highlight=False)
        if report["skipped"]:
            out.print(f"  {len(report['skipped'])} photo(s) skipped (no face, unreadable): see --json", highlight=False)
    run(go)
