"""Live video: sources, tracking and recognition.

    from faceprint import Gallery
    from faceprint.video import watch

    for result in watch("rtsp://door-camera/stream", Gallery("people.db")):
        for face in result.faces:          # TrackedFace(track, face, name or None, distance)
            if face.name == "Ada":
                open_the_door()

``source``: files and streams are read with OpenCV's FFmpeg backend; ``tracker``: one id per
person across frames; ``engine``: recognition on tracks, every name checked; ``looks``: the cheap
per-frame measures (face quality, appearance, shot change) that decide when to look again;
``attributes``: face attributes pooled per track (``watch --analyze``); ``liveness``: each track
judged live, spoof (a print or screen held up) or undecided; ``challenge``: what a person is asked
to do (turn, blink) to be judged live; ``capture``: enrolment from a
camera. The test clips (``synth``, ``footage``) and the loopback MJPEG stream live in
``faceprint.testing``: they are tools, not the runtime.
"""

from .capture import Capture, Verdict, capture
from .challenge import Challenge
from .engine import Event, FrameResult, Recognizer, TrackedFace, Watch, watch
from .liveness import LivenessJudge
from .source import Source, VideoSourceError, Writer
from .tracker import Tracker

__all__ = ["Capture", "Challenge", "Event", "FrameResult", "LivenessJudge", "Recognizer", "Source", "TrackedFace",
           "Tracker", "Verdict", "VideoSourceError", "Watch", "Writer", "capture", "watch"]
