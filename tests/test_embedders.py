"""The ONNX embedders on real faces: shapes, unit length, batching, and identity separation on LFW."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import zoo
from faceprint.embedding import get_embedder
from faceprint.alignment import align

PEOPLE = ("George_W_Bush", "Colin_Powell", "Ariel_Sharon", "Serena_Williams", "Gerhard_Schroeder")


def _embedder(name: str, **kw):
    spec = zoo.get(name)
    if not spec.cached:
        pytest.skip(f"model {name} is not in the cache (run `faceprint models fetch {name}`)")
    emb = type(get_embedder(name))()  # a fresh instance: the shared one must keep its settings
    for key, value in kw.items():
        setattr(emb, key, value)
    return emb


@pytest.fixture(scope="module")
def lfw_faces(lfw_dir):
    """Two photos each of five people with detected landmarks: (images, faces, person ids).

    LFW photos of one person vary in age, pose and light; these five pairs are ordinary ones
    (not the hardest), so an embedder that fails here is broken rather than merely weak.
    """
    from .conftest import lfw_image
    from PIL import Image

    from faceprint.detection import get_detector

    det = get_detector("mtcnn")
    images, faces, ids = [], [], []
    for pid, name in enumerate(PEOPLE):
        for n in (1, 2):
            img = np.asarray(Image.open(lfw_image(lfw_dir, name, n)).convert("RGB"))
            found = det.detect(img)
            assert found, f"MTCNN found no face in {name} {n}"
            images.append(img)
            faces.append(min(found, key=lambda f: abs((f.box[0] + f.box[2]) / 2 - 125) + abs((f.box[1] + f.box[3]) / 2 - 125)))
            ids.append(pid)
    return images, faces, np.array(ids)


@pytest.mark.parametrize("name,dims,size", [("mobilefacenet", 256, 112), ("facenet", 512, 160),
                                            ("faceplugin", 512, 112), ("expo-mobilefacenet", 192, 112),
                                            ("dlib-resnet", 128, 150)])
def test_embedder_contract(name, dims, size, astronaut):
    emb = _embedder(name)
    assert (emb.name, emb.size, emb.dims) == (name, size, dims)
    rng = np.random.default_rng(0)
    crops = np.stack([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2)]
                     + [np.ascontiguousarray(astronaut[:size, 150:150 + size])])
    out = emb.embed_crops(crops)
    assert out.shape == (3, dims) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # one call per batch must equal one call per crop
    single = np.concatenate([emb.embed_crops(c[None]) for c in crops])
    np.testing.assert_allclose(out, single, atol=1e-4)
    assert emb.embed_crops(np.zeros((0, size, size, 3), np.uint8)).shape == (0, dims)
    with pytest.raises(ValueError):
        emb.embed_crops(np.zeros((1, size + 1, size, 3), np.uint8))


@pytest.mark.parametrize("name", ["mobilefacenet", "facenet", "faceplugin", "expo-mobilefacenet", "dlib-resnet"])
@pytest.mark.parametrize("flip", [False, True])
def test_same_person_closer_than_different_people(name, flip, lfw_faces):
    images, faces, ids = lfw_faces
    emb = _embedder(name, flip=flip)
    crops = np.stack([align(img, f, emb.template, emb.size).pixels for img, f in zip(images, faces)])
    vecs = emb.embed_crops(crops)
    sims = vecs @ vecs.T
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    diff = ids[:, None] != ids[None, :]
    # every photo's nearest other photo is the same person
    nearest = np.where(np.eye(len(ids), dtype=bool), -np.inf, sims).argmax(1)
    assert (ids[nearest] == ids).all(), sims.round(2)
    # and every same-person pair is closer than every different-person pair (scale-free: dlib's
    # distances are ~8x tighter than faceplugin's, so no fixed margin fits all)
    assert sims[same].min() > sims[diff].max()


def test_prewhiten_is_per_image_standardisation():
    from faceprint.embedding.facenet import prewhiten

    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, 256, (4, 4, 3)), np.full((4, 4, 3), 7)]).astype(np.uint8)
    out = prewhiten(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(out[0].std(), 1, atol=1e-5)
    np.testing.assert_array_equal(out[1], 0)  # a flat image: std floors at 1/sqrt(n), no division by zero



def _before_rewrite(name: str, path):
    """The conversion as it was before ``zoo.prelu`` (and, for faceplugin, ``zoo.weights``): the same
    graph with its PReLUs, and its dead weights, as they came."""
    from faceprint.zoo.batch import free_batch
    from faceprint.zoo.tflite import tflite_to_onnx

    return free_batch(path.read_bytes() if name == "faceplugin" else tflite_to_onnx(path))


def _raw_outputs(emb, models: tuple[bytes, ...], lfw_faces) -> list[np.ndarray]:
    """Each ONNX model's raw outputs on the LFW faces, prepared as ``emb`` prepares crops."""
    import onnxruntime as ort

    images, faces, _ = lfw_faces
    x = emb._prepare(np.stack([align(img, f, emb.template, emb.size).pixels for img, f in zip(images, faces)]))
    outputs = []
    for model in models:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    return outputs


@pytest.mark.parametrize("name, gone", [("faceplugin", "PRelu"), ("expo-mobilefacenet", "Abs")])
def test_prelu_rewrite_gives_the_same_vectors_bit_for_bit(name, gone, lfw_faces):
    """The conversion rewrites the PReLUs (``zoo.prelu``: faceplugin's as ONNX PRelu, expo's as
    TFLite's Relu/Abs/Sub/Mul) and zeroes faceplugin's dead weights (``zoo.weights``) for speed; on
    real LFW faces the model's raw outputs equal those of the graph before the rewrite exactly, not
    approximately."""
    import onnx

    emb = _embedder(name)
    before = _before_rewrite(name, zoo.get(name).path(emb.source))
    after = emb.model_path.read_bytes()
    ops = lambda model: {n.op_type for n in onnx.load_from_string(model).graph.node}  # noqa: E731
    assert gone in ops(before) and gone not in ops(after)
    np.testing.assert_array_equal(*_raw_outputs(emb, (before, after), lfw_faces))


def _dead(model: bytes) -> int:
    """Weights of ``model`` that ``zoo.weights`` counts as dead (non-zero, under ``DEAD`` of their tensor's largest)."""
    import onnx
    from onnx import numpy_helper

    from faceprint.zoo.weights import dead

    return sum(int(dead(numpy_helper.to_array(t)).sum()) for t in onnx.load_from_string(model).graph.initializer)


@pytest.mark.parametrize("name", ["faceplugin", "mobilefacenet"])
def test_dead_weights_are_zeroed_and_change_no_output(name, lfw_faces):
    """faceplugin's and mobilefacenet's conversions zero the thousands of weights too small to count,
    some of them denormal numbers that slow Intel CPUs tenfold (``zoo.weights``); on real LFW faces
    the outputs equal, to the last bit, those of the same conversion without the zeroing."""
    import json

    from faceprint.zoo.batch import free_batch
    from faceprint.zoo.prelu import prelu_as_convs
    from faceprint.zoo.tfgraph import convert_tfjs

    emb = _embedder(name)
    source = zoo.get(name).path(emb.source)
    if name == "faceplugin":
        before = prelu_as_convs(free_batch(source.read_bytes()))
    else:
        before = convert_tfjs(json.loads(source.read_text()), weights_dir=zoo.get(name).path("weights").parent,
                              output_names=["embedding"])
    after = emb.model_path.read_bytes()
    assert _dead(before) > 1000 and _dead(after) == 0
    np.testing.assert_array_equal(*_raw_outputs(emb, (before, after), lfw_faces))
