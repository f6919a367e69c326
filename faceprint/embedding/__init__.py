"""Embedding: map aligned face crops to L2-normalised vectors.

Each embedder declares the crop it expects (side length and landmark template); the alignment
stage produces exactly that crop, so embedders never see raw images or detector output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import zoo
from ..alignment import align
from ..errors import FaceprintError
from ..matching import open_set_threshold, unit_rows
from ..zoo.plugins import Registry, fingerprint

_EMBEDDERS = {
    "dlib-resnet": "faceprint.embedding.dlib_resnet:DlibResNet",
    "facenet": "faceprint.embedding.facenet:FaceNet",
    "mobilefacenet": "faceprint.embedding.mobilefacenet:MobileFaceNet",
    "faceplugin": "faceprint.embedding.faceplugin:FacePlugin",
    "expo-mobilefacenet": "faceprint.embedding.expo_mobilefacenet:ExpoMobileFaceNet",
    "faceplugin+dlib-resnet": "faceprint.embedding.fusion:FacePluginDlibResNet",
    "dlib-resnet-int8": "faceprint.embedding.dlib_resnet:DlibResNetInt8",
}

DEFAULT_EMBEDDER = "faceplugin"


class Embedder(ABC):
    """Turns aligned crops into faceprints.

    Subclasses implement ``_forward`` (the model itself); batching checks and test-time flip
    averaging (each crop's vector summed with its mirror image's, where that measurably helps a
    model) live here once.
    """

    name: ClassVar[str]
    #: side of the square crop, in pixels
    size: ClassVar[int]
    #: where each landmark sits in the crop, in crop pixels (names from ``faceprint.types.LANDMARK_NAMES``)
    template: ClassVar[dict[str, tuple[float, float]]]
    dims: ClassVar[int]
    flip: bool = False
    #: crops per model call: big enough to amortise the call, small enough that a deep model's
    #: activations stay in memory bounds (FaceNet on 3,000 crops at once needs >20 GB)
    batch_size: ClassVar[int] = 32
    #: bump when the code changes the vectors (preprocessing, channel order), so cached
    #: evaluations made by the old code are not reused
    revision: ClassVar[int] = 1

    @property
    def fingerprint(self) -> str:
        """What determines this embedder's vectors: name, revision, flip, weight hashes.

        Evaluation caches are keyed on it, so new weights or changed code never reuse old vectors.
        """
        return fingerprint(self.name, self.revision, f"flip={self.flip}")

    def embed_faces(self, image: np.ndarray, faces: list) -> np.ndarray:
        """Vectors of ``faces`` in ``image``: aligned onto this embedder's template, then embedded.

        The pipeline calls this, not ``embed_crops``, so an embedder that needs more than one crop
        per face (a fusion of models with different templates) can align for itself.
        """
        if not faces:
            return np.zeros((0, self.dims), np.float32)
        return self.embed_crops(np.stack([align(image, f, self.template, self.size).pixels for f in faces]))

    @property
    def threshold(self) -> float:
        """Cosine distance below which two faces are the same person (calibrated on LFW)."""
        return zoo.get(self.name).threshold

    def open_set_threshold(self, gallery_size: int, fpir: float | None = None) -> float:
        """Cosine distance for 1:N search in a gallery of ``gallery_size`` faces, strict enough that
        at most ``fpir`` of strangers get a name (default 1%, and never looser than FAR 1e-4 per
        comparison): ``faceprint.matching.open_set_threshold`` on this model's measured FARs."""
        return open_set_threshold(zoo.get(self.name).far_thresholds, gallery_size, fpir)

    def export_spec(self) -> tuple[Path, dict]:
        """The model file and the crop and input a standalone runner needs (``faceprint export``)."""
        raise FaceprintError(f"embedder {self.name!r} cannot be exported yet")

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 RGB crops -> ``(N, D)`` float32 rows of unit length."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"{self.name} expects (N, {self.size}, {self.size}, 3) crops, got {crops.shape}")
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.dims), np.float32)
        if self.flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]])
        y = unit_rows(self._raw(crops))
        return unit_rows(y[:n] + y[n:]) if self.flip else y

    def raw_norms(self, crops: np.ndarray) -> np.ndarray:
        """Length of each crop's raw faceprint, before it is made unit length (no flip averaging).
        Models trained with a margin loss give faces they find hard shorter vectors (MagFace's
        observation); ``faceprint.analysis.quality`` reads it as a cue."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros(0, np.float32)
        return np.linalg.norm(self._raw(crops), axis=1)

    def _raw(self, crops: np.ndarray) -> np.ndarray:
        """``_forward`` in batches of ``batch_size``."""
        return np.concatenate([self._forward(np.ascontiguousarray(crops[i:i + self.batch_size]))
                               for i in range(0, len(crops), self.batch_size)])

    @abstractmethod
    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """The model on a batch of uint8 RGB crops: one raw vector per crop."""


class OnnxEmbedder(Embedder):
    """An embedder whose model is an ONNX file the zoo makes from ``files[source]`` with ``convert``.

    A model fed ``(crop - mean) * scale`` in NCHW names its ``channels`` ("RGB" or "BGR"), ``mean`` and
    ``scale``, and that is its input and its export; any other turns crops into its input in ``_prepare``.
    """

    source: ClassVar[str] = "model"
    #: bump when ``convert`` (or, for an int8 model, the quantisation) makes a different file, so
    #: conversions cached by the old code are not reused
    converter_revision: ClassVar[int] = 1
    #: "int8": the float conversion quantised on this machine (``faceprint.zoo.quantize``); an int8
    #: model's class subclasses its float model's, whose self-test reference it is held to
    precision: ClassVar[str] = "float32"
    #: the channel order of a model fed ``(crop - mean) * scale``, NCHW; None: it has its own ``_prepare``
    channels: ClassVar[str | None] = None
    mean: ClassVar[float] = 0.0
    scale: ClassVar[float] = 1.0

    def __init__(self, flip: bool | None = None) -> None:
        if flip is not None:
            self.flip = flip
        from ..runtime import onnx_session
        from ..zoo.quantize import int8_conversion

        convert = type(self).convert
        if self.precision == "int8":
            convert = int8_conversion(convert, self._prepare, self.template, self.size)
        self.model_path = zoo.get(self.name).converted(self.source, convert, self.converter_revision)
        self._session = onnx_session(self.model_path)
        self._input = self._session.get_inputs()[0].name

    @property
    def fingerprint(self) -> str:
        """An int8 model's vectors also depend on its quantisation, which ``converter_revision`` versions."""
        extra = f" {self.precision} c{self.converter_revision}" if self.precision != "float32" else ""
        return super().fingerprint + extra

    @staticmethod
    @abstractmethod
    def convert(path: Path) -> bytes:
        """ONNX bytes made from the zoo file (run once; the result is cached by source hash)."""

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB crops -> the model's float32 input."""
        if self.channels is None:
            raise NotImplementedError(f"{type(self).__name__} names no channels, mean and scale: it needs a _prepare")
        ordered = crops[..., ::-1] if self.channels == "BGR" else crops
        return ((ordered.astype(np.float32) - self.mean) * self.scale).transpose(0, 3, 1, 2)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(self._prepare(crops))})[0]

    def export_spec(self) -> tuple[Path, dict]:
        if self.channels is None:
            return super().export_spec()
        return self.model_path, {
            "kind": "onnx", "size": self.size, "dims": self.dims,
            "template": {k: list(v) for k, v in self.template.items()},
            "input": f"aligned crop as {self.channels}, (x - mean) * scale, NCHW", "channels": self.channels,
            "mean": self.mean, "scale": self.scale, "nchw": True, "flip": self.flip, "threshold": self.threshold,
        }


embedders: Registry[Embedder] = Registry("embedder", _EMBEDDERS)


def embedder_names() -> list[str]:
    return embedders.names()


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """The shared instance of an embedder, loading (and fetching) its model on first use."""
    return embedders.get(name)


