"""`watch --analyze`: face attributes per track, pooled over its looks so the caption does not flicker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint.analysis.record import EXPRESSIONS, Age, Expression, FaceAnalysis, Gender, Label
from faceprint.types import Face
from faceprint.video.attributes import EXPRESSION_LOOKS, TrackAttributes, _Pool, label

from .conftest import lfw_image

FACEPRINT = [sys.executable, "-m", "faceprint"]


def _clip(photo: Path, out: Path, frames: int = 50) -> Path:
    """The photo gliding across a plain background (a real face, moved as a camera would see it pass)."""
    image = cv2.imread(str(photo))
    h, w = image.shape[:2]  # up to 250x250 (an LFW photo)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        x, y = 60 + 5 * i, 100 + int(20 * np.sin(i / 8))
        frame[y:y + h, x:x + w] = image
        writer.write(frame)
    writer.release()
    return out


@pytest.fixture(scope="module")
def smiling(tmp_path_factory, lfw_dir) -> tuple[Path, Path]:
    """A clip of Keanu Reeves smiling (LFW photo 1) and a gallery enrolled from another photo of him."""
    folder = tmp_path_factory.mktemp("attributes")
    db = folder / "g.db"
    done = subprocess.run([*FACEPRINT, "enroll", "--name", "Keanu_Reeves", str(lfw_image(lfw_dir, "Keanu_Reeves", 2)),
                           "--db", str(db)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return _clip(lfw_image(lfw_dir, "Keanu_Reeves", 1), folder / "smiling.mp4"), db


def test_watch_analyze_pools_attributes_per_track(smiling, tmp_path):
    video, db = smiling
    events, annotated = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    done = subprocess.run([*FACEPRINT, "watch", str(video), "--db", str(db), "--analyze", "age,gender,expression",
                           "--events", str(events), "--out", str(annotated), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    captions = [e for e in logged if e["event"] == "attributes"]
    assert len(captions) == 1  # one caption for the whole pass: it never flickered
    (shown,) = captions
    assert shown["track"] == 1 and shown["name"] == "Keanu_Reeves" and shown["frame"] == 0
    attributes = shown["attributes"]
    assert set(attributes) == {"age", "gender", "expression"}
    assert attributes["gender"]["label"] == "male" and attributes["expression"]["label"] == "happy"
    assert 20 <= attributes["age"]["years"] <= 45
    (leave,) = [e for e in logged if e["event"] == "leave"]
    assert leave["attributes"]["expression"]["label"] == "happy"  # what the track left with
    capture = cv2.VideoCapture(str(annotated))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 50
    capture.release()


def test_watch_without_analyze_logs_no_attributes(smiling, tmp_path):
    video, db = smiling
    events = tmp_path / "events.jsonl"
    done = subprocess.run([*FACEPRINT, "watch", str(video), "--db", str(db), "--events", str(events)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in logged] == ["appear", "named", "leave"] and "attributes" not in logged[-1]


def test_a_bad_attribute_fails_in_one_line(smiling):
    video, db = smiling
    done = subprocess.run([*FACEPRINT, "watch", str(video), "--db", str(db), "--analyze", "age,mood"],
                          capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "unknown attribute 'mood'" in lines[0], done.stderr


def _look(years: float, male: float, expression: str) -> FaceAnalysis:
    probabilities = {k: (0.7 if k == expression else 0.3 / (len(EXPRESSIONS) - 1)) for k in EXPRESSIONS}
    gender = Gender("male", male, "g") if male >= 0.5 else Gender("female", 1 - male, "g")
    return FaceAnalysis(face=Face(box=(0, 0, 1, 1), score=1.0, landmarks={}, detector="test"),
                        age=Age(years, "a"), gender=gender, expression=Expression(probabilities, "e"))


def test_pooling_holds_the_caption_where_single_looks_flicker():
    """Single looks that disagree now and then (a blink read as surprise, an age off by ten years) do not
    change the pooled caption; a lasting change of expression does, within EXPRESSION_LOOKS looks."""
    looks = [_look(30, 0.9, "neutral"), _look(31, 0.8, "neutral"), _look(29, 0.9, "neutral"),
             _look(41, 0.4, "surprise"), _look(30, 0.9, "neutral"), _look(52, 0.7, "neutral"),
             _look(31, 0.9, "neutral"), _look(30, 0.3, "surprise"), _look(32, 0.9, "neutral")]
    pool = _Pool()
    raw, pooled = [], []
    for frame, look in enumerate(looks):
        pool.add(look, frame)
        raw.append(label({"gender": look.gender.to_dict(), "age": look.age.to_dict(),
                          "expression": look.expression.to_dict()}))
        pooled.append(label(pool.pooled()))
    assert len(set(raw)) == 4 and set(pooled) == {"male ~30 neutral"}
    for frame in range(len(looks), len(looks) + EXPRESSION_LOOKS):
        pool.add(_look(30, 0.9, "happy"), frame)
    assert label(pool.pooled()) == "male ~30 happy"


def test_a_trained_attribute_is_pooled_over_the_last_looks():
    """`watch --attribute mask`: one look read wrongly does not flip the caption; a mask put on does,
    within EXPRESSION_LOOKS looks."""
    def look(p_mask: float) -> FaceAnalysis:
        return FaceAnalysis(face=Face(box=(0, 0, 1, 1), score=1.0, landmarks={}, detector="test"),
                            trained={"mask": Label({"mask": p_mask, "no_mask": 1 - p_mask}, "mask (faceplugin)")})

    pool = _Pool()
    captions = []
    for frame, p in enumerate([0.1, 0.2, 0.9, 0.1, 0.15]):
        pool.add(look(p), frame)
        captions.append(label(pool.pooled()))
    assert captions == ["no_mask"] * 5
    assert pool.pooled()["mask"] == {"label": "no_mask", "probability": 0.71, "model": "mask (faceplugin)"}
    for frame in range(5, 5 + EXPRESSION_LOOKS):
        pool.add(look(0.95), frame)
    assert label(pool.pooled()) == "mask"


def test_every_must_be_positive():
    from faceprint.analysis import Analyzer

    with pytest.raises(ValueError):
        TrackAttributes(Analyzer("age"), every=0)
