"""Single-image liveness (faceprint.analysis.liveness) on LFW photos and generated attacks, in
ISO/IEC 30107-3 terms, and the threshold faceprint ships.

    python benchmarks/liveness.py --lfw ../shared/datasets/lfw --out benchmarks/results/liveness.json

Bona fide presentations: the first photo (``_0001``) of people drawn at random (seed 13), split in
two disjoint groups of people: ``--calibrate`` faces choose the threshold, the p(live) below which
5% of them are refused (BPCER 5%), and ``--check`` other people's faces measure BPCER at it out of
sample. Attacks: each calibration photo as a print and as a screen (faceprint.testing.attacks,
seeded, over the next person's photo as background); APCER per attack type at the threshold, and
the AUC of real against each. The tests use other photos (``_0002``), never these.

A presentation in which the detector finds no face is counted apart (``not_detected``), not as
an accepted or refused attack; otherwise the face nearest the image centre is scored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_model  # noqa: E402

from faceprint.analysis import get_model  # noqa: E402
from faceprint.detection import get_detector  # noqa: E402
from faceprint.imageio import load_image  # noqa: E402
from faceprint.lfw import central, lfw_people  # noqa: E402
from faceprint.testing.attacks import ATTACKS  # noqa: E402

BPCER_GOAL = 0.05


def auc(live: list[float], attack: list[float]) -> float:
    """P(a live face scores above an attack), ties counted half (Mann-Whitney)."""
    a, b = np.asarray(live)[:, None], np.asarray(attack)[None, :]
    return float((a > b).mean() + 0.5 * (a == b).mean())


def threshold_at_bpcer(live: list[float], bpcer: float) -> float:
    """The largest p(live), to 4 decimals, that refuses at most ``bpcer`` of ``live``."""
    s = np.sort(live)
    return float(np.floor(s[int(np.floor(bpcer * len(s)))] * 1e4) / 1e4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/liveness.json"))
    ap.add_argument("--calibrate", type=int, default=200, help="real faces (and attacks made of them)")
    ap.add_argument("--check", type=int, default=200, help="real faces of other people, for BPCER out of sample")
    a = ap.parse_args()

    rng = np.random.default_rng(13)
    people = lfw_people(a.lfw)
    names = [list(people)[i] for i in rng.choice(len(people), a.calibrate + a.check + 1, replace=False)]
    calib, check = names[:a.calibrate + 1], names[a.calibrate + 1:]
    detector, model = get_detector(), get_model("liveness")

    missed = {k: 0 for k in ("real", "check", *ATTACKS)}
    times: list[float] = []

    def score(image: np.ndarray, kind: str) -> float | None:
        faces = detector.detect(image)
        if not faces:
            missed[kind] += 1
            return None
        face = central(faces, image.shape)
        t = time.perf_counter()
        p = model.predict(image, face, {}).probability
        times.append(time.perf_counter() - t)
        return p

    scores: dict[str, list[float]] = {k: [] for k in missed}
    t0 = time.perf_counter()
    for i, name in enumerate(calib[:-1]):
        photo, background = load_image(people[name][0]), load_image(people[calib[i + 1]][0])
        kinds = {"real": photo, **{k: make(photo, background, rng) for k, make in ATTACKS.items()}}
        for kind, image in kinds.items():
            if (p := score(image, kind)) is not None:
                scores[kind].append(p)
    for name in check:
        if (p := score(load_image(people[name][0]), "check")) is not None:
            scores["check"].append(p)

    thr = threshold_at_bpcer(scores["real"], BPCER_GOAL)
    refused = lambda s: float((np.asarray(s) < thr).mean())  # noqa: E731
    report = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - t0, 1),
        "model": model.name,
        "faces": {k: len(v) for k, v in scores.items()}, "not_detected": missed,
        "threshold": {"value": thr, "how": f"the p(live) refusing {BPCER_GOAL:.0%} of the {len(scores['real'])} "
                                           "calibration faces (so BPCER on them is at most that by construction)"},
        "bpcer": {"calibration": round(refused(scores["real"]), 4), "held_out_people": round(refused(scores["check"]), 4)},
        "apcer": {k: round(1 - refused(scores[k]), 4) for k in ATTACKS},
        "auc": {k: round(auc(scores["real"], scores[k]), 4) for k in ATTACKS},
        "at_0.5": {"bpcer": round(float((np.asarray(scores["real"]) < 0.5).mean()), 4),
                   **{f"apcer_{k}": round(float((np.asarray(scores[k]) >= 0.5).mean()), 4) for k in ATTACKS}},
        "p_live": {k: {"mean": round(float(np.mean(v)), 4),
                       "quantiles_5_25_50_75_95": np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]).round(4).tolist()}
                   for k, v in scores.items()},
        "ms_per_face": round(1000 * float(np.median(times)), 1),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("faces", "not_detected", "threshold", "bpcer", "apcer", "auc", "at_0.5",
                                               "seconds")}, indent=2))


if __name__ == "__main__":
    main()
