"""Model sessions configured once for the whole package.

Every model is an ONNX file run by ONNX Runtime, or by OpenVINO with ``FACEPRINT_RUNTIME=openvino``
(``pip install faceprint[openvino]``): OpenVINO runs the same files and gives the same vectors to
float rounding, and on an x86 CPU runs the embedders' convolutions in about half the time
(docs/benchmarks.md, Speed). ONNX Runtime stays the default: it is the one dependency every
install has.

Threads default to the machine's cores (capped at 4: face models are small and more threads
mostly add contention); ``FACEPRINT_THREADS`` overrides it, e.g. 1 per worker process.
Idle threads do not spin: the models run in short bursts between numpy/OpenCV work, and on a
busy 2-core machine spinning made two threads five times slower than one (measured on MTCNN).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

import onnxruntime as ort

from .errors import ModelError

T = TypeVar("T")
R = TypeVar("R")


def threads() -> int:
    env = os.environ.get("FACEPRINT_THREADS")
    return max(1, int(env)) if env else min(os.cpu_count() or 1, 4)


#: What ``FACEPRINT_RUNTIME`` may name.
RUNTIMES = ("onnxruntime", "openvino")


def runtime() -> str:
    """The runtime models are run by: ``FACEPRINT_RUNTIME``, else ONNX Runtime."""
    name = os.environ.get("FACEPRINT_RUNTIME", "onnxruntime").strip().lower() or "onnxruntime"
    if name not in RUNTIMES:
        raise ModelError(f"FACEPRINT_RUNTIME={name!r}: not a runtime faceprint knows ({', '.join(RUNTIMES)})")
    return name


def onnx_session(model: Path, threads_: int | None = None):
    """A session on ``model`` with ONNX Runtime's interface (``get_inputs``, ``get_outputs``, ``run``),
    run by ``runtime()``."""
    if runtime() == "openvino":
        return OpenVinoSession(model, threads_ or threads())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads_ or threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load ONNX model {model}: {e}") from None


class _Port(NamedTuple):
    name: str
    shape: list  # a dimension the model leaves open is a name, as in ONNX Runtime


class OpenVinoSession:
    """An OpenVINO compiled model behind ONNX Runtime's session interface, so the models need not
    know which runtime runs them. One inference request per thread: a request holds its buffers,
    and the service runs a model from several threads at once."""

    def __init__(self, model: Path, threads_: int) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ModelError("FACEPRINT_RUNTIME=openvino needs OpenVINO: pip install 'faceprint[openvino]'") from None
        from .zoo.fetch import cache_dir

        try:
            # float32 whatever the CPU offers (bf16 would change the vectors); latency first (one image
            # at a time per process); compiled models cached beside the model files (compiling is most
            # of OpenVINO's start-up)
            self._model = ov.Core().compile_model(str(model), "CPU", {
                "INFERENCE_NUM_THREADS": threads_, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                "CACHE_DIR": str(cache_dir() / "openvino")})
        except Exception as e:  # OpenVINO raises its own untyped errors
            raise ModelError(f"cannot load ONNX model {model} into OpenVINO: {e}") from None
        self._local = threading.local()

    @staticmethod
    def _ports(ports) -> list[_Port]:
        return [_Port(p.get_any_name(), [d.get_length() if d.is_static else f"d{i}"
                                         for i, d in enumerate(p.get_partial_shape())]) for p in ports]

    def get_inputs(self) -> list[_Port]:
        return self._ports(self._model.inputs)

    def get_outputs(self) -> list[_Port]:
        return self._ports(self._model.outputs)

    def run(self, names: list[str] | None, feed: dict) -> list:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._model.create_infer_request()
        result = request.infer(feed)
        ports = self._model.outputs if names is None else [self._model.output(n) for n in names]
        return [result[p].copy() for p in ports]  # the request reuses its buffers on the next call


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
