"""Face analysis: 68-point landmarks, age, gender, expression, head pose, eye state, quality and liveness.

One small model class per attribute, chosen by name like detectors and embedders
(``Analyzer(models={"expression": "fr-expression"})``), imported and loaded on first use, with
weights from the zoo (pinned SHA-256). ``Analyzer.analyze`` computes only the attributes asked
for and those they need (eyes and the default pose read the 68 landmarks; quality reads the
pose), and a model that cannot be fetched or loaded fails its attribute, with the reason in
``FaceAnalysis.errors``, not the whole analysis. Liveness runs only when named.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from .. import zoo
from ..errors import FaceprintError
from ..types import Face, Image
from ..zoo.plugins import Registry
from .record import GROUPS_68, Age, Expression, Eyes, FaceAnalysis, Gender, Landmarks68, Liveness, Pose, Quality

log = logging.getLogger("faceprint.analysis")

#: attribute -> {model name -> "module:Class"}; the first model is the attribute's default
_MODELS = {
    "landmarks68": {"dlib-68": "faceprint.analysis.landmarks:Dlib68",
                    "fr-landmark": "faceprint.analysis.landmarks:FacepluginLandmarks"},
    "age": {"cydral-age": "faceprint.analysis.age_gender:CydralAge",
            "fr-age": "faceprint.analysis.age_gender:FacepluginAge"},
    "gender": {"cydral-gender": "faceprint.analysis.age_gender:CydralGender"},
    "expression": {"human-emotion": "faceprint.analysis.expression:HumanEmotion",
                   "fr-expression": "faceprint.analysis.expression:FacepluginExpression"},
    "pose": {"pnp68": "faceprint.analysis.pose:LandmarkPose", "fr-pose": "faceprint.analysis.pose:FacepluginPose"},
    "eyes": {"fr-eye": "faceprint.analysis.eyes:FacepluginEyes"},
    "quality": {"learned": "faceprint.analysis.quality:LearnedQuality",
                "heuristic": "faceprint.analysis.quality:HeuristicQuality",
                "video": "faceprint.analysis.quality:VideoQuality"},
    "liveness": {"fr-liveness": "faceprint.analysis.liveness:FacepluginLiveness"},
}
ATTRIBUTES = tuple(_MODELS)
#: what is computed when no attribute is named: all but liveness, a presentation-attack check that
#: callers ask for (``faceprint liveness``) and that would add its own model to every face's cost
DEFAULT_ONLY = tuple(a for a in ATTRIBUTES if a != "liveness")
DEFAULT_MODELS = {a: next(iter(m)) for a, m in _MODELS.items()}


class AttributeModel(ABC):
    """Predicts one attribute of one face. ``found`` holds what was computed for this face before
    (the attributes in ``needs``, and scratch values models share, keyed ``_name``)."""

    name: ClassVar[str]
    attribute: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def predict(self, image: Image, face: Face, found: dict) -> object:
        """The attribute's record for ``face`` in the RGB ``image``."""


class OnnxAttribute(AttributeModel):
    """A model run in onnxruntime: the zoo file as is, or its cached conversion when ``convert`` is set."""

    source: ClassVar[str] = "model"
    convert: ClassVar = None

    def __init__(self) -> None:
        from ..runtime import onnx_session

        spec = zoo.get(self.name)
        path = spec.converted(self.source, type(self).convert) if self.convert else spec.path(self.source)
        self._session = onnx_session(path)
        self._input = self._session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})


_REGISTRIES: dict[str, Registry[AttributeModel]] = {a: Registry(f"{a} model", m) for a, m in _MODELS.items()}


def model_names(attribute: str | None = None) -> list[str]:
    return [n for a, m in _MODELS.items() if attribute in (None, a) for n in m]


def get_model(attribute: str, name: str | None = None) -> AttributeModel:
    """The shared instance of an attribute model, loading (and fetching) its weights on first use."""
    if attribute not in _MODELS:
        raise FaceprintError(f"unknown attribute {attribute!r}; choose from {', '.join(ATTRIBUTES)}")
    return _REGISTRIES[attribute].get(name or DEFAULT_MODELS[attribute])


def parse_only(only: str | Iterable[str] | None) -> tuple[str, ...]:
    """Attribute names from ``"age,gender"`` or a list (``DEFAULT_ONLY`` for None), checked, in canonical order."""
    if only is None:
        return DEFAULT_ONLY
    names = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    bad = [n for n in names if n not in _MODELS]
    if bad or not names:
        raise FaceprintError(f"unknown attribute {bad[0] if bad else '(none)'!r}; choose from {', '.join(ATTRIBUTES)}")
    return tuple(a for a in ATTRIBUTES if a in names)


def parse_models(specs: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """``["expression=fr-expression", ...]`` (or a dict) -> {attribute: model}, each name checked."""
    pairs = list(specs.items()) if isinstance(specs, dict) else [s.partition("=")[::2] for s in specs or ()]
    out = {}
    for attribute, name in pairs:
        attribute, name = attribute.strip(), name.strip()
        if attribute not in _MODELS:
            raise FaceprintError(f"unknown attribute {attribute!r} in a model choice (ATTRIBUTE=MODEL); "
                                 f"choose from {', '.join(ATTRIBUTES)}")
        if name not in _MODELS[attribute]:
            raise FaceprintError(f"unknown {attribute} model {name!r}; choose one of: {', '.join(_MODELS[attribute])}")
        out[attribute] = name
    return out


class Analyzer:
    """Computes the attributes in ``only`` (default all but liveness) with the models in ``models`` (default
    each attribute's first), plus whatever those need, for the faces of an image."""

    def __init__(self, only: str | Iterable[str] | None = None,
                 models: Iterable[str] | dict[str, str] | None = None, trained: Iterable = ()) -> None:
        self.trained = list(trained)  # ``trained.TrainedAttribute``s, computed after the built-in ones
        self.only = parse_only(only) if only is not None or not self.trained else ()
        self.models = {**DEFAULT_MODELS, **parse_models(models)}
        self.order = self._order()
        self._loaded: tuple[dict[str, AttributeModel], dict[str, str]] | None = None

    def _order(self) -> list[str]:
        """Attributes to compute, each after the ones its model needs."""
        order: list[str] = []

        def visit(attribute: str) -> None:
            if attribute not in order:
                for dep in _REGISTRIES[attribute].cls(self.models[attribute]).needs:
                    visit(dep)
                order.append(attribute)
        for a in self.only:
            visit(a)
        return order

    def _load(self) -> tuple[dict[str, AttributeModel], dict[str, str]]:
        """The models, loaded once per analyzer: one that failed is not tried again for every image
        of a batch (a new analyzer tries again)."""
        if self._loaded is None:
            models, failed = {}, {}
            for a in self.order:
                try:
                    models[a] = get_model(a, self.models[a])
                except FaceprintError as e:
                    log.warning("%s model %s is unavailable: %s", a, self.models[a], e)
                    failed[a] = f"{self.models[a]}: {e}"
            self._loaded = models, failed
        return self._loaded

    def analyze(self, image: Image, faces: list[Face]) -> list[FaceAnalysis]:
        """One record per face, in ``faces``' order."""
        models, failed = self._load() if faces else ({}, {})
        image = np.ascontiguousarray(image)  # dlib reads only contiguous arrays (a mirrored view is not)
        return [self._one(image, face, models, failed) for face in faces]

    def _one(self, image: Image, face: Face, models: dict, failed: dict) -> FaceAnalysis:
        found: dict = {}
        errors = {}
        for a in self.order:
            model = models.get(a)
            missing = next((d for d in (model.needs if model else ()) if d not in found), None)
            if model is None:
                errors[a] = failed[a]
            elif missing:
                errors[a] = f"needs {missing}: {errors[missing]}"
            else:
                try:
                    found[a] = model.predict(image, face, found)
                except FaceprintError as e:
                    errors[a] = f"{model.name}: {e}"
        labels = {}
        for model in self.trained:
            try:
                labels[model.name] = model.predict(image, face)
            except FaceprintError as e:
                errors[model.name] = str(e)
        return FaceAnalysis(face=face, errors={a: e for a, e in errors.items() if a in self.only or a not in _MODELS},
                            trained=labels, **{a: found.get(a) for a in self.only})


__all__ = ["ATTRIBUTES", "DEFAULT_ONLY", "DEFAULT_MODELS", "Analyzer", "AttributeModel", "OnnxAttribute", "get_model",
           "model_names", "parse_only", "parse_models", "FaceAnalysis", "Landmarks68", "Age", "Gender", "Expression", "Pose", "Eyes",
           "Quality", "Liveness", "GROUPS_68"]
