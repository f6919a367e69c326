"""``faceprint eval``: accuracy on standard benchmarks. The reports are built in
``faceprint.evaluation``; these commands parse, call and print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..detection import DEFAULT_DETECTOR
from ..embedding import DEFAULT_EMBEDDER
from ..errors import FaceprintError
from ._common import (ClusterThresholdOpt, DbOpt, DetOpt, EmbOpt, FpirOpt, GalleryEmbOpt, IdentifyThresholdOpt,
                      JsonOpt, command_line, out, print_json, progress_to, run, write_json)

app = typer.Typer(help="Measure accuracy on standard benchmarks and on video clips.", no_args_is_help=True)

PairsLfwOpt = Annotated[Path, typer.Option(help="LFW folder holding pairs.txt and images/.")]
PeopleLfwOpt = Annotated[Path, typer.Option(help="LFW folder holding images/PERSON/*.jpg.")]
PairsOpt = Annotated[Optional[int], typer.Option(
    "--pairs-per-fold", help="Use only the first N same and N different pairs of each fold (quick checks).")]
FoldsOpt = Annotated[Optional[int], typer.Option(help="Use only the first N folds.")]
WorkersOpt = Annotated[int, typer.Option(help="Processes for embedding.")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Use only the first N people (quick checks).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Embed again; don't read or write the cache.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--json", help="Write the report here.")]
FacesOpt = Annotated[Optional[Path], typer.Option(
    "--faces", help="Read the faces from a `faceprint embed` dataset of these images instead of embedding them.")]


@app.command("lfw")
def eval_lfw(lfw: PairsLfwOpt, detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
             folds: FoldsOpt = None, pairs_per_fold: PairsOpt = None, workers: WorkersOpt = 1,
             json_path: ReportOpt = None,
             plots: Annotated[Optional[Path], typer.Option(help="Write roc.png and distances.png here.")] = None,
             no_cache: NoCacheOpt = False) -> None:
    """LFW View 2: 10-fold accuracy with the threshold chosen on the other folds, AUC, TAR@FAR."""
    from ..evaluation import lfw_report

    def go() -> None:
        with progress_to("embedding") as step:
            r = lfw_report(lfw, detector, embedder, folds=folds, pairs_per_fold=pairs_per_fold, workers=workers,
                           cache=not no_cache, plots=plots, command=command_line(), progress=step)
        if json_path:
            write_json(json_path, r)
        out.print(f"{detector} + {embedder}: {r['pairs']} pairs, accuracy {r['accuracy_mean'] * 100:.2f}% ± "
                  f"{r['accuracy_std'] * 100:.2f}, AUC {r['auc']:.5f}, "
                  + ", ".join(f"TAR {t['tar'] * 100:.2f}% @ FAR {t['far']:g}" for t in r["tar_at_far"])
                  + f", threshold {r['threshold']:.4f}, no face in {len(r['no_face_images'])} of {r['images']} images "
                  f"(their {r['no_face_pairs']} pairs scored at distance 2.0), "
                  f"{r['seconds_per_image'] * 1000:.0f} ms/image{' (cached run)' if r['embeddings_cached'] else ''}",
                  highlight=False)
    run(go)


@app.command("cluster")
def eval_cluster(lfw: PeopleLfwOpt,
                 method: Annotated[Optional[list[str]], typer.Option(
                     help="Method to score; repeat for several (default: every method).")] = None,
                 threshold: ClusterThresholdOpt = None,
                 detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                 workers: WorkersOpt = 1, limit: LimitOpt = None, json_path: ReportOpt = None,
                 faces: FacesOpt = None) -> None:
    """Cluster every LFW image (its central face) and score the clusters against the people's names."""
    from ..clustering import METHODS
    from ..evaluation import cluster_report

    def go() -> None:
        methods = method or list(METHODS)
        if threshold is not None and len(methods) != 1:
            raise FaceprintError("--threshold needs exactly one --method")
        with progress_to("embedding") as step:
            r = cluster_report(lfw, methods, detector, embedder, threshold=threshold, limit=limit, workers=workers,
                               command=command_line(), progress=step, faces=faces)
        if json_path:
            write_json(json_path, r)
        out.print(f"{detector} + {embedder}: {r['images']:,} images of {r['people']:,} people "
                  f"({r['people_2plus']:,} with 2 or more), {len(r['no_face_images'])} without a face "
                  "(each counted as a face alone)", highlight=False)
        for one in r["runs"]:
            b, p = one["bcubed"], one["pairwise"]
            out.print(f"  {one['method']}: BCubed P {b['precision']:.4f} R {b['recall']:.4f} F1 {b['f1']:.4f}, "
                      f"pairwise P {p['precision']:.4f} R {p['recall']:.4f} F1 {p['f1']:.4f}, "
                      f"{one['clusters']:,} clusters ({one['clusters_2plus']:,} of 2 or more faces), "
                      f"clustering {one['cluster_seconds']:.1f} s", highlight=False)
    run(go)


@app.command("thresholds")
def eval_thresholds(lfw: PairsLfwOpt, detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                    folds: FoldsOpt = None, pairs_per_fold: PairsOpt = None, workers: WorkersOpt = 1,
                    no_cache: NoCacheOpt = False, json_out: JsonOpt = False) -> None:
    """The threshold that holds each false-accept rate, and the true-accept rate it leaves."""
    from ..evaluation import thresholds_report

    def go() -> None:
        with progress_to("embedding", quiet=json_out) as step:
            r = thresholds_report(lfw, detector, embedder, folds=folds, pairs_per_fold=pairs_per_fold,
                                  workers=workers, cache=not no_cache, progress=step)
        if json_out:
            return print_json(r)
        t = Table("FAR", "threshold (cosine)", "TAR", "FRR", title=f"{detector} + {embedder}: "
                  f"{r['impostor_pairs']:,} impostor, {r['genuine_pairs']:,} genuine pairs")
        for p in r["points"]:
            t.add_row(f"{p['far']:g}", f"{p['threshold']:.4f}", f"{p['tar'] * 100:.2f}%", f"{p['frr'] * 100:.2f}%")
        out.print(t)
    run(go)


@app.command("identify")
def eval_identify(lfw: PeopleLfwOpt, detector: DetOpt = DEFAULT_DETECTOR, embedder: EmbOpt = DEFAULT_EMBEDDER,
                  workers: WorkersOpt = 1, limit: LimitOpt = None, no_cache: NoCacheOpt = False,
                  json_path: ReportOpt = None, faces: FacesOpt = None, fpir: FpirOpt = None) -> None:
    """Open-set 1:N on all of LFW: one photo enrolled per person, the rest and strangers as probes.

    The last row is the threshold a gallery of this size uses (--fpir); its FPIR column is the
    share of strangers it named."""
    from ..evaluation import identify_report

    def go() -> None:
        with progress_to("embedding") as step:
            r = identify_report(lfw, detector, embedder, limit=limit, workers=workers, cache=not no_cache,
                                command=command_line(), progress=step, faces=faces, fpir=fpir)
        if json_path:
            write_json(json_path, r)
        t = Table("operating point", "threshold (cosine)", "DIR", "FPIR (strangers named)",
                  title=f"{detector} + {embedder}: gallery {r['gallery']:,} people, "
                        f"{r['known_probes']:,} known and {r['unknown_probes']:,} unknown probes; "
                        f"rank-1 {r['rank1'] * 100:.2f}%")
        for p in r["dir_at_far"]:
            t.add_row(f"FPIR {p['target_far']:g} (set on these strangers)", f"{p['threshold']:.4f}", f"{p['dir'] * 100:.2f}%", f"{p['far'] * 100:.2f}%")
        labels = {"verify": "1:1 verification's", "far_1e-4": "FAR 1e-4 per comparison",
                  "gallery": f"gallery default (FPIR {r['fpir_target']:g} at {r['gallery']:,} faces)"}
        for name, p in r["at_thresholds"].items():
            t.add_row(labels[name], f"{p['threshold']:.4f}", f"{p['dir'] * 100:.2f}%", f"{p['far'] * 100:.2f}%")
        out.print(t)
    run(go)


@app.command("video")
def eval_video(clip: Annotated[str, typer.Argument(help="A video file.")],
               db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
               threshold: IdentifyThresholdOpt = None, fpir: FpirOpt = None,
               truth: Annotated[Optional[Path], typer.Option(
                   help="Per-frame truth (.truth.jsonl, as faceprint.testing.synth writes): adds accuracy, "
                        "wrong names.")] = None,
               draw: Annotated[Optional[Path], typer.Option(
                   help="Write each frame where watch and frame-by-frame identification disagree into this "
                        "folder, both answers drawn (watch orange, frame-by-frame blue).")] = None,
               json_out: JsonOpt = False) -> None:
    """Score `watch` on a clip against identifying every frame on its own: no truth file needed."""
    from ..evaluation import draw_disagreements, video_report
    from ..gallery import Gallery

    def go() -> None:
        if truth is not None and not truth.is_file():
            raise FaceprintError(f"{truth}: no such truth file")
        if draw is not None and draw.exists() and not draw.is_dir():
            raise FaceprintError(f"--draw {draw}: not a folder")
        with Gallery(db, detector=detector, embedder=embedder, threshold=threshold, fpir=fpir,
                     readonly=True) as gallery:
            if not gallery.store.count_faces():
                raise FaceprintError("the gallery is empty: enrol someone first (faceprint enroll)")
            r = video_report(clip, gallery, truth, command=command_line())
        if draw is not None:
            r["drawn"] = [str(p) for p in draw_disagreements(clip, r["reference"]["disagreements"], draw)]
        if json_out:
            return print_json(r)
        ref = r["reference"]
        t = ref["time_to_name"]
        line = (f"{clip}: {r['frames']} frames at {r['fps']} fps; against frame-by-frame identification: "
                f"names {_pct(ref['recall'])} of what it names, contradicts it on {ref['contradictions']} face-frames "
                f"({_pct(ref['contradiction_rate'])}), carries names onto {ref['carried']} it cannot judge, "
                f"agrees on {_pct(ref['agreement'])} of the {ref['judged']} it judges confidently; time to name "
                f"(frames after the first clear match): median {_frames(t['median'])}, p95 {_frames(t['p95'])}, "
                f"never {t['never']} "
                f"of {t['stretches']} times a clearly matching face waited for its name")
        if "truth" in r:
            tr = r["truth"]
            line += (f"; against the truth: accuracy {_pct(tr['accuracy'])}, wrong names on {tr['wrong_names']} "
                     f"face-frames ({_pct(tr['wrong_name_rate'])}), {tr['tracks_across_cuts']} track(s) across "
                     f"{tr['cuts']} cut(s)")
        out.print(line, highlight=False)
        for kind, title in (
                ("contradiction", "contradictions: watch shows a name, frame-by-frame confidently says otherwise"),
                ("missed", "missed: frame-by-frame names the face, watch does not show that name")):
            rows = [d for d in ref["disagreements"] if d["kind"] == kind]
            if rows:
                out.print(f"{title} ({len(rows)}):", highlight=False)
                for d in rows[:_SHOWN]:  # one line each, unwrapped: easy to grep
                    out.print(f"  {_disagreement(d)}", highlight=False, soft_wrap=True)
                if len(rows) > _SHOWN:
                    out.print(f"  ... and {len(rows) - _SHOWN} more (--json lists every one)", highlight=False)
        if draw is not None:
            out.print(f"{len(r['drawn'])} frame(s) drawn into {draw}", highlight=False)
    run(go)


#: Disagreements of each kind ``eval video`` prints (``--json`` has all).
_SHOWN = 10


def _disagreement(d: dict) -> str:
    """One face-frame where watch and frame-by-frame identification differ, both answers side by side."""
    from ..evaluation.video import answers

    said, shown = answers(d)
    return f"frame {d['frame']}: frame-by-frame {said}, quality {d['reference']['quality']:.2f}; watch: {shown}"


def _frames(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"
