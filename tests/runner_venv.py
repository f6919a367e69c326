"""The export test's clean virtualenv: nothing but the bundle runner's dependencies, at the
versions faceprint runs here (so the test compares code, not library versions).

Made by ``make setup`` (``python tests/runner_venv.py``), since building it is installing, not
testing; the test makes it itself where setup did not.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

#: What the runner may import: a runtime for each model format, numpy and OpenCV.
RUNTIME = ("onnxruntime", "ai-edge-litert", "numpy", "opencv-python-headless")
VENV = Path(__file__).resolve().parents[1] / ".venv-runner"


def pins() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME]


def runner_python() -> Path:
    """The clean virtualenv's python, made (or remade, when its pins are not faceprint's) first."""
    python = VENV / "bin" / "python"
    stamp = VENV / "faceprint-pins.json"
    if python.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == pins():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins()],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot make the runner's virtualenv: {done.stderr[-2000:]}")
    stamp.write_text(json.dumps(pins()))
    return python


if __name__ == "__main__":
    print(runner_python())
