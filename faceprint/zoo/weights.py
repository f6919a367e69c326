"""Zero the weights too small to count, which some exported networks carry by the hundred thousand.

Weight decay leaves many weights of a trained network at 1e-12 to 1e-38 instead of 0. They change
no output: a weight ``DEAD`` (2^-40) times its tensor's largest adds a term far below float32's
rounding of the sum it joins (2^-24). But the smallest are denormal numbers, and so are products
made with them, and Intel CPUs compute with denormals in microcode, tens of times slower. ONNX
Runtime's flush-to-zero option covers the threads of its pool, not the calling thread that runs a
one-thread session. So faceplugin's network (196,000 such weights of 1.2 million) took 82 ms a face
on a Xeon, against 6.5 ms with them zeroed and the same outputs to the last bit; AMD's CPUs are not
slowed. Measured for each model: ``benchmarks/dead_weights.py``.
"""

from __future__ import annotations

import numpy as np

#: A weight smaller in magnitude than this fraction of its tensor's largest is set to 0.
DEAD = 2.0**-40


def dead(w: np.ndarray) -> np.ndarray:
    """Where ``w`` (one initializer) holds a dead weight: non-zero, under ``DEAD`` of its largest.
    Only float32 tensors of more than one value have any."""
    if w.dtype != np.float32 or w.size < 2:
        return np.zeros(w.shape, bool)
    magnitude = np.abs(w)
    return (magnitude < DEAD * magnitude.max()) & (w != 0)


def zero_dead_weights(model: bytes) -> bytes:
    """``model`` (ONNX) with every initializer's dead weights set to 0. Run at conversion: onnx is
    not imported by commands that only run the converted file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(model)
    for tensor in m.graph.initializer:
        w = numpy_helper.to_array(tensor)
        mask = dead(w)
        if mask.any():
            tensor.CopyFrom(numpy_helper.from_array(np.where(mask, np.float32(0), w), tensor.name))
    return m.SerializeToString()
