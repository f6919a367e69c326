"""Commands on video: watch (recognise and track) and capture (enrol from a camera or clip)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..detection import DEFAULT_DETECTOR
from ..errors import FaceprintError
from ._common import (AttributesOpt, DbOpt, DetOpt, FpirOpt, GalleryEmbOpt, IdentifyThresholdOpt, JsonOpt, TrainedOpt,
                      attribute_dir_of, err, out, print_json, progress, run)

if TYPE_CHECKING:
    import numpy as np

app = typer.Typer()

SourceArg = Annotated[str, typer.Argument(help="A video file, a camera index (0) or a stream URL (rtsp://, http://).")]
ChallengeOpt = Annotated[Optional[str], typer.Option(
    help="With liveness (implies it): steps each person must do, in order, to be live: comma-separated "
         "turn-left, turn-right (their own left/right), blink; the prompt is drawn and a step missed fails.")]
StepOpt = Annotated[Optional[float], typer.Option(
    min=0.1, help="Seconds (of video time) each challenge step may take [default: 5].")]


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
          threshold: IdentifyThresholdOpt = None, fpir: FpirOpt = None,
          analyze: Annotated[Optional[str], typer.Option(
              help="Also show these face attributes per track, pooled over its frames (comma-separated, e.g. "
                   "age,gender,expression; 'all': every attribute but liveness).")] = None,
          attribute: TrainedOpt = None, attributes: AttributesOpt = None,
          liveness: Annotated[bool, typer.Option(
              help="Judge each face live, spoof (a print or screen held up) or undecided: drawn by its name, "
                   "a 'liveness' event when reached or changed.")] = False,
          challenge: ChallengeOpt = None, step_seconds: StepOpt = None,
          json_out: JsonOpt = False) -> None:
    """Recognise faces in a video, camera or stream: boxes, names and track ids, events as JSON lines."""
    from ..gallery import Gallery
    from ..video import Watch, Writer
    from ..video.attributes import label

    def go() -> None:
        pooling = _track_attributes(analyze, attribute, attribute_dir_of(db, attributes))  # fails before the source opens
        asked = _challenge(challenge, step_seconds)
        window = _window(show)
        with Gallery(db, detector=detector, embedder=embedder, threshold=threshold, fpir=fpir,
                     readonly=True) as gallery:
            watching = Watch(source, gallery, every=every, liveness=liveness or asked is not None, challenge=asked)
            writer = Writer(out_video, watching.source.fps) if out_video else None
            log = open(events, "a", encoding="utf-8") if events else None
            started, names = time.perf_counter(), set()
            try:
                with progress(json_out) as bar:
                    task = bar.add_task("watching", total=None)
                    for result in watching:
                        names.update(e.name for e in result.events if e.name)
                        pooled, logged = pooling.step(result) if pooling else ({}, _dicts(result.events))
                        _log_events(log, logged)
                        if writer or window:
                            picture = result.annotated({t: label(a) for t, a in pooled.items()})
                            for sink in (writer.write if writer else None, window):
                                if sink:
                                    sink(picture)
                        bar.update(task, advance=1)
            except KeyboardInterrupt:
                err.print("stopped")
            finally:  # whatever ended the loop, the events file and the video are complete up to here
                _log_events(log, pooling.leaving(watching.final_events) if pooling
                            else _dicts(watching.final_events))
                if log:
                    log.close()
                if writer:
                    writer.close()
            elapsed = time.perf_counter() - started
        if watching.frames == 0:
            raise FaceprintError(f"{source}: no frames could be read")
        summary = {"source": source, "frames": watching.frames, "dropped": watching.source.dropped,
                   "fps": round(watching.frames / elapsed, 2) if elapsed > 0 else None,
                   "names": sorted(names), "out": str(out_video) if out_video else None,
                   "events": str(events) if events else None}
        if json_out:
            return print_json(summary)
        out.print(f"{source}: ended after {watching.frames} frame(s) ({summary['fps']} fps, {watching.source.dropped} dropped "
                  f"to keep up); seen: {', '.join(summary['names']) or 'nobody known'}"
                  + (f"; annotated video: {out_video}" if out_video else ""), highlight=False)
    run(go)


def _track_attributes(analyze: str | None, trained: list[str] | None, folder: Path):
    """The per-track attribute pooling ``--analyze`` and ``--attribute`` ask for, or None."""
    if analyze is None and not trained:
        return None
    from ..analysis import DEFAULT_ONLY, Analyzer
    from ..analysis.trained import load
    from ..video.attributes import TrackAttributes

    only = DEFAULT_ONLY if analyze is not None and analyze.strip() == "all" else analyze
    return TrackAttributes(Analyzer(only, trained=load(trained, folder) if trained else ()))


def _challenge(text: str | None, step_seconds: float | None):
    """The ``Challenge`` ``--challenge`` asks for, or None."""
    from ..video.challenge import STEP_SECONDS, Challenge, parse_challenge

    steps = parse_challenge(text)
    return Challenge(steps, step_seconds or STEP_SECONDS) if steps else None


def _dicts(events) -> list[dict]:
    return [e.to_dict() for e in events]


def _log_events(log, events: list[dict]) -> None:
    if log:
        for e in events:
            log.write(json.dumps(e) + "\n")
        log.flush()


@app.command()
def capture(name: Annotated[str, typer.Argument(help="The person to enrol.")],
            source: Annotated[str, typer.Option(help="A video file, a camera index (0) or a stream URL.")],
            count: Annotated[int, typer.Option(min=1, help="How many good faces to collect.")] = 20,
            min_size: Annotated[int, typer.Option(help="Smallest face side accepted, in pixels.")] = 80,
            db: DbOpt = None, detector: DetOpt = DEFAULT_DETECTOR, embedder: GalleryEmbOpt = None,
            liveness: Annotated[bool, typer.Option(
                help="Take faces only once judged live (turning the head a little); refuse a print or screen.")]
            = False,
            challenge: ChallengeOpt = None, step_seconds: StepOpt = None,
            json_out: JsonOpt = False) -> None:
    """Collect good, varied faces of the one person in view and enrol them (refusals say why)."""
    from ..gallery import Gallery
    from ..gallery.names import valid_name
    from ..video import capture as run_capture

    def say(verdict, frame) -> None:  # the log, on stderr, also beside --json
        status = "[green]taken[/]" if verdict.accepted else f"[dim]skipped: {verdict.reason}[/]"
        err.print(f"frame {frame.index:5d}  {status}", highlight=False)

    def go() -> None:
        valid_name(name)
        asked = _challenge(challenge, step_seconds)
        with Gallery(db, detector=detector, embedder=embedder) as gallery:
            result = run_capture(name, source, gallery, count=count, min_size=min_size, on_verdict=say,
                                 liveness=liveness or asked is not None, challenge=asked)
        summary = {"name": name, "enrolled": len(result.enrolled), "wanted": count, "frames": result.frames,
                   "refused": dict(result.refused.most_common())}
        if json_out:
            print_json(summary)
        else:
            out.print(f"enrolled {len(result.enrolled)} of {count} face(s) of {name} from {result.frames} frame(s)",
                      highlight=False)
        if not result.enrolled:
            raise FaceprintError(f"{source}: no usable face of {name} found in {result.frames} frame(s)")
        if len(result.enrolled) < count:
            err.print(f"[yellow]the source ended before {count} good faces were found[/]")
    run(go)
