"""The REST service under load: POST /v1/identify at 1, 4 and 16 concurrent clients, SQLite and PostgreSQL.

    python benchmarks/serve.py --lfw ../shared/datasets/lfw --out benchmarks/results/serve.json
    python benchmarks/serve.py --lfw ../shared/datasets/lfw --seconds 5 --backends sqlite   # quick look

A gallery of ``--people`` LFW people (one photo each: the first, of people with two or more) is
enrolled with the Python API (thumbnails off, as `faceprint serve` has them by default), then for
each backend one `faceprint serve` (default settings: one worker, models on ``min(cores, 4)``
threads) runs on loopback and an async client (httpx) keeps ``c`` requests in flight for
``--seconds`` after a short warm-up, each a real LFW photo as multipart: the enrolled people's
second photos and people with a single photo (never enrolled), interleaved 3:1. Latency is the
client's, request sent to answer read. PostgreSQL is a throwaway local server (tests/servers.py).

The client runs on the same machine as the server, so it takes CPU from it; its CPU per request is
recorded beside the server's (``/proc/PID/stat`` of the serve process), which depends less on
what else the machine is doing than the wall-clock figures do. The whole run takes about
``2 x (3 x (seconds + warmup)) + enrolment`` seconds: ~3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.servers: the throwaway PostgreSQL and the serve subprocess

from tests.servers import faceprint_process, postgres  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def lfw_people(lfw: Path) -> tuple[list[str], list[str]]:
    """(people with two or more photos, people with exactly one), alphabetically."""
    several, single = [], []
    for line in (lfw / "lfw-names.txt").read_text().splitlines():
        name, n = line.split()
        (several if int(n) >= 2 else single).append(name)
    return several, single


def photo(lfw: Path, name: str, n: int) -> Path:
    return lfw / "images" / name / f"{name}_{n:04d}.jpg"


def enrol(location: str, lfw: Path, people: list[str]) -> tuple[str, float]:
    """Fill the gallery through the Python API; returns a read key and the seconds it took."""
    from faceprint.gallery import Gallery
    from faceprint.gallery.keys import create_key

    start = time.perf_counter()
    with Gallery(location, keep_images=False) as g:
        for name in people:
            if g.enroll(name, photo(lfw, name, 1)) is None:
                raise SystemExit(f"{name}: photo 1 not enrolled")
        key = create_key(g.store, "bench", ["read"])
    return key, time.perf_counter() - start


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def client_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def load(url: str, key: str, queries: list[tuple[str, bytes, str | None]], concurrency: int,
               seconds: float, warmup: float, pid: int) -> dict:
    """``concurrency`` requests in flight for ``seconds`` (after ``warmup``): latencies and throughput."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    order = itertools.count()
    records: list[tuple[float, bool, bool | None]] = []  # (latency s, answered 200, named right)
    errors: dict[str, int] = {}

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300,
                                 limits=limits) as client:
        async def worker(until: float, keep: bool) -> None:
            while time.perf_counter() < until:
                file, data, expect = queries[next(order) % len(queries)]
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/identify", files={"image": (file, data, "image/jpeg")})
                    ok, what = r.status_code == 200, str(r.status_code)
                except httpx.HTTPError as e:
                    r, ok, what = None, False, type(e).__name__
                latency = time.perf_counter() - t0
                if not keep:
                    continue
                if not ok:
                    errors[what] = errors.get(what, 0) + 1
                    records.append((latency, False, None))
                    continue
                names = [f["name"] for f in r.json()["faces"]]
                # known: the person is among the faces found; unknown: nobody is named at all
                right = (expect in names) if expect else not any(names)
                records.append((latency, True, right))

        await asyncio.gather(*(worker(time.perf_counter() + warmup, False) for _ in range(concurrency)))
        load_before, cpu_s, cpu_c = os.getloadavg(), server_cpu(pid), client_cpu()
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds, True) for _ in range(concurrency)))
        wall = time.perf_counter() - start
        cpu_s, cpu_c = server_cpu(pid) - cpu_s, client_cpu() - cpu_c

    ms = np.array([lat for lat, _, _ in records]) * 1000
    answered = [right for _, ok, right in records if ok]
    n = len(records)
    return {
        "concurrency": concurrency, "seconds": round(wall, 2), "requests": n,
        "errors": sum(errors.values()), "error_kinds": errors,
        "requests_per_s": round(n / wall, 2),
        "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 1), "p90": round(float(np.percentile(ms, 90)), 1),
                       "p99": round(float(np.percentile(ms, 99)), 1), "mean": round(float(ms.mean()), 1),
                       "max": round(float(ms.max()), 1)},
        "answers_right": round(sum(answered) / len(answered), 4) if answered else None,
        "server_cpu_ms_per_request": round(cpu_s * 1000 / n, 1),
        "client_cpu_ms_per_request": round(cpu_c * 1000 / n, 1),
        "cpu_use_cores": round((cpu_s + cpu_c) / wall, 2),  # server + client, of os.cpu_count()
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    ap.add_argument("--people", type=int, default=300, help="enrolled people, one photo each")
    ap.add_argument("--unknown", type=int, default=100, help="probes of people never enrolled")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per concurrency level")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured time before each level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = ap.parse_args()

    several, single = lfw_people(args.lfw)
    if len(several) < args.people or len(single) < args.unknown:
        raise SystemExit("not enough LFW people for --people / --unknown")
    # spread over the alphabet rather than the first N names
    people = [several[i] for i in np.linspace(0, len(several) - 1, args.people).round().astype(int)]
    strangers = [single[i] for i in np.linspace(0, len(single) - 1, args.unknown).round().astype(int)]
    known = [(p.name, p.read_bytes(), name) for name in people for p in [photo(args.lfw, name, 2)]]
    unknown = [(p.name, p.read_bytes(), None) for name in strangers for p in [photo(args.lfw, name, 1)]]
    queries = []  # three known probes, then one unknown
    for i, q in enumerate(known):
        queries.append(q)
        if i % 3 == 2:
            queries.append(unknown[(i // 3) % len(unknown)])

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python", *(shlex.quote(a) for a in sys.argv)]),
        "load_avg_start": [round(v, 2) for v in os.getloadavg()],
        "gallery": {"people": len(people), "faces": len(people)},
        "queries": {"known": len(known), "unknown": len(unknown), "sent_in_turn": len(queries)},
        "server": "faceprint serve --db DB (one worker, defaults), loopback; client: httpx.AsyncClient, multipart",
        "seconds_per_level": args.seconds, "warmup_s": args.warmup,
        "runs": [],
    }
    t_all = time.perf_counter()
    for backend in args.backends:
        with ExitStack() as stack:
            if backend == "sqlite":
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faceprint-bench-")))
                location = str(tmp / "gallery.db")
            else:
                location = stack.enter_context(postgres())
            key, enrol_s = enrol(location, args.lfw, people)
            print(f"{backend}: enrolled {len(people)} people in {enrol_s:.1f} s", flush=True)
            proc, url = stack.enter_context(faceprint_process(location))
            for c in args.concurrency:
                row = asyncio.run(load(url, key, queries, c, args.seconds, args.warmup, proc.pid))
                row = {"backend": backend, **row}
                report["runs"].append(row)
                lat = row["latency_ms"]
                print(f"{backend:10} c={c:<3} {row['requests']:5} requests  {row['requests_per_s']:6.1f}/s  "
                      f"p50 {lat['p50']:7.1f} ms  p99 {lat['p99']:7.1f} ms  errors {row['errors']}  "
                      f"right {row['answers_right']}  server CPU {row['server_cpu_ms_per_request']} ms/req  "
                      f"client CPU {row['client_cpu_ms_per_request']} ms/req  load {row['load_avg_before'][0]}",
                      flush=True)
    report["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    report["total_s"] = round(time.perf_counter() - t_all, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
