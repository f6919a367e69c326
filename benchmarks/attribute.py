"""`faceprint attribute train` demonstrated: a mask attribute from LFW photos with generated masks.

    python benchmarks/attribute.py --lfw ../shared/datasets/lfw --people 200   # -> benchmarks/results/attribute.json

For each of N people with two or more photos (every 7th in name order), the first photo gets a
drawn mask (``faceprint.testing.masks``: generated, see its limits) and the second stays plain;
``train`` reports 5-fold cross-validated accuracy for each kind of features, the confusion matrix
and the learning curve. Then the saved classifier (``analyze --attribute``) is scored on N other
people it never saw, made the same way: the number that did not help choose the features. Also
reported: how many masked faces the default detector finds at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--people", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribute.json")
    args = ap.parse_args()
    from faceprint.testing.masks import lfw_people_with_two, masked_and_plain

    with tempfile.TemporaryDirectory() as tmp:
        data = masked_and_plain(args.lfw, lfw_people_with_two(args.lfw, args.people, 0), Path(tmp) / "data")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "faceprint", "attribute", "train", "mask", "--data", str(data),
                               "--attributes", str(Path(tmp) / "attributes"), "--json"],
                              capture_output=True, text=True, check=True)
        report = json.loads(done.stdout)
        unseen = masked_and_plain(args.lfw, lfw_people_with_two(args.lfw, args.people, 3), Path(tmp) / "unseen")
        photos = sorted(unseen.glob("*/*.jpg"))
        done = subprocess.run([sys.executable, "-m", "faceprint", "analyze", *map(str, photos), "--attribute", "mask",
                               "--attributes", str(Path(tmp) / "attributes"), "--json"],
                              capture_output=True, text=True, check=True)
        right, wrong = 0, []
        for entry in json.loads(done.stdout):
            if entry["faces"]:  # the largest face, as train takes
                face = max(entry["faces"], key=lambda f: (f["face"]["box"][2] - f["face"]["box"][0]))
                truth = Path(entry["path"]).parent.name
                right += face["mask"]["label"] == truth
                wrong += [] if face["mask"]["label"] == truth else [f"{truth}/{Path(entry['path']).name}"]
        report["unseen_people"] = {"photos": len(photos), "faces": right + len(wrong),
                                   "accuracy": round(right / max(right + len(wrong), 1), 4), "wrong": wrong}
    report.pop("saved")
    report["skipped"] = len(report["skipped"])
    result = {"command": " ".join(["python", "benchmarks/attribute.py", *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1), **report}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("classes", "skipped", "features", "cv_accuracy_by_features", "confusion",
                                                "learning_curve", "unseen_people")}))


if __name__ == "__main__":
    main()
