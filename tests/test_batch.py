"""`faceprint embed`: the Parquet dataset's schema, resuming after kill -9, and Ray giving the same faces.

Real models on real LFW photos, real processes killed for real; the Ray tests start a real
three-node Ray cluster on loopback (Ray's own ``cluster_utils.Cluster``: a head and two workers,
one CPU each) and skip, saying why, where Ray is not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="`faceprint embed` needs pyarrow (pip install 'faceprint[batch]')")
pq = pytest.importorskip("pyarrow.parquet")

from faceprint.batch import embed_photos, face_schema, load_faces, read_faces, read_photos  # noqa: E402
from faceprint.detection import DEFAULT_DETECTOR  # noqa: E402
from faceprint.embedding import DEFAULT_EMBEDDER  # noqa: E402
from faceprint.errors import FaceprintError  # noqa: E402
from faceprint.imageio import save_image  # noqa: E402

from .servers import descendants  # noqa: E402

FACEPRINT = [sys.executable, "-m", "faceprint"]
ROOT = Path(__file__).resolve().parents[1]


def lfw_photos(lfw: Path, n: int, skip: int = 0) -> list[Path]:
    """The first ``n`` LFW images in sorted order after ``skip``: the same photos on every run."""
    people = sorted((lfw / "images").iterdir())
    found: list[Path] = []
    for person in people:
        found += sorted(person.glob("*.jpg"))
        if len(found) >= n + skip:
            break
    return found[skip:skip + n]


def embed(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([*FACEPRINT, "embed", *args], capture_output=True, text=True, timeout=900,
                       env={**os.environ, **(env or {})})
    if check:
        assert p.returncode == 0, p.stderr
    return p


def faces_sorted(root: Path) -> pa.Table:
    return read_faces(root).sort_by([("path", "ascending"), ("face", "ascending")])


def raw(root: Path, kind: str) -> pa.Table:
    """Every row of every committed part, without the reader's deduplication."""
    parts = sorted((root / "photos").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(root / kind / p.name) for p in parts])


def assert_each_photo_once(root: Path, photos: list[Path]) -> None:
    """Every photo recorded once, its faces stored once each and as many as its record says."""
    records, faces = raw(root, "photos"), raw(root, "faces")
    paths = records.column("path").to_pylist()
    assert sorted(paths) == sorted(str(p) for p in photos)  # each once, none missing
    keys = list(zip(faces.column("path").to_pylist(), faces.column("face").to_pylist()))
    assert len(keys) == len(set(keys))
    per_photo = {p: 0 for p in paths}
    for p, _ in keys:
        per_photo[p] += 1
    assert per_photo == dict(zip(paths, records.column("faces").to_pylist()))


@pytest.fixture(scope="module")
def small(lfw_dir, tmp_path_factory) -> tuple[Path, list[Path], Path, Path]:
    """Six LFW photos (four of Aaron Peirsol), a photo without a face and a file that is no image, embedded once."""
    d = tmp_path_factory.mktemp("small")
    blank, junk = d / "blank.png", d / "junk.jpg"
    save_image(blank, np.full((120, 160, 3), 200, np.uint8))
    junk.write_bytes(b"not an image")
    photos = [*lfw_photos(lfw_dir, 6, skip=3), blank, junk]
    out = d / "faces.parquet"
    p = embed(*map(str, photos), "--out", str(out), "--batch-size", "3", "--json", check=False)
    assert p.returncode == 1, p.stderr  # the junk file failed, and the exit status says so
    return out, photos, blank, junk


def test_dataset_schema_and_records(small):
    out, photos, blank, junk = small
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "faceprint.faces/1"
    assert (manifest["detector"], manifest["embedder"], manifest["dims"]) == (DEFAULT_DETECTOR, DEFAULT_EMBEDDER, 512)
    faces = pq.read_table(out / "faces")  # a plain Parquet dataset: any reader takes the folder
    assert faces.schema.equals(face_schema(512))
    assert [f.name for f in faces.schema] == ["path", "sha256", "face", "box", "landmarks", "score", "detector",
                                              "embedder", "vector"]
    assert faces.num_rows >= 6
    row = faces.slice(0, 1).to_pylist()[0]
    assert row["sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    assert set(dict(row["landmarks"])) >= {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    x1, y1, x2, y2 = row["box"]
    assert 0 <= x1 < x2 <= 250 and 0 <= y1 < y2 <= 250 and 0 < row["score"] <= 1
    assert abs(np.linalg.norm(row["vector"]) - 1) < 1e-5
    records = {r["path"]: r for r in read_photos(out).to_pylist()}
    assert len(records) == 8 and (len(list((out / "photos").glob("*.parquet")))) == 3
    assert records[str(blank)]["status"] == "no_face" and records[str(blank)]["faces"] == 0
    assert records[str(blank)]["width"] == 160 and records[str(blank)]["height"] == 120
    assert records[str(junk)]["status"] == "failed" and "not a recognised image" in records[str(junk)]["error"]
    assert all(records[str(p)]["status"] == "ok" for p in photos[:6])
    assert_each_photo_once(out, photos)
    # what `cluster` reads: boxes and vectors in row order
    boxes, X, _ = load_faces(out)
    assert X.shape == (faces.num_rows, 512) and [b["path"] for b in boxes] == faces.column("path").to_pylist()


def test_rerun_skips_what_is_done_and_retries_failures_only_when_asked(small, tmp_path):
    first, photos, _, junk = small
    out = tmp_path / "faces.parquet"
    subprocess.run(["cp", "-r", str(first), str(out)], check=True)
    again = json.loads(embed(*map(str, photos), "--out", str(out), "--json").stdout)
    assert (again["skipped"], again["embedded"], again["failed"]) == (8, 0, [])  # the failure is not retried
    retried = json.loads(embed(*map(str, photos), "--out", str(out), "--retry-failed", "--json", check=False).stdout)
    assert (retried["embedded"], [f["path"] for f in retried["failed"]]) == (1, [str(junk)])
    # the junk file's record is now in two parts; the reader keeps the latest, once
    assert sorted(read_photos(out).column("path").to_pylist()) == sorted(map(str, photos))


def test_other_models_refuse_the_folder(small):
    out, photos, _, _ = small
    p = embed(str(photos[0]), "--out", str(out), "--embedder", "mobilefacenet", check=False)
    assert p.returncode == 1 and "write to another folder" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_a_batch_torn_between_its_two_parts_is_dropped_and_redone(small, tmp_path):
    """The crash window of the commit protocol: faces part written, photos part not yet."""
    out, photos, _, _ = small
    copy = tmp_path / "faces.parquet"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    torn = copy / "photos" / "part-00000.parquet"
    lost = pq.read_table(torn).column("path").to_pylist()
    torn.unlink()  # as if the run died right before this batch's commit record
    assert read_faces(copy).num_rows < read_faces(out).num_rows  # its faces are not read
    done = json.loads(embed(*map(str, photos), "--out", str(copy), "--json", check=False).stdout)
    assert done["embedded"] == len(lost)
    assert_each_photo_once(copy, photos)
    assert faces_sorted(copy).equals(faces_sorted(out))


def test_cluster_reads_the_dataset(small, tmp_path):
    out, _, _, _ = small
    p = subprocess.run([*FACEPRINT, "cluster", str(out), "--json", str(tmp_path / "c.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    stored = read_faces(out)
    assert sum(map(len, result["clusters"])) + len(result["noise"]) == stored.num_rows
    # one photo each of Aaron Guiel and Aaron Patterson, four of Aaron Peirsol: his make the one cluster
    people = [{Path(f["path"]).parent.name for f in c} for c in result["clusters"]]
    assert people and all(p == {"Aaron_Peirsol"} for p in people)
    # and a cluster found in the dataset becomes a person (the face at its box, from the photo)
    db = tmp_path / "g.db"
    enrol = subprocess.run([*FACEPRINT, "people", "from-cluster", "--json", str(tmp_path / "c.json"), "--cluster", "0",
                            "--name", "Aaron Peirsol", "--db", str(db)], capture_output=True, text=True, timeout=300)
    assert enrol.returncode == 0, enrol.stderr
    shown = subprocess.run([*FACEPRINT, "people", "list", "--db", str(db), "--json"], capture_output=True, text=True)
    assert json.loads(shown.stdout) == [{"name": "Aaron Peirsol", "faces": len(result["clusters"][0])}]
    mixed = subprocess.run([*FACEPRINT, "cluster", str(out), str(tmp_path / "c.json")],
                           capture_output=True, text=True, timeout=300)
    assert mixed.returncode == 1 and "not both" in mixed.stderr


@pytest.mark.parametrize("kind", ["faces", "photos"])
def test_a_corrupt_part_is_one_line_and_changes_nothing(small, tmp_path, kind):
    """A committed part cut short (a disk error, a hand edit): `cluster` names it in one line and
    exits 1; the dataset is left as it was."""
    out, _, _, _ = small
    copy = tmp_path / "faces.parquet"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    part = copy / kind / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:300])
    before = {f: f.read_bytes() for f in copy.rglob("*") if f.is_file()}
    p = subprocess.run([*FACEPRINT, "cluster", str(copy), "--json", str(tmp_path / "c.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and f"{part}: not a readable Parquet part" in p.stderr
    assert {f: f.read_bytes() for f in copy.rglob("*") if f.is_file()} == before
    with pytest.raises(FaceprintError, match="not a readable Parquet part"):
        load_faces(copy)


def test_kill_9_mid_run_then_rerun_embeds_every_photo_once(lfw_dir, tmp_path):
    photos = lfw_photos(lfw_dir, 60, skip=100)
    out = tmp_path / "faces.parquet"
    args = [*FACEPRINT, "embed", *map(str, photos), "--out", str(out), "--batch-size", "4"]
    run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(list((out / "photos").glob("part-*.parquet"))) < 3:
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    committed = sum(pq.read_table(p).num_rows for p in (out / "photos").glob("part-*.parquet"))
    assert 12 <= committed < 60  # killed mid-run, with batches behind it
    rerun = json.loads(embed(*map(str, photos), "--out", str(out), "--batch-size", "4", "--json").stdout)
    assert rerun["skipped"] == committed and rerun["embedded"] == 60 - committed
    assert not list(out.glob("*/*.tmp"))
    assert_each_photo_once(out, photos)


# -- Ray ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    """A head and two worker nodes on loopback, one CPU each; shut down after the module."""
    pytest.importorskip("ray.data", reason="Ray is not installed (pip install 'faceprint[ray]')")
    from ray.cluster_utils import Cluster

    # the nodes' worker processes import faceprint from this checkout
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved]))
    # a node killed mid-run is noticed after 5 missed health checks a second apart, not Ray's 5 at 3 s
    health = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 << 20,
                                                           "include_dashboard": False, "_system_config": health})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=100 << 20) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()
    if saved is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def twenty(lfw_dir, tmp_path_factory) -> tuple[list[Path], Path]:
    """Twenty LFW photos embedded by the local engine: the reference."""
    photos = lfw_photos(lfw_dir, 20, skip=300)
    out = tmp_path_factory.mktemp("local") / "faces.parquet"
    embed_photos(photos, out, DEFAULT_DETECTOR, DEFAULT_EMBEDDER, batch_size=4)
    return photos, out


def test_ray_cluster_gives_exactly_the_local_engines_faces(ray_cluster, twenty, tmp_path):
    cluster, _ = ray_cluster
    photos, local = twenty
    out = tmp_path / "faces.parquet"
    summary = json.loads(embed(*map(str, photos), "--out", str(out), "--engine", "ray", "--address", cluster.address,
                               "--workers", "2", "--batch-size", "4", "--json").stdout)
    assert summary["embedded"] == 20
    assert_each_photo_once(out, photos)
    assert faces_sorted(out).equals(faces_sorted(local))  # same boxes, landmarks, scores and vectors, bit for bit


def _embedder_nodes(nodes: list) -> list:
    """The nodes whose raylet runs one of `embed`'s actors (a ``ray::MapWorker(MapBatches(_RayEmbedder))``
    process, read from /proc): Ray puts the pool's two actors on any two of the three nodes."""
    from ray._private.ray_constants import PROCESS_TYPE_RAYLET

    def runs_an_embedder(node) -> bool:
        for pid in descendants(node.all_processes[PROCESS_TYPE_RAYLET][0].process.pid):
            try:
                if b"_RayEmbedder" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
            except OSError:  # the process ended while being read
                continue
        return False
    return [n for n in nodes if runs_an_embedder(n)]


def test_losing_a_ray_worker_mid_run_still_embeds_every_photo_once(ray_cluster, twenty, tmp_path):
    cluster, workers = ray_cluster
    photos, local = twenty
    out = tmp_path / "faces.parquet"
    run = subprocess.Popen([*FACEPRINT, "embed", *map(str, photos), "--out", str(out), "--engine", "ray",
                            "--address", cluster.address, "--workers", "2", "--batch-size", "2", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    held = []  # once a batch is done: the worker nodes holding an embedder (the head holds at most one)
    while not held:
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
        held = _embedder_nodes(workers) if list((out / "photos").glob("part-*.parquet")) else []
    cluster.remove_node(held[0], allow_graceful=False)  # the node and its actor die mid-batch
    assert len(list((out / "photos").glob("part-*.parquet"))) < 10  # of ten batches: the run was not over
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    assert json.loads(stdout)["embedded"] == 20
    assert_each_photo_once(out, photos)
    assert faces_sorted(out).equals(faces_sorted(local))


def test_ray_engine_missing_is_one_line(lfw_dir, tmp_path):
    """Without Ray importable, --engine ray says how to get it, in one line, and writes nothing."""
    photos = lfw_photos(lfw_dir, 1)
    blocker = tmp_path / "noray"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('ray is blocked for this test')\n")
    out = tmp_path / "faces.parquet"
    p = embed(str(photos[0]), "--out", str(out), "--engine", "ray", check=False,
              env={"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])})
    assert p.returncode == 1 and "pip install 'faceprint[ray]'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_reads_the_central_faces_from_a_dataset(lfw_dir, tmp_path):
    """`eval cluster --faces` scores the stored faces exactly as embedding the photos again does."""
    photos = lfw_photos(lfw_dir, 9)  # the first six people: five alone, and Aaron Peirsol's four
    out = tmp_path / "faces.parquet"
    embed(*map(str, photos), "--out", str(out))

    def report(*extra: str) -> dict:
        p = subprocess.run([*FACEPRINT, "eval", "cluster", "--lfw", str(lfw_dir), "--limit", "6",
                            "--json", str(tmp_path / "r.json"), *extra], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        return json.loads((tmp_path / "r.json").read_text())

    fresh, stored = report(), report("--faces", str(out))
    assert fresh["images"] == stored["images"] == 9
    for a, b in zip(fresh["runs"], stored["runs"]):
        assert (a["bcubed"], a["clusters"]) == (b["bcubed"], b["clusters"])
    too_few = subprocess.run([*FACEPRINT, "eval", "cluster", "--lfw", str(lfw_dir), "--limit", "7", "--faces", str(out)],
                             capture_output=True, text=True, timeout=600)
    assert too_few.returncode == 1 and "not in it" in too_few.stderr
