"""Human's TF.js attribute graphs that the converter test checks against TF.js itself: the emotion
net (a zoo model) and SSR-Net's age net (not a zoo model: kept only for its StridedSlice and
ExpandDims heads), each pinned by SHA-256 (the emotion net in the zoo) inside the zoo's pinned npm tarball.

Fetched by ``make setup`` (``python tests/reference_models.py``), since downloading is setting up,
not testing; the test fetches them itself where setup did not.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceprint import zoo  # noqa: E402
from faceprint.zoo.fetch import ModelFile  # noqa: E402

#: SSR-Net's age net, not a zoo model, in the same tarball as the zoo's Human models: SHA-256 of the
#: graph JSON and of its weights
AGE = ("846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
       "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a")
NAMES = ("emotion", "age")


def _files(name: str) -> list[ModelFile]:
    """``emotion``: the zoo's human-emotion, pinned there; ``age``: SSR-Net, pinned here (``AGE``)."""
    emotion = zoo.get("human-emotion").files
    if name == "emotion":
        return [emotion["graph"], emotion["weights"]]
    if name != "age":
        raise ValueError(f"no reference graph {name!r}: emotion or age")
    return [ModelFile(emotion["graph"].dist, f"package/models/age.{ext}", sha) for ext, sha in zip(("json", "bin"), AGE)]


def human_graph(name: str) -> tuple[Path, Path]:
    """The graph JSON and weights of Human's ``name`` model, from the cache or fetched now."""
    return tuple(zoo.fetch(_files(name), progress=False))


if __name__ == "__main__":
    zoo.fetch([f for name in NAMES for f in _files(name)], progress=False)  # one download for both
