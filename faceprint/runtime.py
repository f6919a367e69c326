"""ONNX Runtime sessions configured once for the whole package.

Threads default to the machine's cores (capped at 4: face models are small and more threads
mostly add contention); ``FACEPRINT_THREADS`` overrides it, e.g. 1 per worker process.
Idle threads do not spin: the models run in short bursts between numpy/OpenCV work, and on a
busy 2-core machine spinning made two threads five times slower than one (measured on MTCNN).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import onnxruntime as ort

from .errors import ModelError

T = TypeVar("T")
R = TypeVar("R")


def threads() -> int:
    env = os.environ.get("FACEPRINT_THREADS")
    return max(1, int(env)) if env else min(os.cpu_count() or 1, 4)


def onnx_session(model: Path, threads_: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads_ or threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load ONNX model {model}: {e}") from None


def process_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 1) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` processes (in this one when 1), results in order.

    Each worker runs its models on one thread (``FACEPRINT_THREADS``), so workers don't fight
    over the cores; ``fn`` must be a module-level function and its items picklable.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    os.environ.setdefault("FACEPRINT_THREADS", "1")
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(fn, items)
