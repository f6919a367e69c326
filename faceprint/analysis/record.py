"""The typed result of analysing one face: one small frozen record per attribute.

Every attribute is optional (only those asked for are computed); one that was asked for but
could not be computed (its model failed to fetch or load, say) has its reason in ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from ..types import Face

#: The 68 iBUG 300-W points as named groups (0-based, end exclusive). "left" is the image's left,
#: as everywhere in faceprint (``Face.landmarks``): ``left_eye`` is the subject's right eye.
GROUPS_68 = {
    "jaw": (0, 17), "left_eyebrow": (17, 22), "right_eyebrow": (22, 27), "nose_bridge": (27, 31),
    "nose_tip": (31, 36), "left_eye": (36, 42), "right_eye": (42, 48), "outer_lips": (48, 60), "inner_lips": (60, 68),
}

#: The seven FER-2013 classes, in the order both expression models output them.
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _r(v: float, n: int = 3) -> float:
    return round(float(v), n)


@dataclass(frozen=True)
class Landmarks68:
    points: np.ndarray  # (68, 2) image pixels
    model: str

    def group(self, name: str) -> np.ndarray:
        a, b = GROUPS_68[name]
        return self.points[a:b]

    @property
    def inter_ocular(self) -> float:
        """Distance between the outer eye corners (points 36 and 45): the unit landmark errors are quoted in."""
        return float(np.linalg.norm(self.points[45] - self.points[36]))

    def to_dict(self) -> dict:
        return {"model": self.model, "points": {g: [[_r(x, 1), _r(y, 1)] for x, y in self.group(g)] for g in GROUPS_68}}


@dataclass(frozen=True)
class Age:
    years: float
    model: str

    def to_dict(self) -> dict:
        return {"years": _r(self.years, 1), "model": self.model}


@dataclass(frozen=True)
class Gender:
    label: str  # "female" or "male"
    probability: float  # of ``label``
    model: str

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": _r(self.probability), "model": self.model}


@dataclass(frozen=True)
class Expression:
    probabilities: dict[str, float]  # the seven EXPRESSIONS, summing to 1
    model: str

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self) -> dict:
        return {"label": self.label, "probabilities": {k: _r(v) for k, v in self.probabilities.items()},
                "model": self.model}


@dataclass(frozen=True)
class Pose:
    """Degrees. yaw > 0: the face turns towards the image's left; pitch > 0: it looks up;
    roll > 0: it leans so its eye on the image's right sits lower (clockwise on screen)."""

    yaw: float
    pitch: float
    roll: float
    model: str

    def to_dict(self) -> dict:
        return {"yaw": _r(self.yaw, 1), "pitch": _r(self.pitch, 1), "roll": _r(self.roll, 1), "model": self.model}


@dataclass(frozen=True)
class Eyes:
    left_open: float  # probability that the eye on the image's left is open
    right_open: float
    model: str

    def to_dict(self) -> dict:
        return {"left_open": _r(self.left_open), "right_open": _r(self.right_open), "model": self.model}


@dataclass(frozen=True)
class Quality:
    """``score`` in [0, 1]: the model's (``heuristic``: the product of the four parts, each in [0, 1]);
    faceprint.analysis.quality says how."""

    score: float
    sharpness: float
    size: float
    pose: float
    detector: float
    model: str

    def to_dict(self) -> dict:
        return {k: (_r(getattr(self, k)) if k != "model" else self.model)
                for k in ("score", "sharpness", "size", "pose", "detector", "model")}


@dataclass(frozen=True)
class Liveness:
    """``probability`` that the face is live, not a print or a screen held up to the camera;
    ``live`` compares it with ``threshold``, the model's calibrated one (docs/benchmarks.md)."""

    probability: float
    threshold: float
    model: str

    @property
    def live(self) -> bool:
        return self.probability >= self.threshold

    def to_dict(self) -> dict:
        return {"live": self.live, "probability": _r(self.probability, 4), "threshold": self.threshold,
                "model": self.model}


@dataclass(frozen=True)
class Label:
    """A trained attribute's answer: the probability of each class; ``label`` is the likeliest."""

    probabilities: dict[str, float]
    model: str

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def probability(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict:
        return {"label": self.label, "probability": round(self.probability, 3), "model": self.model}


@dataclass(frozen=True)
class FaceAnalysis:
    face: Face
    landmarks68: Landmarks68 | None = None
    age: Age | None = None
    gender: Gender | None = None
    expression: Expression | None = None
    pose: Pose | None = None
    eyes: Eyes | None = None
    quality: Quality | None = None
    liveness: Liveness | None = None
    #: attributes trained with ``faceprint attribute train``, by name (``Label`` records)
    trained: dict = field(default_factory=dict)
    #: attribute -> why it is missing, for attributes asked for that could not be computed
    errors: dict[str, str] = field(default_factory=dict)

    def scaled(self, k: float) -> FaceAnalysis:
        """This analysis in the image resized by ``k`` (image coordinates only; angles and scores stay)."""
        if k == 1:
            return self
        lm = self.landmarks68 and replace(self.landmarks68, points=self.landmarks68.points * k)
        return replace(self, face=self.face.scaled(k), landmarks68=lm)

    def to_dict(self) -> dict:
        out = {"face": self.face.to_dict()}
        for f in fields(self)[1:-2]:
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.to_dict()
        out.update({name: label.to_dict() for name, label in self.trained.items()})
        if self.errors:
            out["errors"] = dict(self.errors)
        return out
