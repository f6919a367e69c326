"""Attributes you train yourself (``faceprint attribute train``): a classifier on faceprints.

A faceprint already encodes what a face looks like, so a linear classifier on it learns an
attribute (a mask, glasses) from a few dozen photos per class. But a faceprint is trained to keep
the person and drop the rest, and what an attribute is made of (a mask's edges, a frame round the
eyes) it partly drops; so ``train`` also tries the faceprint joined by the aligned crop's gradient
histograms (HOG, the crop the embedder reads) and keeps whichever cross-validates better.
The classifier (``classifier.FaceprintClassifier``) follows scikit-learn's conventions; this module
imports it, and scikit-learn, only to fit or load one. A trained one is saved as JSON (classes,
weights, the embedder whose faceprints it reads, the features), never as a pickle, so loading a
file from elsewhere cannot run code. Saved classifiers live beside the gallery (``people.db`` ->
``people.db.attributes/NAME.json``), where ``analyze --attribute NAME`` finds them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..atomic import atomic_file
from ..errors import FaceprintError
from ..matching import unit_rows
from .record import Label
from ..types import Face, Image

if TYPE_CHECKING:
    from .classifier import FaceprintClassifier

FORMAT = "faceprint.attribute/1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: what a classifier can read: the faceprint alone, or joined by the aligned crop's HOG
FEATURES = ("faceprint", "faceprint+hog")


def check_name(name: str) -> str:
    from . import ATTRIBUTES

    if not _NAME.match(name):
        raise FaceprintError(f"attribute name {name!r}: use 1-64 lower-case letters, digits, '-' or '_'")
    if name in ATTRIBUTES:
        raise FaceprintError(f"attribute name {name!r} is a built-in attribute's; choose another")
    return name


def load(names: list[str], folder: Path) -> list[TrainedAttribute]:
    """The trained attributes ``names`` from ``folder``."""
    return [TrainedAttribute(Path(folder) / f"{check_name(n)}.json") for n in names]


def attribute_dir(gallery: str) -> Path:
    """Where a gallery's trained attributes are kept: beside its SQLite file."""
    if "://" in gallery:
        raise FaceprintError("trained attributes are kept beside a SQLite gallery; for a PostgreSQL gallery "
                             "give --attributes DIR")
    return Path(gallery).with_name(Path(gallery).name + ".attributes")


def features(embedder, image: Image, faces: list[Face], kind: str) -> np.ndarray:
    """What a classifier of ``kind`` (one of ``FEATURES``) reads for each face, one row each: the
    faceprint, then for ``faceprint+hog`` the unit-length HOG of the embedder's aligned crop (9
    orientations, 8-pixel cells, 2x2-cell blocks: Dalal and Triggs' choice)."""
    vectors = embedder.embed_faces(image, faces)
    return vectors if kind == "faceprint" else np.hstack([vectors, _hog(embedder, image, faces)])


def _hog(embedder, image: Image, faces: list[Face]) -> np.ndarray:
    from skimage.feature import hog

    from ..alignment import align

    grey = [cv2.cvtColor(align(image, f, embedder.template, embedder.size).pixels, cv2.COLOR_RGB2GRAY) for f in faces]
    h = np.stack([hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for g in grey])
    return unit_rows(h)


def save(classifier: FaceprintClassifier, path: Path, embedder: str, kind: str, report: dict) -> None:
    data = {"format": FORMAT, "embedder": embedder, "features": kind, "classes": [str(c) for c in classifier.classes_],
            "coef": classifier.coef_.tolist(), "intercept": classifier.intercept_.tolist(), "C": classifier.C,
            "report": report}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as out:
        out.write((json.dumps(data) + "\n").encode())


class TrainedAttribute:
    """A saved classifier as an attribute model: the face's features (its faceprint by the classifier's
    embedder, and the HOG of its aligned crop if the classifier was fitted on it), then its class."""

    def __init__(self, path: Path) -> None:
        try:
            data = json.loads(Path(path).read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            self.embedder = data["embedder"]
            self.features = data.get("features", "faceprint")  # files saved before HOG was tried
            if self.features not in FEATURES:
                raise ValueError(f"unknown features {self.features!r}")
            from .classifier import FaceprintClassifier  # scikit-learn: imported once the file is one

            self.classifier = FaceprintClassifier(data["C"])
            self.classifier.classes_ = np.array(data["classes"])
            self.classifier.coef_ = np.array(data["coef"], np.float64)
            self.classifier.intercept_ = np.array(data["intercept"], np.float64)
        except FileNotFoundError:
            raise FaceprintError(f"no trained attribute at {path} (faceprint attribute train)") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise FaceprintError(f"{path}: not a trained attribute file ({e})") from None
        self.name = Path(path).stem

    def predict(self, image: Image, face: Face) -> Label:
        from ..embedding import get_embedder

        p = self.classifier.predict_proba(features(get_embedder(self.embedder), image, [face], self.features))[0]
        return Label({str(c): float(v) for c, v in zip(self.classifier.classes_, p)}, f"{self.name} ({self.embedder})")


def train(name: str, data: Path, target: Path, *, embedder: str, detector: str, seed: int = 0) -> dict:
    """Fit ``name`` on ``data`` (one folder per class of face photos) and save it in ``target``: the
    largest face of each photo, read as each of ``FEATURES``; the features with the better 5-fold
    cross-validated accuracy (the faceprint alone on a tie) are kept. Both accuracies, the kept
    one's confusion matrix and learning curve (accuracy against photos per class) go in the
    report, which is returned. The kept accuracy is the better of two measured on the same folds,
    so a shade optimistic; ``benchmarks/attribute.py`` also scores a classifier on people it never saw."""
    check_name(name)
    classes = sorted(d for d in Path(data).iterdir() if d.is_dir()) if Path(data).is_dir() else []
    if len(classes) < 2:
        raise FaceprintError(f"{data}: needs one folder per class, at least two (e.g. mask/ and no_mask/)")
    # imported once the request is sound, so that a bad one fails at once (scikit-learn takes a second)
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from .classifier import FaceprintClassifier
    from ..imageio import IMAGE_SUFFIXES, load_image
    from ..pipeline import get_pipeline, largest

    pipe = get_pipeline(detector, embedder)
    rows, y, skipped = [], [], []
    for folder in classes:
        for photo in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            try:
                image = load_image(photo)
                faces = pipe.detect(image)
                if not faces:
                    raise FaceprintError("no face found")
                rows.append(features(pipe.embedder, image, [largest(faces)], FEATURES[-1])[0])
                y.append(folder.name)
            except FaceprintError as e:  # no face, an unreadable file: listed, not fatal
                skipped.append({"path": str(photo), "error": str(e)})
    counts = {c.name: y.count(c.name) for c in classes}
    if min(counts.values()) < 5:
        raise FaceprintError(f"too few faces to learn from: {counts} (at least 5 per class)")
    y, labels = np.array(y), [c.name for c in classes]
    full = np.stack(rows)  # the faceprint, then the HOG: the first columns are the faceprint alone
    by_kind = dict(zip(FEATURES, (full[:, :pipe.embedder.dims], full)))
    folds = StratifiedKFold(n_splits=min(5, min(counts.values())), shuffle=True, random_state=seed)
    predicted = {k: cross_val_predict(FaceprintClassifier(), X, y, cv=folds) for k, X in by_kind.items()}
    accuracy = {k: round(float((p == y).mean()), 4) for k, p in predicted.items()}
    kind = max(FEATURES, key=lambda k: (accuracy[k], -FEATURES.index(k)))
    X = by_kind[kind]
    confusion = {t: {p: int(((y == t) & (predicted[kind] == p)).sum()) for p in labels} for t in labels}
    report = {"attribute": name, "classes": counts, "skipped": skipped, "embedder": embedder, "detector": detector,
              "features": kind, "cv_accuracy": accuracy[kind], "cv_accuracy_by_features": accuracy,
              "confusion": confusion, "learning_curve": _learning_curve(X, y, labels, seed)}
    save(FaceprintClassifier().fit(X, y), Path(target) / f"{name}.json", embedder, kind, report)
    return report


def _learning_curve(X: np.ndarray, y: np.ndarray, labels: list[str], seed: int, repeats: int = 5) -> list[dict]:
    """Accuracy on the photos left out when training on n per class, n doubling from 2, mean of ``repeats`` draws."""
    from .classifier import FaceprintClassifier

    rng = np.random.default_rng(seed)
    smallest = min((y == c).sum() for c in labels)
    curve, n = [], 2
    while n < smallest:
        scores = []
        for _ in range(repeats):
            train = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in labels])
            test = np.setdiff1d(np.arange(len(y)), train)
            scores.append(float((FaceprintClassifier().fit(X[train], y[train]).predict(X[test]) == y[test]).mean()))
        curve.append({"per_class": n, "accuracy": round(float(np.mean(scores)), 4)})
        n *= 2
    return curve
