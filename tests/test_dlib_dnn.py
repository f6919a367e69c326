"""dlib's ResNet face descriptor converted to ONNX: same vectors as dlib itself on real LFW faces."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import zoo
from faceprint.errors import ModelError
from faceprint.zoo.dlib_dnn import parse

PEOPLE = ("George_W_Bush", "Colin_Powell", "Serena_Williams", "Gerhard_Schroeder", "Jennifer_Capriati")


def _model_path():
    spec = zoo.get("dlib-resnet")
    if not spec.cached:
        pytest.skip("dlib-resnet is not in the cache (run `faceprint models fetch dlib-resnet`)")
    return spec.path("model", progress=False)


@pytest.fixture(scope="module")
def chips(lfw_dir):
    """150x150 chips of ten LFW photos (two each of five people), aligned as faceprint aligns them."""
    from faceprint.alignment import DLIB_150, align
    from faceprint.detection import get_detector
    from faceprint.evaluation import central
    from faceprint.imageio import load_image

    from .conftest import lfw_image

    det = get_detector("mtcnn")
    out = []
    for name in PEOPLE:
        for n in (1, 2):
            image = load_image(lfw_image(lfw_dir, name, n))
            out.append(align(image, central(det.detect(image), image.shape), DLIB_150, 150).pixels)
    return np.stack(out)


def test_onnx_descriptor_equals_dlibs(chips):
    """The tolerance (1e-5 on dlib's raw descriptor, norm ~1.4) is float32 summation-order noise;
    any misread weight, padding or shortcut shows up as differences of 1e-2 and more."""
    import dlib

    from faceprint.embedding.dlib_resnet import DlibResNet

    reference = np.array([np.array(v) for v in
                          dlib.face_recognition_model_v1(str(_model_path())).compute_face_descriptor(list(chips))])
    emb = DlibResNet()
    raw = emb._forward(chips)
    assert raw.shape == (len(chips), 128)
    assert np.abs(raw - reference).max() <= 1e-5
    ours = emb.embed_crops(chips)
    unit = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert (1 - (ours * unit).sum(1)).max() <= 1e-6
    # and it is a face descriptor: each photo's nearest other photo is the same person
    sims = np.where(np.eye(len(ours), dtype=bool), -np.inf, ours @ ours.T)
    assert (sims.argmax(1) // 2 == np.arange(len(ours)) // 2).all()


def test_parse_reads_the_whole_network():
    means, layers = parse(_model_path().read_bytes())
    np.testing.assert_allclose(means, [122.782, 117.001, 104.298], atol=1e-4)  # dlib's input_rgb_image_sized
    kinds = [op.kind for op, _ in layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert layers[-1][1]["w"].shape == (256, 128)


def test_a_damaged_or_different_file_is_refused_with_one_line():
    data = _model_path().read_bytes()
    with pytest.raises(ModelError, match="ends early"):
        parse(data[:-1000])
    with pytest.raises(ModelError, match="bytes left"):
        parse(data + b"\0")
    landmarks = zoo.get("dlib-hog").path("landmarks", progress=False).read_bytes()  # a shape predictor
    with pytest.raises(ModelError) as e:
        parse(landmarks)
    assert "\n" not in str(e.value)
