"""The OpenVINO runtime (``FACEPRINT_RUNTIME=openvino``) runs faceprint's own model files and gives
ONNX Runtime's answers on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ModelError
from faceprint.imageio import load_image

from .conftest import lfw_image

pytest.importorskip("openvino", reason="OpenVINO is an optional runtime (pip install 'faceprint[openvino]')")


def _pipeline():
    """A detector and embedder made now (not the shared instances), so they take the runtime set now."""
    from faceprint.detection.blazeface_mtcnn import BlazeFaceMTCNN
    from faceprint.embedding.faceplugin import FacePlugin

    return BlazeFaceMTCNN(), FacePlugin()


def test_openvino_gives_onnx_runtimes_faces_and_faceprints(lfw_dir, astronaut, monkeypatch):
    from faceprint.runtime import OpenVinoSession

    images = [astronaut] + [load_image(lfw_image(lfw_dir, name, 1)) for name in ("George_W_Bush", "Serena_Williams")]
    answers = {}
    for runtime in ("onnxruntime", "openvino"):
        monkeypatch.setenv("FACEPRINT_RUNTIME", runtime)
        detector, embedder = _pipeline()
        assert isinstance(embedder._session, OpenVinoSession) == (runtime == "openvino")
        answers[runtime] = [(faces, embedder.embed_faces(image, faces))
                            for image in images for faces in [detector.detect(image)]]
    for (faces_a, vectors_a), (faces_b, vectors_b) in zip(answers["onnxruntime"], answers["openvino"]):
        assert len(faces_a) == len(faces_b) >= 1
        np.testing.assert_allclose([f.box for f in faces_a], [f.box for f in faces_b], atol=0.01)
        assert (1.0 - np.sum(vectors_a * vectors_b, axis=1)).max() < 1e-5


def test_an_unknown_runtime_is_refused_by_name(monkeypatch):
    from faceprint.runtime import onnx_session

    monkeypatch.setenv("FACEPRINT_RUNTIME", "tensorrt")
    with pytest.raises(ModelError, match="FACEPRINT_RUNTIME='tensorrt'"):
        onnx_session("model.onnx")
