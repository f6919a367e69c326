"""Pieces the benchmark scripts share. Standard library only: face_recognition's separate venv
imports this too (speed_fr.py), and must not need faceprint or its dependencies."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def serve(mode: str, paths: list[str], one: Callable[[str], dict], out_path: str, t0: float, t_loaded: float,
          extra: dict | None = None) -> None:
    """The worker side of speed.py's protocol.

    ``cold``: time the first image after import + load, write JSON, return. ``run``: warm up on the
    first image, print ``ready``, wait for a line on stdin (so every worker starts together), then
    time every image and write per-image times and peak RSS.
    """
    if mode == "cold":
        first = one(paths[0])
        done = time.perf_counter()
        Path(out_path).write_text(json.dumps({"import_load_s": t_loaded - t0, "first_image_s": first["total"],
                                              "total_s": done - t0}))
        return
    one(paths[0])  # warm-up
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    times = {p: one(p) for p in paths}
    end = time.time()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out_path).write_text(json.dumps({"start": start, "end": end, "times": times, "peak_rss_mb": rss_kb / 1024,
                                          **(extra or {})}))
