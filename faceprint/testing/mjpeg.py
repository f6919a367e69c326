"""A video file served as a live HTTP MJPEG stream on loopback, to test the stream path without a camera.

Each client gets the file from its first frame as ``multipart/x-mixed-replace; boundary=frame``
JPEG parts, paced at the video's frame rate (real time, like a camera, so a slow reader falls
behind as it would on a live source). The stream ends when the file does or, with ``stop_after``,
abruptly after that many frames: a camera that drops out mid-way.

OpenCV reads it with ``cv2.VideoCapture(url, cv2.CAP_FFMPEG)``; what that needs:

* **Another process.** ``VideoCapture(url)`` and ``.open(url)`` hold Python's GIL while FFmpeg
  connects and probes (``read()`` does release it), so a server on a thread of the *same*
  process never answers and the open fails after its timeout. :func:`serve_mjpeg` therefore
  runs the server as a child process (this module's command line); :class:`MjpegServer` is the
  in-process server for that child and for clients that are not OpenCV.
* **The Content-Type.** FFmpeg picks its ``mpjpeg`` demuxer from the response's
  ``multipart/x-mixed-replace`` type, so any path works (the URL ends in ``.mjpg`` for people).
  Each part carries ``Content-Type`` and ``Content-Length``, which that demuxer uses to cut
  frames without scanning for the boundary (plus ``X-Frame-Index``: the frame's index in the file).
* **Chunked transfer** (with ``Connection: close``). A body with neither a length nor chunks
  makes FFmpeg log "Stream ends prematurely" (an error) at every end of stream; with chunks any
  end, the file's or a dropped connection's, is a quiet end of stream: ``read()`` returns False.
* **Timeouts.** Pass ``CAP_PROP_OPEN_TIMEOUT_MSEC`` and ``CAP_PROP_READ_TIMEOUT_MSEC`` so a dead
  server cannot block a reader.

Command line: ``python -m faceprint.testing.mjpeg clip.mp4 --port 8554`` (serves until stopped).
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import cv2

from ..errors import FaceprintError

BOUNDARY = "frame"
JPEG_QUALITY = 90
START_TIMEOUT_S = 30.0  # for the child process to import faceprint and start listening


class MjpegServer:
    """A stream of ``video`` at ``url`` served by threads of this process; ``stop()`` ends it.

    OpenCV cannot read it from this same process (see the module notes): use :func:`serve_mjpeg`.
    """

    def __init__(self, video: Path, host: str = "127.0.0.1", port: int = 0, fps: float | None = None,
                 stop_after: int | None = None) -> None:
        self.video = Path(video)
        probe = cv2.VideoCapture(str(self.video))
        if not probe.isOpened():
            raise FaceprintError(f"{self.video}: cannot open this video")
        file_fps = probe.get(cv2.CAP_PROP_FPS)
        probe.release()
        self.fps = fps or (file_fps if 1 <= file_fps <= 240 else 25.0)
        self.stop_after = stop_after
        self._stopping = threading.Event()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True  # streams still running never hold up stop()
        self.url = f"http://{host}:{self._http.server_address[1]}/video.mjpg"
        self._thread = threading.Thread(target=self._http.serve_forever, name=f"mjpeg-{self.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting clients and end every stream in progress (within one frame's time)."""
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stream(self, out: BinaryIO) -> None:
        """Write the file's frames to ``out`` as multipart JPEG parts in HTTP chunks, one every 1/fps s."""
        capture = cv2.VideoCapture(str(self.video))
        start = time.monotonic()
        index = 0
        try:
            while self.stop_after is None or index < self.stop_after:
                ok, bgr = capture.read()
                if not ok:  # the file ended: close the multipart body, then the chunked one
                    out.write(_chunk(f"--{BOUNDARY}--\r\n".encode()) + b"0\r\n\r\n")
                    return
                jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
                if self._stopping.wait(max(0.0, start + index / self.fps - time.monotonic())):
                    return
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame-Index: {index}\r\n\r\n")
                out.write(_chunk(head.encode() + jpeg + b"\r\n"))
                out.flush()
                index += 1
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away
        finally:
            capture.release()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):X}\r\n".encode() + data + b"\r\n"


def _handler(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # for chunked transfer

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            server._stream(self.wfile)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per client on stderr is noise in tests and benchmarks

    return Handler


class MjpegProcess:
    """A stream served by a child process (:func:`serve_mjpeg`); ``stop()`` or leaving ``with`` ends it."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process, self.url = process, url

    def stop(self) -> None:
        """End the server and every stream (readers see their stream end at once)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> MjpegProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_mjpeg(video: Path, host: str = "127.0.0.1", port: int = 0, fps: float | None = None,
                stop_after: int | None = None) -> MjpegProcess:
    """Stream ``video`` from a child process, as a camera would; ``port=0`` picks a free port (see ``.url``)."""
    command = [sys.executable, "-m", "faceprint.testing.mjpeg", str(video), "--host", host, "--port", str(port)]
    command += ["--fps", str(fps)] if fps else []
    command += ["--stop-after", str(stop_after)] if stop_after is not None else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    first: queue.Queue[str] = queue.Queue(maxsize=1)
    threading.Thread(target=lambda: first.put(process.stdout.readline()), daemon=True).start()
    try:
        line = first.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        line = ""
    if not line.startswith("streaming "):
        MjpegProcess(process, "").stop()
        raise FaceprintError(f"{video}: the MJPEG server did not start (exit status {process.returncode})")
    return MjpegProcess(process, line.rsplit(" at ", 1)[1].split()[0])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m faceprint.testing.mjpeg", description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): any free port")
    parser.add_argument("--fps", type=float, help="default: the video's own frame rate")
    parser.add_argument("--stop-after", type=int, help="end each stream abruptly after this many frames")
    args = parser.parse_args(argv)
    try:
        server = MjpegServer(args.video, args.host, args.port, args.fps, args.stop_after)
    except (FaceprintError, OSError) as e:
        parser.exit(1, f"error: {e}\n")
    print(f"streaming {args.video} at {server.url} ({server.fps:g} fps)", flush=True)  # serve_mjpeg reads this
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
