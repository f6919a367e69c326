"""`faceprint attribute train` demonstrated: a mask attribute from LFW photos with generated masks.

    python benchmarks/attribute.py --lfw ../shared/datasets/lfw --people 200   # -> benchmarks/results/attribute.json

For each of N people with two or more photos (every 7th in name order), the first photo gets a
drawn mask (``faceprint.testing.masks``: generated, see its limits) and the second stays plain;
``train`` reports 5-fold cross-validated accuracy, the confusion matrix and the learning curve. Also
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
    report.pop("saved")
    report["skipped"] = len(report["skipped"])
    result = {"command": " ".join(["python", "benchmarks/attribute.py", *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1), **report}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("classes", "skipped", "cv_accuracy", "confusion", "learning_curve")}))


if __name__ == "__main__":
    main()
