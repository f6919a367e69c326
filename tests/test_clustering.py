"""Clustering faces by person: the estimators on real LFW embeddings, the metrics on hand-made
labels with known answers, and `cluster`, `people from-cluster` and `eval cluster` as a user runs them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from sklearn.base import clone

from faceprint import evaluation as ev
from faceprint import zoo
from faceprint.clustering import METHODS, AverageLinkage, ChineseWhispers, _graph, cluster_embeddings, make_estimator
from faceprint.detection import DEFAULT_DETECTOR
from faceprint.embedding import DEFAULT_EMBEDDER
from faceprint.errors import FaceprintError
from faceprint.imageio import load_image, save_image

from .conftest import lfw_image
from .test_cli import run

PEOPLE = ["Colin_Powell", "Serena_Williams", "Tony_Blair", "Gloria_Macapagal_Arroyo", "Vladimir_Putin"]
SINGLES = ["Aaron_Eckhart", "Abba_Eban", "Adam_Sandler", "Bill_Paxton"]  # one image of each


@pytest.fixture(scope="module")
def faces(lfw_dir) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of 6 images each of 5 people and 1 of 4 more, with their names."""
    paths = [lfw_image(lfw_dir, n, i) for n in PEOPLE for i in range(1, 7)]
    paths += [lfw_image(lfw_dir, n, 1) for n in SINGLES]
    vectors, _ = ev.embed_images(paths, DEFAULT_DETECTOR, DEFAULT_EMBEDDER, cache=False)
    return np.stack([vectors[str(p)] for p in paths]), np.array([p.parent.name for p in paths])


def groups(names: np.ndarray, labels: np.ndarray) -> set[frozenset[str]]:
    return {frozenset(names[labels == c]) for c in range(labels.max() + 1)}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_methods_recover_the_people(faces, method):
    X, names = faces
    labels = cluster_embeddings(X, method)
    assert groups(names, labels) == {frozenset([n]) for n in PEOPLE}
    assert set(names[labels == -1]) == set(SINGLES)
    sizes = [int((labels == c).sum()) for c in range(labels.max() + 1)]
    assert sizes == sorted(sizes, reverse=True)


def test_a_group_too_big_for_exact_linkage_is_split_by_its_links_then_merged(faces):
    """Two people linked into one group by a face between them (the blend of one photo of each),
    after four strangers and a third person's group: with ``max_dense`` below the group's size, the group is split by
    dropping its longer links, the pieces are cut exactly and merged again along the links by mean
    distance, which keeps the people apart, each whole, as the exact path does, whatever size
    forces the split, and wherever the group's faces sit among the others."""
    X, names = faces
    (a, b, c), strangers = (X[names == n] for n in PEOPLE[:3]), X[np.isin(names, SINGLES)]
    blend = (a[0] + b[0]) / np.linalg.norm(a[0] + b[0])
    Y = np.vstack([strangers, c, a, b, blend])
    who = np.concatenate([names[np.isin(names, SINGLES)], [PEOPLE[2]] * len(c), [PEOPLE[0]] * len(a),
                          [PEOPLE[1]] * len(b), ["blend"]])
    assert max(1 - blend @ a[0], 1 - blend @ b[0]) < AverageLinkage().link  # it links the two people
    _, component = connected_components(_graph(Y, 30, AverageLinkage().link), directed=False)
    group, before = component[-13:], component[:-13]
    assert len(set(group)) == 1 and not set(group) & set(before)  # a group of 13 after the others
    for max_dense in (len(group) - 1, 4, 1, 5000):  # split, pieces cut exactly, merged; down to single faces; exact alone
        labels = AverageLinkage(max_dense=max_dense).fit(Y).labels_
        people = ~np.isin(who, [*SINGLES, "blend"])
        assert groups(who[people], labels[people]) == {frozenset([n]) for n in PEOPLE[:3]}, max_dense
        assert all(len(set(labels[who == n])) == 1 for n in PEOPLE[:3]), max_dense
        assert (labels[np.isin(who, SINGLES)] == -1).all(), max_dense


def test_scikit_learn_conventions(faces):
    X, _ = faces
    for estimator in (ChineseWhispers(), AverageLinkage(threshold=0.55)):
        assert estimator.fit(X) is estimator
        assert estimator.labels_.shape == (len(X),) and estimator.labels_.dtype.kind == "i"
        np.testing.assert_array_equal(clone(estimator).fit_predict(X), estimator.labels_)
        assert not hasattr(clone(estimator), "labels_")
    assert AverageLinkage(threshold=0.55).get_params() == {"threshold": 0.55, "link": 0.5, "k": 30, "max_dense": 5000}
    assert ChineseWhispers().set_params(k=5).k == 5
    np.testing.assert_array_equal(ChineseWhispers().fit(X[:1]).labels_, [-1])


def test_defaults_scale_to_other_embedders_and_bad_names_fail():
    ratio = zoo.get("expo-mobilefacenet").identify_threshold / zoo.get("faceplugin").identify_threshold
    expo = make_estimator("average", embedder="expo-mobilefacenet")
    assert expo.threshold == pytest.approx(0.60 * ratio) and expo.link == pytest.approx(0.50 * ratio)
    assert make_estimator("chinese-whispers", 0.3).threshold == 0.3
    with pytest.raises(FaceprintError, match="unknown clustering method"):
        make_estimator("kmeans")


def test_metrics_on_known_labels():
    truth = np.array(["a", "a", "b", "b"])
    # {a a b} {b}: BCubed precision (2/3 + 2/3 + 1/3 + 1) / 4, recall (1 + 1 + 1/2 + 1/2) / 4
    assert ev.bcubed_prf(truth, [0, 0, 0, 1]) == pytest.approx((2 / 3, 3 / 4, 12 / 17))
    # pairs put together: (0,1) right, (0,2) (1,2) wrong; true pairs (0,1) found, (2,3) missed
    assert ev.pairwise_prf(truth, [0, 0, 0, 1]) == pytest.approx((1 / 3, 1 / 2, 0.4))
    assert ev.bcubed_prf(truth, [5, 5, 7, 7]) == ev.pairwise_prf(truth, [5, 5, 7, 7]) == (1.0, 1.0, 1.0)
    # -1 is a face alone: never together with another -1
    assert ev.bcubed_prf(truth, [-1, -1, -1, -1]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert ev.pairwise_prf(truth, [-1, -1, -1, -1]) == (1.0, 0.0, 0.0)
    assert ev.pairwise_prf(["a", "b"], [-1, -1]) == (1.0, 1.0, 1.0)  # nothing to find, nothing claimed


@pytest.fixture(scope="module")
def clustered(lfw_dir, tmp_path_factory):
    """`faceprint cluster` over a nested folder: 3 people x 3 photos, 2 strangers, a broken file,
    and a photo of Colin Powell beside a smaller Tony Blair (Tony's 4th photo)."""
    root = tmp_path_factory.mktemp("photos")
    for n in PEOPLE[:3]:
        (root / n).mkdir()
        for i in (1, 2, 3):
            (root / n / f"{i}.jpg").write_bytes(lfw_image(lfw_dir, n, i).read_bytes())
    (root / "misc" / "deeper").mkdir(parents=True)
    for n in SINGLES[:2]:
        (root / "misc" / "deeper" / f"{n}.jpg").write_bytes(lfw_image(lfw_dir, n, 1).read_bytes())
    (root / "misc" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    colin = load_image(lfw_image(lfw_dir, "Colin_Powell", 4))
    tony = load_image(lfw_image(lfw_dir, "Tony_Blair", 4))[25:225:2, 25:225:2]  # half size
    group = np.full((250, 400, 3), 120, np.uint8)
    group[:, :250], group[75:175, 275:375] = colin, tony
    save_image(root / "misc" / "group.png", group)
    out = root.parent / f"{root.name}-out"
    p = run("cluster", str(root), "--json", str(out / "clusters.json"), "--html", str(out / "sheet"), ok=False)
    assert p.returncode == 1 and "broken.jpg" in p.stderr  # reported and skipped, the rest clustered
    return root, out, json.loads((out / "clusters.json").read_text())


def test_cluster_command_groups_faces_and_writes_a_contact_sheet(clustered):
    root, out, report = clustered
    who = [{f["path"].split("/")[-2] if "group" not in f["path"] else ("group", f["box"][0] > 250) for f in c}
           for c in report["clusters"]]
    assert who == [{"Colin_Powell", ("group", False)}, {"Tony_Blair", ("group", True)}, {"Serena_Williams"}]
    assert [len(c) for c in report["clusters"]] == [4, 4, 3]
    assert sorted(f["path"].split("/")[-1] for f in report["noise"]) == sorted(f"{n}.jpg" for n in SINGLES[:2])
    assert all(len(f["box"]) == 4 for c in report["clusters"] for f in c)

    page = (out / "sheet" / "index.html").read_text()
    rows = re.findall(r'<section class="cluster">(.*?)</section>', page)
    assert len(rows) == 3 and [r.count("<img ") for r in rows] == [4, 4, 3]
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 13 and all((out / "sheet" / s).is_file() for s in sources)


def test_people_from_cluster_enrols_the_clusters_face(clustered, lfw_dir, tmp_path):
    _, out, report = clustered
    db = str(tmp_path / "g.db")
    p = run("people", "from-cluster", "--json", str(out / "clusters.json"), "--cluster", "1", "--name", "Tony",
            "--db", db)
    assert "enrolled 4 of 4" in p.stdout
    show = json.loads(run("people", "show", "Tony", "--db", db, "--json").stdout)
    assert sorted(f["source"] for f in show["faces"]) == sorted(f["path"] for f in report["clusters"][1])
    # boxes are stored in the photo's own coordinates: the group photo's face is where cluster found it
    boxes = {f["path"]: f["box"] for f in report["clusters"][1]}
    assert all(np.allclose(f["box"], boxes[f["source"]], atol=1.0) for f in show["faces"])
    # the group photo gave Tony's face, not Colin's larger one: Colin stays unknown, Tony is found
    found = json.loads(run("identify", str(lfw_image(lfw_dir, "Colin_Powell", 5)),
                           str(lfw_image(lfw_dir, "Tony_Blair", 9)), "--db", db, "--json").stdout)
    assert [[f["name"] for f in r["faces"]] for r in found] == [[None], ["Tony"]]
    p = run("people", "from-cluster", "--json", str(out / "clusters.json"), "--cluster", "3", "--name", "X",
            "--db", db, ok=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "no cluster 3" in p.stderr
    bad = {"a.json": "not json", "b.json": '{"clusters": 5}', "c.json": '{"clusters": [[{"path": "x.jpg", "box": [1, 2]}]]}'}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        p = run("people", "from-cluster", "--json", str(tmp_path / name), "--cluster", "0", "--name", "X", "--db", db,
                ok=False)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and name in p.stderr
    assert len(json.loads(run("people", "show", "Tony", "--db", db, "--json").stdout)["faces"]) == 4  # nothing lost


def test_eval_cluster_on_a_few_people(lfw_dir, tmp_path):
    out = tmp_path / "cluster.json"
    run("eval", "cluster", "--lfw", str(lfw_dir), "--limit", "40", "--json", str(out))
    r = json.loads(out.read_text())
    assert (r["people"], r["no_face_images"]) == (40, []) and r["images"] >= 40
    assert [one["method"] for one in r["runs"]] == list(METHODS)
    for one in r["runs"]:
        assert one["bcubed"]["f1"] > 0.95 and one["pairwise"]["f1"] > 0.9
        assert one["clusters"] == one["clusters_2plus"] + one["faces_alone"] and one["cluster_seconds"] >= 0
    assert {"machine", "date", "command", "no_face_policy", "people_2plus"} <= set(r)


def test_contact_sheet_rewrite_drops_the_previous_thumbnails(lfw_dir, tmp_path):
    from faceprint.clustering import write_contact_sheet

    face = lambda n: {"path": str(lfw_image(lfw_dir, n, 1)), "box": [70, 70, 180, 180]}  # noqa: E731
    write_contact_sheet(tmp_path, [[face("Colin_Powell"), face("Tony_Blair")], [face("Serena_Williams")] * 2],
                        [face("Ed_Sullivan")])
    assert len(list((tmp_path / "faces").iterdir())) == 5
    write_contact_sheet(tmp_path, [[face("Colin_Powell")] * 2], [])
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == ["c0_0.jpg", "c0_1.jpg"]
