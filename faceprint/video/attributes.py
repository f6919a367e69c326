"""Face attributes over a track (``watch --analyze``): the analysis models look at a tracked face
now and then, and their answers are pooled over the track, so a label does not flicker from frame
to frame the way one photo's answer does.

Pooling by attribute: age, the median of the track's last ``AGE_LOOKS`` estimates; gender, the mean
probability over every look (a person's gender does not change within a track); expression and
trained attributes (``watch --attribute``: a mask can be put on), the mean probabilities of the
last ``EXPRESSION_LOOKS`` looks (they do change, but not between two frames); everything else
(pose, eyes, quality, landmarks), the latest look.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..analysis import ATTRIBUTES, Analyzer
from ..analysis.record import EXPRESSIONS, Age, Expression, FaceAnalysis, Gender, Label
from ..types import Image
from .engine import Event, FrameResult

#: Frames between two looks at a track (a new track is looked at on its first frame).
EVERY = 5
#: Looks pooled for age and for expression (and trained attributes).
AGE_LOOKS, EXPRESSION_LOOKS = 9, 5
_BUILT_IN = set(ATTRIBUTES)


@dataclass
class _Pool:
    ages: deque = field(default_factory=lambda: deque(maxlen=AGE_LOOKS))
    male: list[float] = field(default_factory=list)  # p(male) of each look
    expressions: deque = field(default_factory=lambda: deque(maxlen=EXPRESSION_LOOKS))
    trained: dict[str, deque] = field(default_factory=dict)  # name -> the last looks' ``Label``s
    latest: FaceAnalysis | None = None
    models: dict[str, str] = field(default_factory=dict)
    looked: int = -(10**9)  # frame of the last look

    def add(self, a: FaceAnalysis, frame: int) -> None:
        self.latest, self.looked = a, frame
        if a.age is not None:
            self.ages.append(a.age.years)
            self.models["age"] = a.age.model
        if a.gender is not None:
            self.male.append(a.gender.probability if a.gender.label == "male" else 1.0 - a.gender.probability)
            self.models["gender"] = a.gender.model
        if a.expression is not None:
            self.expressions.append([a.expression.probabilities[k] for k in EXPRESSIONS])
            self.models["expression"] = a.expression.model
        for name, found in a.trained.items():
            self.trained.setdefault(name, deque(maxlen=EXPRESSION_LOOKS)).append(found)

    def pooled(self) -> dict:
        """The track's attributes as ``analyze`` gives them (``to_dict`` of each record), pooled."""
        out = {k: v.to_dict() for k, v in vars(self.latest).items()
               if k not in ("face", "errors", "age", "gender", "expression") and v is not None and hasattr(v, "to_dict")}
        if self.ages:
            out["age"] = Age(float(np.median(self.ages)), self.models["age"]).to_dict()
        if self.male:
            p = float(np.mean(self.male))
            out["gender"] = Gender("male" if p >= 0.5 else "female", max(p, 1.0 - p), self.models["gender"]).to_dict()
        if self.expressions:
            mean = np.mean(self.expressions, axis=0)
            out["expression"] = Expression(dict(zip(EXPRESSIONS, mean.tolist())), self.models["expression"]).to_dict()
        for name, looks in self.trained.items():
            classes = looks[-1].probabilities
            mean = {c: float(np.mean([x.probabilities[c] for x in looks])) for c in classes}
            out[name] = Label(mean, looks[-1].model).to_dict()
        return out


class TrackAttributes:
    """Attributes of each track, pooled over its looks. ``update`` once per processed frame."""

    def __init__(self, analyzer: Analyzer, every: int = EVERY) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.analyzer = analyzer
        self.every = every
        self._pools: dict[int, _Pool] = {}
        self._captions: dict[int, str] = {}  # track -> the caption its last ``attributes`` event gave

    def update(self, frame: int, image: Image, faces: list) -> dict[int, dict]:
        """Look at the tracked faces (``TrackedFace``) that are due; the pooled attributes of every
        track on screen that has been looked at, by track id."""
        due = [f for f in faces if frame - self._pools.setdefault(f.track, _Pool()).looked >= self.every]
        for f, found in zip(due, self.analyzer.analyze(image, [f.face for f in due])):
            self._pools[f.track].add(found, frame)
        return {f.track: self._pools[f.track].pooled() for f in faces if self._pools[f.track].latest is not None}

    def step(self, result: FrameResult) -> tuple[dict[int, dict], list[dict]]:
        """One frame of ``Watch``: the pooled attributes by track, and its events as dicts, each
        ``leave`` with the track's pooled attributes, plus an ``attributes`` event when a track's
        caption (``label``) changes."""
        pooled = self.update(result.index, result.image, result.faces) if result.processed else {}
        events = self.leaving(result.events)
        names = {f.track: f.name for f in result.faces}
        for track, attributes in pooled.items():
            caption = label(attributes)
            if caption != self._captions.get(track):
                self._captions[track] = caption
                events.append({"event": "attributes", "track": track, "name": names[track], "frame": result.index,
                               "time": round(result.time, 3), "attributes": attributes})
        return pooled, events

    def leaving(self, events: list[Event]) -> list[dict]:
        """``events`` as dicts, a ``leave`` with the track's pooled attributes (the track is forgotten)."""
        out = []
        for e in events:
            event = e.to_dict()
            if e.kind == "leave":
                pool = self._pools.pop(e.track, None)
                if pool is not None and pool.latest is not None:
                    event["attributes"] = pool.pooled()
                self._captions.pop(e.track, None)
            out.append(event)
        return out


def label(attributes: dict) -> str:
    """A short caption, ``male ~35 happy``: the age to the nearest 5 years, since no model is closer
    than that, and a caption should change when the answer does, not with every year of noise."""
    parts = [attributes["gender"]["label"]] if "gender" in attributes else []
    parts += [f"~{5 * round(attributes['age']['years'] / 5)}"] if "age" in attributes else []
    parts += [attributes["expression"]["label"]] if "expression" in attributes else []
    parts += [v["label"] for k, v in attributes.items() if k not in _BUILT_IN and isinstance(v, dict) and "label" in v]
    return " ".join(parts)
