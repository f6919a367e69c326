"""Known-answer self-test: each embedder must give a pinned face the vector it gave when it was checked.

A hash proves that a cached file is the one written at fetch or conversion; it cannot prove that
what runs computes the right thing (a stamp rewritten together with its file, a converter or a
runtime that changed under the same files). So ``faceprint models verify`` also embeds one real
face and compares it with a stored reference vector.

The face is a 192x192 crop of NASA's public-domain portrait of Eileen Collins, the one
scikit-image ships as ``skimage.data.astronaut()``, stored in the package as a lossless PNG with
its five landmarks, so no detector and no scikit-image are involved at run time. A vector hash
would break across CPUs and onnxruntime builds (float sums differ in the last bits); the test
passes when the cosine distance to the reference is at most ``TOLERANCE``, far above such noise
and far below what a damaged model gives. ``tests/reference/make_selftest.py`` rewrites the crop
and the references (after a deliberate change to an embedder's vectors).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..types import Face

DATA = Path(__file__).parent / "data"
FACE = DATA / "selftest-face.png"
REFERENCE = DATA / "selftest-vectors.json"

#: cosine distance allowed between a fresh vector and the reference
TOLERANCE = 1e-3
#: the same for an int8 model, held to its float model's reference: how far quantisation moves the
#: vector depends on the machine, which calibrates the model on the faces its detector finds and
#: runs it with its own integer instructions (dlib-resnet-int8: 0.011 on an AMD EPYC with AVX2,
#: whose 8-bit multiply-adds saturate at 16 bits; 0.0007 on an Intel Xeon with VNNI). A damaged
#: model lands far beyond it.
INT8_TOLERANCE = 0.03


@cache
def _reference() -> dict:
    return json.loads(REFERENCE.read_text())


def pinned_face() -> tuple[np.ndarray, Face]:
    """The shipped crop and the face in it (landmarks as the reference vectors were made with)."""
    from ..imageio import load_image

    ref = _reference()["face"]
    return load_image(FACE), Face(box=tuple(ref["box"]), score=1.0,
                                  landmarks={k: tuple(v) for k, v in ref["landmarks"].items()})


def _int8(embedder) -> bool:
    """An int8 model (``OnnxEmbedder.precision``); its class subclasses its float model's."""
    return getattr(embedder, "precision", "float32") == "int8"


def tolerance(embedder: str) -> float:
    """The largest cosine distance to its reference that ``embedder``'s self-test passes with."""
    from ..embedding import get_embedder

    return INT8_TOLERANCE if _int8(get_embedder(embedder)) else TOLERANCE


def distance(embedder: str) -> float:
    """Cosine distance between ``embedder``'s vector for the pinned face and its reference vector
    (an int8 model's: its float model's)."""
    from ..embedding import get_embedder

    model = get_embedder(embedder)
    name = type(model).__bases__[0].name if _int8(model) else embedder
    vectors = _reference()["vectors"]
    if name not in vectors:
        raise ModelError(f"no self-test reference for embedder {name!r}")
    image, face = pinned_face()
    got = model.embed_faces(image, [face])[0]
    ref = np.asarray(vectors[name], np.float64)
    return max(0.0, float(1.0 - got @ ref / np.linalg.norm(ref)))  # not below 0 by float noise


def write_reference(image: np.ndarray, face: Face, embedders: list[str]) -> None:
    """Store ``image`` as the pinned face and every embedder's vector for it as the reference."""
    from ..embedding import get_embedder
    from ..imageio import save_image

    save_image(FACE, image)
    data = {"face": {"box": [round(v, 2) for v in face.box],
                     "landmarks": {k: [round(x, 2), round(y, 2)] for k, (x, y) in face.landmarks.items()}},
            "vectors": {}}
    _write(data)
    image, face = pinned_face()  # embed exactly what was stored
    data["vectors"] = {name: [round(float(x), 6) for x in get_embedder(name).embed_faces(image, [face])[0]]
                       for name in embedders}
    _write(data)


def _write(data: dict) -> None:
    """One line per vector, so a regenerated file diffs by embedder."""
    vectors = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data["vectors"].items())
    REFERENCE.write_text(f'{{\n "face": {json.dumps(data["face"])},\n "vectors": {{\n{vectors}\n }}\n}}\n')
    _reference.cache_clear()
