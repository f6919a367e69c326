"""TFLite -> ONNX conversion, run once on the user's machine and cached by ``ModelSpec.converted``.

MediaPipe ships its detectors only as ``.tflite``; faceprint runs everything in onnxruntime, so
the flatbuffer is translated with ``tflite2onnx`` (pure Python, no TensorFlow). The BlazeFace
files store weights as float16 behind DEQUANTIZE ops; tflite2onnx warns that float16 is
"not tested" but folds them into float32 initialisers correctly (tests/test_blazeface.py checks
the result against the TFLite interpreter), so those warnings are silenced here. LEAKY_RELU, which
tflite2onnx 0.4 lacks, is mapped onto ONNX ``LeakyRelu`` with the op's own alpha.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..errors import ModelError


def _register_leaky_relu() -> None:
    """Teach tflite2onnx LEAKY_RELU: an activation like its others, with ``alpha`` read from the op's options."""
    import tflite
    from tflite2onnx.op.activation import Activation
    from tflite2onnx.op.common import OpFactory

    leaky = tflite.BuiltinOperator.LEAKY_RELU
    if leaky in OpFactory.registry:
        return

    class LeakyRelu(Activation):
        TypeMapping = {**Activation.TypeMapping, leaky: "LeakyRelu"}

        def parse(self) -> None:
            super().parse()
            options, table = tflite.LeakyReluOptions(), self.tflite.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            self.attrs["alpha"] = float(options.Alpha())

    OpFactory.registry[leaky] = LeakyRelu


def tflite_to_onnx(path: Path) -> bytes:
    """ONNX bytes for a float TFLite model (inputs become NCHW, as tflite2onnx lays them out)."""
    try:
        import tflite2onnx
    except ImportError as e:  # a declared dependency, but say what is missing if it was skipped
        raise ModelError("converting a .tflite model needs the 'tflite2onnx' package (pip install tflite2onnx)") from e
    import onnx

    _register_leaky_relu()

    log = logging.getLogger("tflite2onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="faceprint-tflite-") as tmp:
            out = Path(tmp) / "model.onnx"
            tflite2onnx.convert(str(path), str(out))
            data = out.read_bytes()
    except Exception as e:  # tflite2onnx raises bare NotImplementedError / AssertionError on unknown ops
        raise ModelError(f"could not convert {path.name} to ONNX: {type(e).__name__}: {e}") from e
    finally:
        log.setLevel(level)
    onnx.checker.check_model(onnx.load_from_string(data))
    return data
