"""Video sources: files, cameras and network streams, read through OpenCV's FFmpeg backend.

A file is read frame by frame, decoded a few frames ahead on a thread: nothing is skipped,
processing just takes as long as it takes. A live source (a camera, an ``rtsp://`` or ``http://``
stream) does not wait for us, so a thread keeps reading it and the consumer always gets the newest
frame: when recognition is slower than the source, frames are dropped (and counted) instead of
piling up into a growing delay.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceprintError

#: How long opening and each read may block on a network stream before it counts as stopped.
OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 5.0
#: Frames of a file decoded ahead of the one being recognised (about 6 MB each at 1080p).
READ_AHEAD = 4
#: Annotated frames queued for encoding behind the one being recognised.
WRITE_AHEAD = 4
_STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class VideoSourceError(FaceprintError):
    """A video source could not be opened or read."""


@dataclass(frozen=True)
class VideoFrame:
    index: int  # position in the source (live: counts dropped frames too)
    time: float  # seconds from the start of the source
    image: np.ndarray  # HxWx3 uint8 RGB


class Source:
    """``spec``: a file path, a camera index (``0``) or a stream URL. ``live`` defaults to True for
    cameras and streams, False for files."""

    def __init__(self, spec: str | int | Path, *, live: bool | None = None) -> None:
        self.spec = str(spec)
        camera = self.spec.isdigit()
        stream = self.spec.lower().startswith(_STREAM_SCHEMES)
        if not camera and not stream:
            path = Path(self.spec)
            if not path.is_file():
                raise VideoSourceError(f"{self.spec}: no such video file")
            if path.stat().st_size == 0:
                raise VideoSourceError(f"{self.spec}: empty file (0 bytes)")
        self.live = (camera or stream) if live is None else live
        _quiet_ffmpeg()
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)]
        self._cap = (cv2.VideoCapture(int(self.spec)) if camera
                     else cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params))
        if not self._cap.isOpened():
            what = "camera" if camera else "stream" if stream else "video file"
            raise VideoSourceError(f"{self.spec}: cannot open this {what}"
                                   + (" (no camera on this machine?)" if camera else ""))
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 25.0
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.dropped = 0  # live frames read but never handed out
        self.read = 0  # frames read from the source

    def frames(self) -> Iterator[VideoFrame]:
        """Every frame of a file; the newest frame each time of a live source. Ends when the source does."""
        try:
            yield from (self._live() if self.live else self._file())
        finally:
            self._cap.release()

    def _file(self) -> Iterator[VideoFrame]:
        """Every frame in order, decoded up to ``READ_AHEAD`` frames ahead on a thread: decoding (7 ms
        a 1080p frame here) overlaps recognition instead of adding to it (OpenCV lets go of the GIL
        while it decodes)."""
        ahead: queue.Queue[VideoFrame | Exception | None] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()

        def put(item: VideoFrame | Exception | None) -> None:
            while not stop.is_set():  # a consumer that stopped early takes nothing more
                try:
                    return ahead.put(item, timeout=0.1)
                except queue.Full:
                    pass

        def decode() -> None:
            try:
                while not stop.is_set():
                    ok, bgr = self._cap.read()
                    if not ok:
                        break
                    index = self.read
                    self.read += 1
                    put(VideoFrame(index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            except Exception as e:  # handed to the consumer, raised there
                put(e)
            put(None)

        reader = threading.Thread(target=decode, name=f"faceprint-source-{self.spec}", daemon=True)
        reader.start()
        try:
            while (item := ahead.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:  # the file ended, or the consumer stopped early (capture has its faces)
            stop.set()
            reader.join()

    def _live(self) -> Iterator[VideoFrame]:
        latest: list[tuple[int, float, np.ndarray] | None] = [None]
        ready = threading.Condition()
        done = threading.Event()
        start = time.monotonic()

        def grab() -> None:
            while not done.is_set():
                ok, bgr = self._cap.read()
                with ready:
                    if not ok:
                        done.set()
                    else:
                        if latest[0] is not None:
                            self.dropped += 1  # the consumer never took the previous one
                        latest[0] = (self.read, time.monotonic() - start, bgr)
                        self.read += 1
                    ready.notify()

        reader = threading.Thread(target=grab, name=f"faceprint-source-{self.spec}", daemon=True)
        reader.start()
        try:
            while True:
                with ready:
                    while latest[0] is None and not done.is_set():
                        ready.wait()
                    item, latest[0] = latest[0], None
                if item is None:
                    return
                index, t, bgr = item
                yield VideoFrame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        finally:
            done.set()
            reader.join(timeout=READ_TIMEOUT_S + 1)


def _quiet_ffmpeg() -> None:
    """FFmpeg and OpenCV print their own notes on a bad file ("moov atom not found"); we say it in one line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg first opens something
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class Writer:
    """An annotated video, opened on its first frame and always closed into a playable file.

    Frames are encoded on a thread (about 25 ms a 1080p frame here, as much as recognising it), up
    to ``WRITE_AHEAD`` behind. OpenCV writes the MP4 index when the writer is released, so ``close``
    runs however the loop ends (end of source, error, Ctrl-C): the file then holds every frame
    written so far.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self._writer: cv2.VideoWriter | None = None
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=WRITE_AHEAD)
        self._encoder: threading.Thread | None = None
        self._failed: Exception | None = None
        self._closed = False
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Queue ``rgb`` (HxWx3 uint8, not changed afterwards by the caller) to be encoded."""
        if self._failed is not None:
            self.close()  # the frames before the failure as a playable file, and the error
        if self._closed:  # opening it again would start the file over
            raise VideoSourceError(f"{self.path}: the video is closed")
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not writer.isOpened():
                raise VideoSourceError(f"{self.path}: cannot write a video here (use .mp4 or .avi)")
            self._writer = writer
            self._encoder = threading.Thread(target=self._encode, name=f"faceprint-writer-{self.path.name}",
                                             daemon=True)
            self._encoder.start()
        self._queue.put(rgb)
        self.frames += 1

    def _encode(self) -> None:
        written = 0
        while (rgb := self._queue.get()) is not None:
            if self._failed is None:  # after a failure, frames are only taken off the queue
                try:
                    # OpenCV 5 says False for a frame it skips (another size, not 3 channels); 4 says nothing
                    if self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) is False:
                        raise ValueError(f"frame {written} ({rgb.shape[1]}x{rgb.shape[0]}) was refused by the encoder")
                    written += 1
                except Exception as e:  # said by the next write, or by close
                    self._failed = e

    def close(self) -> None:
        """Encode what is queued and finish the file; raises (once) if a frame could not be encoded."""
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._encoder.join()
            self._writer.release()
            self._writer = None
        failed, self._failed = self._failed, None
        if failed is not None:
            raise VideoSourceError(f"{self.path}: writing the video failed: {failed}")
