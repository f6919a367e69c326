"""Video liveness (faceprint.video.liveness) on generated clips: APCER, BPCER, time to a verdict, and
what ``watch --liveness`` adds to each frame's cost.

    python benchmarks/video_liveness.py --lfw ../shared/datasets/lfw --out benchmarks/results/video_liveness.json

For each of ``--people`` LFW people drawn at random (seed 17; their first photo, ``_0001``; the tests
use ``_0002`` photos), one clip of each kind from faceprint.testing.presentations (seeded by the
person's rank): the photo printed and turned in 3D, the photo on a screen turned the same way, the
photo's head animated as a live face, and that head held still. Each clip is watched twice, without
and with liveness, alternately, so the machine's load falls on both alike.

The decision is the verdict of the clip's face (its longest track) ``--decide`` seconds after it
appeared; APCER is the share of attack clips decided live, BPCER the share of live clips decided
spoof (per kind: moving, still); the shares left undecided are reported beside them. These clips
are generated and say what the judge does on them only (faceprint/testing/presentations.py says
what they cannot tell).

With ``--challenge STEPS`` (e.g. ``turn-left,blink``) it measures challenges instead: per person, a
still head that does the steps on cue (one every 1.6 s from 0.4 s), the same head doing nothing, and
the print and the screen doing the turns; each watched with the challenge (``--step-seconds`` each)
to its end, whose final verdict is counted; and the cost per frame against watch without liveness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_model  # noqa: E402

from faceprint.lfw import lfw_people  # noqa: E402
from faceprint.testing.presentations import FPS, KINDS, LIVE_KINDS, make_presentation  # noqa: E402
from faceprint.video import Challenge, Watch  # noqa: E402
from faceprint.video.challenge import parse_challenge  # noqa: E402
from faceprint.video.liveness import FAILED, LIVE, SPOOF, UNDECIDED  # noqa: E402

#: Challenge clips: what each does (``acts``: the steps, the turns only, none), by name.
CHALLENGE_CLIPS = {"done": ("still", "all"), "not_done": ("still", "none"), "print": ("print", "turns"),
                   "screen": ("screen", "turns")}


def watched(video: Path, liveness: bool, challenge: Challenge | None = None
            ) -> tuple[float, int, dict[int, list[tuple[int, str]]], dict[int, str]]:
    """Seconds spent, frames, per track its (frame, verdict) on every frame it was seen, and per track
    the reason of its last verdict."""
    seen: dict[int, list[tuple[int, str]]] = defaultdict(list)
    reasons: dict[int, str] = {}
    started, frames = time.perf_counter(), 0
    for result in Watch(video, liveness=liveness or challenge is not None, challenge=challenge):
        frames += 1
        for face in result.faces:
            seen[face.track].append((result.index, face.liveness or UNDECIDED))
        reasons.update((e.track, e.reason) for e in result.events if e.kind == "liveness")
    return time.perf_counter() - started, frames, seen, reasons


def decision(seen: dict[int, list[tuple[int, str]]], decide_s: float) -> tuple[str, float | None]:
    """The main track's verdict ``decide_s`` after it appeared, and the seconds to its first verdict."""
    if not seen:
        return "no face", None
    track = max(seen.values(), key=len)
    first = track[0][0]
    at = [v for f, v in track if f <= first + decide_s * FPS][-1]
    reached = next((f for f, v in track if v != UNDECIDED), None)
    return at, None if reached is None else round((reached - first) / FPS, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/video_liveness.json"))
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    ap.add_argument("--decide", type=float, default=3.0, help="seconds after the face appears that the verdict is read")
    ap.add_argument("--challenge", help="measure this challenge instead (comma-separated steps)")
    ap.add_argument("--step-seconds", type=float, default=3.0, help="with --challenge: seconds each step may take")
    a = ap.parse_args()
    if a.challenge:
        return challenges(a)

    people, names = chosen(a)
    t0 = time.perf_counter()
    clips, cost = [], {False: [0.0, 0], True: [0.0, 0]}
    with tempfile.TemporaryDirectory() as folder:
        for rank, name in enumerate(names):
            for kind in KINDS:
                clip = make_presentation(people[name][0], Path(folder) / f"{rank}-{kind}.mp4", kind,
                                         seconds=a.seconds, seed=rank)
                for liveness in (False, True):
                    spent, frames, seen, _ = watched(clip.video, liveness)
                    cost[liveness][0] += spent
                    cost[liveness][1] += frames
                verdict, to_verdict = decision(seen, a.decide)
                clips.append({"person": name, "kind": kind, "decision": verdict, "seconds_to_verdict": to_verdict,
                              "final": max(seen.values(), key=len)[-1][1] if seen else "no face"})
                print(json.dumps(clips[-1]), flush=True)

    def share(kind: str, verdict: str) -> float:
        mine = [c for c in clips if c["kind"] == kind]
        return round(sum(c["decision"] == verdict for c in mine) / len(mine), 4)

    report = {
        **header(t0),
        "clips": {"people": a.people, "per_kind": a.people, "seconds": a.seconds, "fps": FPS, "size": "640x480",
                  "generated": "faceprint.testing.presentations"},
        "decision_after_s": a.decide,
        "apcer": {k: share(k, LIVE) for k in KINDS if k not in LIVE_KINDS},
        "attacks_refused_as_spoof": {k: share(k, SPOOF) for k in KINDS if k not in LIVE_KINDS},
        "attacks_undecided": {k: share(k, UNDECIDED) for k in KINDS if k not in LIVE_KINDS},
        "bpcer": {k: share(k, SPOOF) for k in LIVE_KINDS},
        "live_decided_live": {k: share(k, LIVE) for k in LIVE_KINDS},
        "live_undecided": {k: share(k, UNDECIDED) for k in LIVE_KINDS},
        "seconds_to_verdict_median": {
            k: (round(float(np.median(t)), 2) if (t := [c["seconds_to_verdict"] for c in clips
                                              if c["kind"] == k and c["seconds_to_verdict"] is not None]) else None)
            for k in KINDS},
        "ms_per_frame": per_frame(cost, "watch_liveness"),
        "per_clip": clips,
    }
    write(a.out, report)


def chosen(a: argparse.Namespace) -> tuple[dict[str, list[Path]], list[str]]:
    """LFW's people, and the ``--people`` of them drawn (seed 17)."""
    rng = np.random.default_rng(17)
    people = lfw_people(a.lfw)
    return people, [list(people)[i] for i in rng.choice(len(people), a.people, replace=False)]


def header(t0: float) -> dict:
    return {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - t0, 1)}


def per_frame(cost: dict[bool, list], measured: str) -> dict:
    """Milliseconds a frame without (False) and with (True, named ``measured``) what is measured."""
    ms = {k: 1000 * spent / max(frames, 1) for k, (spent, frames) in cost.items()}
    return {"watch": round(ms[False], 1), measured: round(ms[True], 1), "added": round(ms[True] / ms[False] - 1, 4),
            "how": "watch without a gallery (track and embed), decoding included, both runs alternating"}


def write(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_clip"}, indent=2))


def challenges(a: argparse.Namespace) -> None:
    """The ``--challenge`` benchmark (see the module docstring)."""
    steps = parse_challenge(a.challenge)
    people, names = chosen(a)
    cues = [(0.4 + 1.6 * i, step) for i, step in enumerate(steps)]
    seconds = cues[-1][0] + 2.0
    t0 = time.perf_counter()
    clips, cost = [], {False: [0.0, 0], True: [0.0, 0]}
    with tempfile.TemporaryDirectory() as folder:
        for rank, name in enumerate(names):
            for label, (kind, acting) in CHALLENGE_CLIPS.items():
                acts = {"all": cues, "turns": [c for c in cues if c[1] != "blink"], "none": []}[acting]
                clip = make_presentation(people[name][0], Path(folder) / f"{rank}-{label}.mp4", kind, seconds=seconds,
                                         seed=rank, acts=acts)
                for asked in (False, True):
                    challenge = Challenge(steps, a.step_seconds) if asked else None
                    spent, frames, seen, reasons = watched(clip.video, False, challenge)
                    cost[asked][0] += spent
                    cost[asked][1] += frames
                track = max(seen, key=lambda t: len(seen[t]), default=None)
                clips.append({"person": name, "clip": label, "final": seen[track][-1][1] if seen else "no face",
                              "reason": reasons.get(track)})
                print(json.dumps(clips[-1]), flush=True)
    report = {
        **header(t0),
        "challenge": list(steps), "step_seconds": a.step_seconds, "cues_s": [c[0] for c in cues],
        "clips": {"people": a.people, "seconds": seconds, "fps": FPS, "size": "640x480",
                  "generated": "faceprint.testing.presentations"},
        "final_verdicts": {label: {v: sum(c["final"] == v for c in clips if c["clip"] == label)
                                   for v in (LIVE, FAILED, SPOOF, UNDECIDED)} for label in CHALLENGE_CLIPS},
        "ms_per_frame": per_frame(cost, "watch_challenge"),
        "per_clip": clips,
    }
    write(a.out, report)


if __name__ == "__main__":
    main()
