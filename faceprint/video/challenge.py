"""Challenges for video liveness: the person on screen is asked to turn or blink, each step in time.

A print or a screen held still shows no depth and may score well frame by frame; a person asked to do
something now does it. Each step of a challenge (``STEPS``) has ``step_seconds`` of video time from
when it is asked (the track's first frame, or the end of the step before); a step not done in time
fails the challenge for good, with the reason (e.g. ``no blink within 5 s``).

* ``turn-left`` / ``turn-right``: the person's own left or right, seen by a camera that does not
  mirror: the nose (between the eyes when frontal) moves ``TURNED`` eye distances or more towards
  that side from where it was when the step was asked (the median of its first ``TURN_FRAMES``
  frames: one frame's landmarks jitter by a few hundredths), for ``TURN_FRAMES`` frames in a row
  (five landmarks: no extra model). From where it was, not from frontal: a face that starts half
  turned the other way (one generated LFW head did) would otherwise have to turn twice as far.
* ``blink``: eyes open, then closed, then open again: the mean p(open) of the two eyes (``fr-eye``
  on the 68-point landmarks) at least ``OPEN``, under ``SHUT``, at least ``OPEN`` (the gap between
  keeps a doubtful frame from counting either way). Eyes are looked at only while a blink is asked
  (about 2.5 ms a face, placed by ``fr-landmark``'s 68 points: dlib's cost twice that and read the
  generated blinks no better), and only on faces with the eyes ``MIN_EYES_PX`` apart or more: on smaller
  ones the 24-pixel eye crops are blown up and the model guesses (on generated clips at 320x240 it
  read open eyes as shut).

A challenge done is not a verdict on its own: ``LivenessJudge`` still refuses a face that shows
spoof evidence (a flat face turning, single-image scores under the threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..analysis.pose import eye_distance, nose_offset
from ..errors import FaceprintError
from ..types import Face, Image

STEPS = ("turn-left", "turn-right", "blink")
#: Seconds of video time each step may take, by default.
STEP_SECONDS = 5.0
#: Change of the nose's offset from the eyes' midpoint (in eye distances) that is a turn: about 15
#: degrees of yaw on a real head (``analysis.quality.TURNED_AWAY``, 0.3, is about 25); frames in a
#: row it must hold.
TURNED, TURN_FRAMES = 0.18, 3
#: Mean p(open) of the eyes (``fr-eye``) at or over which they are open, and under which they are shut.
OPEN, SHUT = 0.65, 0.35
#: Pixels between the eyes under which a face's eyes are not read.
MIN_EYES_PX = 36.0
_PROMPTS = {"turn-left": "turn your head to your left", "turn-right": "turn your head to your right",
            "blink": "blink"}
_MISSED = {"turn-left": "no turn to the left", "turn-right": "no turn to the right", "blink": "no blink"}


def parse_challenge(text: str | None) -> tuple[str, ...]:
    """``"turn-left,blink"`` as steps; None or blank: no challenge."""
    steps = tuple(s.strip() for s in (text or "").split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise FaceprintError(f"unknown challenge step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    return steps


@dataclass
class Progress:
    """One track's way through a challenge."""

    step: int = 0
    asked: float | None = None  # video time the current step was asked
    turned: int = 0  # frames in a row turned the asked way
    start: list[float] = field(default_factory=list)  # the nose's offsets on the turn's first frames
    opened: bool = False  # eyes seen open since the blink was asked
    shut: bool = False  # and closed after that
    failed: str | None = None  # why the challenge failed


class Challenge:
    """The steps asked of every track, in order, ``step_seconds`` each (see the module docstring)."""

    def __init__(self, steps: Sequence[str], step_seconds: float = STEP_SECONDS) -> None:
        unknown = [s for s in steps if s not in STEPS]
        if unknown or not steps:
            raise ValueError(f"a challenge is one or more of {', '.join(STEPS)}, not {list(steps)!r}")
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        self.steps = tuple(steps)
        self.step_seconds = step_seconds
        self._eyes = None

    def done(self, p: Progress) -> bool:
        return p.step >= len(self.steps)

    def prompt(self, p: Progress) -> str | None:
        """What to ask the person now: None once done or failed."""
        return None if p.failed or self.done(p) else _PROMPTS[self.steps[p.step]]

    def see(self, p: Progress, image: Image, face: Face, time: float) -> None:
        """Weigh the track's ``face`` at video ``time`` (seconds) for the step it is on."""
        if p.failed or self.done(p):
            return
        p.asked = time if p.asked is None else p.asked
        step = self.steps[p.step]
        if self._did(step, p, image, face):
            p.step, p.turned, p.start, p.opened, p.shut, p.asked = p.step + 1, 0, [], False, False, time
        elif time - p.asked > self.step_seconds:
            p.failed = f"{_MISSED[step]} within {self.step_seconds:g} s"

    def _did(self, step: str, p: Progress, image: Image, face: Face) -> bool:
        """Whether this frame completes ``step``, keeping what it needs to remember in ``p``."""
        if step != "blink":
            offset = nose_offset(face)
            if offset is None:
                p.turned = 0
                return False
            if len(p.start) < TURN_FRAMES:
                p.start.append(offset)
                return False
            moved = offset - float(np.median(p.start))
            toward = (moved if step == "turn-left" else -moved) >= TURNED
            p.turned = p.turned + 1 if toward else 0
            return p.turned >= TURN_FRAMES
        if (eye_distance(face) or 0.0) < MIN_EYES_PX:  # too small to read: this frame says nothing
            return False
        eyes = self._eyes_model().analyze(image, [face])[0].eyes
        if eyes is None:  # the eyes could not be placed
            return False
        opened = (eyes.left_open + eyes.right_open) / 2
        if opened >= OPEN:
            if p.shut:
                return True
            p.opened = True
        elif opened < SHUT and p.opened:
            p.shut = True
        return False

    def _eyes_model(self):
        if self._eyes is None:
            from ..analysis import Analyzer

            self._eyes = Analyzer("eyes", {"landmarks68": "fr-landmark"})
        return self._eyes
