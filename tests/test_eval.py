"""`faceprint eval`: the report's structure on a small LFW subset, the metrics on known inputs,
the cache key, and the fusion embedder's equivalence to its parts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from faceprint import evaluation as ev

from .test_cli import run

REPORT_KEYS = {
    "schema", "detector", "embedder", "pairs", "folds", "pairs_per_fold", "accuracy_mean", "accuracy_std",
    "fold_accuracies", "fold_thresholds", "threshold", "threshold_selection", "auc", "tar_at_far",
    "far_resolution", "far_note", "images", "no_face_images", "no_face_pairs", "no_face_policy",
    "seconds_per_image", "embeddings_cached", "pipeline", "plots", "command",
}


def test_eval_lfw_report_on_a_subset(lfw_dir, tmp_path):
    """One fold cut to 50 same + 50 different pairs: the full report, plots, plausible accuracy."""
    out = tmp_path / "lfw.json"
    run("eval", "lfw", "--lfw", str(lfw_dir), "--folds", "1", "--pairs-per-fold", "50", "--no-cache",
        "--json", str(out), "--plots", str(tmp_path / "plots"))
    r = json.loads(out.read_text())
    assert set(r) == REPORT_KEYS
    assert r["schema"] == "faceprint.eval.lfw/1"
    assert (r["pairs"], r["folds"], r["pairs_per_fold"]) == (100, 1, 50)
    assert len(r["fold_accuracies"]) == len(r["fold_thresholds"]) == 1
    assert r["accuracy_mean"] > 0.9 and 0.9 < r["auc"] <= 1
    assert [t["far"] for t in r["tar_at_far"]] == [1e-2, 1e-3]
    assert all(set(t) == {"far", "threshold", "tar", "far_measured"} and t["far_measured"] <= t["far"]
               for t in r["tar_at_far"])
    assert r["far_resolution"] == pytest.approx(1 / 50)
    assert r["images"] <= 200 and r["no_face_policy"] == "pair distance set to 2.0"
    assert isinstance(r["no_face_images"], list) and (r["no_face_pairs"] > 0) == bool(r["no_face_images"])
    assert 0 < r["seconds_per_image"] < 5 and r["embeddings_cached"] is False
    assert "r1" in r["pipeline"]["embedder"] and len(r["plots"]) == 2
    for png in r["plots"]:
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_eval_thresholds_json_on_a_subset(lfw_dir):
    r = json.loads(run("eval", "thresholds", "--lfw", str(lfw_dir), "--folds", "1", "--pairs-per-fold", "20",
                       "--no-cache", "--json").stdout)
    assert set(r) == {"detector", "embedder", "images", "impostor_pairs", "genuine_pairs", "far_resolution", "points"}
    assert r["impostor_pairs"] > 1000 and r["genuine_pairs"] >= 20
    assert [p["far"] for p in r["points"]] == [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]  # a ModelSpec's far_thresholds
    for p in r["points"]:
        assert set(p) == {"far", "threshold", "tar", "frr"} and p["tar"] + p["frr"] == pytest.approx(1)
    ts = [p["threshold"] for p in r["points"]]
    assert ts == sorted(ts, reverse=True)  # a lower FAR needs a stricter (smaller) distance (or, past the
    # resolution of this subset's few thousand pairs, the same)


def test_auc_and_tar_at_far_on_known_distances():
    same = np.array([True] * 4 + [False] * 4)
    assert ev.auc(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]), same) == 1.0
    assert ev.auc(np.array([0.5, 0.6, 0.7, 0.8, 0.1, 0.2, 0.3, 0.4]), same) == 0.0
    assert ev.auc(np.full(8, 0.5), same) == 0.5  # ties count half
    d = np.array([0.1, 0.2, 0.3, 0.9, 0.25, 0.6, 0.7, 0.8])
    t = ev.tar_at_far(d, same, 0.25)  # one of four impostors may pass: the one at 0.25
    assert t["far_measured"] == 0.25 and t["tar"] == 0.75 and 0.25 <= t["threshold"] < 0.6
    t = ev.tar_at_far(d, same, 0.1)  # none may pass
    assert t["far_measured"] == 0 and t["tar"] == 0.5


def test_cache_key_covers_weights_and_settings():
    from faceprint.embedding.faceplugin import FacePlugin

    a, b = FacePlugin(flip=False).fingerprint, FacePlugin(flip=True).fingerprint
    assert a != b and "flip=True" in b
    assert "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581" in a  # the weights' SHA-256


def test_a_fusion_made_before_its_parts_does_not_deadlock():
    """The registry makes the fusion under its lock and the fusion makes its parts through the same
    registry: with a plain lock a fresh process hung there for ever (seen in this suite's order)."""
    code = "from faceprint.embedding import get_embedder; print(get_embedder('faceplugin+dlib-resnet').dims)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "640", p.stderr


def test_fusion_is_the_weighted_mean_of_its_parts(lfw_dir):
    """The fused vector aligns each part on its own template; its cosine distance is exactly the
    weighted mean of the parts' distances, which is what the evaluation's shortcut relies on."""
    from faceprint.embedding import get_embedder
    from faceprint.imageio import load_image
    from faceprint.pipeline import get_pipeline

    from .conftest import lfw_image

    fusion = get_embedder("faceplugin+dlib-resnet")
    pipe = get_pipeline("mtcnn", "faceplugin+dlib-resnet")
    images = [load_image(lfw_image(lfw_dir, n, i)) for n, i in (("Colin_Powell", 1), ("Colin_Powell", 2),
                                                                 ("Serena_Williams", 1))]
    faces = [ev.central(pipe.detector.detect(im), im.shape) for im in images]
    fused = np.stack([e.vector for im, f in zip(images, faces) for e in pipe.embed(im, [f])])
    assert fused.shape == (3, fusion.dims) == (3, 640)
    parts = [np.concatenate([p.embed_faces(im, [f]) for im, f in zip(images, faces)]) for p in fusion.parts]
    np.testing.assert_allclose(fused, fusion.combine(parts), atol=1e-6)
    cos = lambda v: 1 - v @ v.T  # noqa: E731
    expected = sum(w * cos(v) for w, v in zip(fusion.weights, parts))
    np.testing.assert_allclose(cos(fused), expected, atol=1e-5)
    assert cos(fused)[0, 1] < fusion.threshold < cos(fused)[0, 2]
    with pytest.raises(TypeError):
        fusion.embed_crops(np.zeros((1, 112, 112, 3), np.uint8))


def test_eval_identify_report_on_a_subset(lfw_dir, tmp_path):
    """The first 150 people: open-set rank-1 and DIR@FAR with plausible values and consistent counts."""
    out = tmp_path / "identify.json"
    run("eval", "identify", "--lfw", str(lfw_dir), "--limit", "150", "--no-cache", "--json", str(out))
    r = json.loads(out.read_text())
    people = dict(list(ev.lfw_people(lfw_dir).items())[:150])
    singles = sum(len(v) == 1 for v in people.values())
    assert r["people"] == 150 and r["images"] == sum(len(v) for v in people.values())
    assert r["unknown_probes"] == singles and r["gallery"] + r["no_face"]["gallery"] == 150 - singles
    assert r["gallery"] + r["known_probes"] + r["unknown_probes"] == r["images"]
    assert r["rank1"] > 0.95
    assert [p["target_far"] for p in r["dir_at_far"]] == [1e-2, 1e-3]
    assert all(p["far"] <= p["target_far"] and 0.5 < p["dir"] <= r["rank1"] for p in r["dir_at_far"])
    at = r["at_thresholds"]
    assert set(at) == {"verify", "far_1e-4", "gallery"} and r["fpir_target"] == 0.01
    # under 100 faces FAR 1e-4 per comparison already names fewer than 1% of strangers: the default stays there
    assert r["gallery"] < 100 and at["gallery"]["threshold"] == at["far_1e-4"]["threshold"]


def test_open_set_measures_on_known_vectors():
    from pathlib import Path

    e = np.eye(8, dtype=np.float32)
    near = lambda i, d: ((1 - d) * e[i] + np.sqrt(1 - (1 - d) ** 2) * e[7]).astype(np.float32)  # noqa: E731 (cosine distance d from e[i])
    paths = {name: [Path(f"{name}/{i}.jpg") for i in range(n)] for name, n in
             [("a", 3), ("b", 2), ("c", 2), ("x", 1), ("y", 1), ("z", 1)]}
    vec = {str(paths["a"][0]): e[0], str(paths["a"][1]): near(0, 0.1), str(paths["a"][2]): near(1, 0.05),
           str(paths["b"][0]): e[1], str(paths["b"][1]): near(1, 0.3),
           str(paths["c"][0]): None, str(paths["c"][1]): e[2],  # c's first photo has no face: the second is enrolled
           str(paths["x"][0]): near(2, 0.2), str(paths["y"][0]): e[5], str(paths["z"][0]): None}
    split = ev.open_set_split(paths, vec)
    assert [n for n, _ in split.gallery] == ["a", "b", "c"] and split.gallery[2][1] == paths["c"][1]
    r = ev.open_set_identification(split, vec, fars=(0.34,), thresholds={"t": 0.25})
    # known probes: a1 -> a (0.1), a2 -> b (wrong), b1 -> b (0.3), c0 -> no face
    assert r["rank1"] == pytest.approx(2 / 4) and r["no_face"] == {"gallery": 0, "known": 1, "unknown": 1}
    # unknown x is 0.2 from c; y is 1.0 from everyone; z has no face. At t = 0.25: x accepted -> FAR 1/3
    assert r["at_thresholds"]["t"] == {"threshold": 0.25, "dir": pytest.approx(1 / 4), "far": pytest.approx(1 / 3)}
    point = r["dir_at_far"][0]  # FAR <= 0.34 allows one of three unknowns through: threshold just under 1.0
    assert point["far"] == pytest.approx(1 / 3) and point["dir"] == pytest.approx(2 / 4)
