"""LFW as the benchmarks read it: the files (``faceprint.lfw``) and the cache of their embeddings that
makes re-runs quick."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import FaceprintError
from ..imageio import load_image
from ..lfw import central
from ..pipeline import get_pipeline
from ..runtime import process_map
from ..zoo import cache_dir

#: ``progress(done, total)``: how far an embedding run is, in images times embedder parts.
Progress = Callable[[int, int], None]


def _embed_chunk(args: tuple[str, str, list[str]]) -> dict[str, np.ndarray | None]:
    detector, embedder, paths = args
    pipe = get_pipeline(detector, embedder)
    out: dict[str, np.ndarray | None] = {}
    for p in paths:
        image = load_image(p)
        faces = pipe.detector.detect(image)
        out[p] = pipe.embed(image, [central(faces, image.shape)])[0].vector if faces else None
    return out


def cache_path(unique: list[str], detector: str, embedder: str) -> tuple[Path, str]:
    """Where the embeddings of ``unique`` images by this pipeline are cached, and the fingerprint.

    The key covers the models' weight hashes, code revisions and settings (flip, ...), not only
    their names, so changed weights or code never reuse stale vectors.
    """
    fingerprint = " | ".join(fingerprints(detector, embedder).values())
    key = hashlib.sha256("\n".join([fingerprint, *unique]).encode()).hexdigest()[:16]
    return cache_dir() / "eval" / f"{detector}+{embedder}-{key}.npz", fingerprint


def part_names(detector: str, embedder: str) -> list[str]:
    """The embedders whose caches a run reads: a fusion's parts, or the embedder itself."""
    emb = get_pipeline(detector, embedder).embedder
    return [p.name for p in emb.parts] if getattr(emb, "parts", None) else [embedder]


def is_cached(paths: list[Path], detector: str, embedder: str) -> bool:
    unique = sorted({str(p) for p in paths})
    return all(cache_path(unique, detector, e)[0].is_file() for e in part_names(detector, embedder))


def fingerprints(detector: str, embedder: str) -> dict[str, str]:
    """What the cache key covers, for the report: each model's name, revision, settings, weight hashes."""
    pipe = get_pipeline(detector, embedder)
    return {"detector": pipe.detector.fingerprint, "embedder": pipe.embedder.fingerprint}


def embed_images(paths: list[Path], detector: str, embedder: str, workers: int = 1,
                 progress: Callable[[int], None] | None = None, cache: bool = True
                 ) -> tuple[dict[str, np.ndarray | None], float]:
    """Embeddings of each image's central face (None where no face) and seconds per image.

    With ``cache``, results are kept per pipeline and image set so re-runs are quick. A fusion
    embedder (one with ``parts``) is built from its parts' cached embeddings: the vectors are the
    same as running it whole (``tests/test_eval.py`` checks), and each part's cache is reused.
    Its time per image is the sum of the parts' (so detection is counted once per part).
    ``progress(n)`` hears of every ``n`` images embedded.
    """
    unique = sorted({str(p) for p in paths})
    emb = get_pipeline(detector, embedder).embedder
    if getattr(emb, "parts", None):
        runs = [embed_images(paths, detector, part.name, workers, progress, cache) for part in emb.parts]
        combined = {p: None if any(r[0][p] is None for r in runs) else emb.combine([r[0][p] for r in runs])
                    for p in unique}
        return combined, sum(r[1] for r in runs)
    saved, fingerprint = cache_path(unique, detector, embedder)
    if cache and saved.is_file():
        data = np.load(saved, allow_pickle=False)
        if str(data["fingerprint"]) != fingerprint:
            raise FaceprintError(f"{saved}: made by another pipeline version; delete it")
        return _unpack(data, unique), float(data["seconds_per_image"])
    chunks = [unique[i:i + 64] for i in range(0, len(unique), 64)]
    result: dict[str, np.ndarray | None] = {}
    start = time.perf_counter()
    for part in process_map(_embed_chunk, [(detector, embedder, c) for c in chunks], workers):
        result.update(part)
        progress and progress(len(part))
    per_image = (time.perf_counter() - start) * workers / max(len(unique), 1)
    if not cache:
        return result, per_image
    saved.parent.mkdir(parents=True, exist_ok=True)
    dims = next((len(v) for v in result.values() if v is not None), 1)
    matrix = np.stack([result[p] if result[p] is not None else np.zeros(dims, np.float32) for p in unique])
    found = np.array([result[p] is not None for p in unique])
    with atomic_file(saved, sync=False) as f:  # a cache: a power cut may lose it, never tear it
        np.savez(f, paths=np.array(unique), matrix=matrix, found=found, seconds_per_image=per_image,
                 fingerprint=fingerprint)
    return result, per_image


def _unpack(data, unique: list[str]) -> dict[str, np.ndarray | None]:
    if list(data["paths"]) != unique:
        raise FaceprintError("evaluation cache does not match the image list; delete it")
    return {p: (v if ok else None) for p, v, ok in zip(unique, data["matrix"], data["found"])}


@dataclass(frozen=True)
class Embedded:
    """What a report embeds: each image's vector (None: no face), seconds per image, and whether
    every vector came from the cache."""

    vectors: dict[str, np.ndarray | None]
    seconds_per_image: float
    cached: bool


def embed_for_report(paths: list[Path], detector: str, embedder: str, workers: int = 1, cache: bool = True,
                     progress: Progress | None = None, faces: Path | None = None) -> Embedded:
    """:func:`embed_images`, with progress counted against its total (images times embedder parts);
    or, with ``faces``, each image's central face read from that ``faceprint embed`` dataset
    (nothing run: 0 seconds per image)."""
    if faces:
        return Embedded(_dataset_vectors(paths, detector, embedder, faces), 0.0, True)
    total = len({str(p) for p in paths}) * len(part_names(detector, embedder))
    cached = cache and is_cached(paths, detector, embedder)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    vectors, per_image = embed_images(paths, detector, embedder, workers, step if progress else None, cache)
    return Embedded(vectors, per_image, cached)



def _dataset_vectors(paths: list[Path], detector: str, embedder: str, faces: Path) -> dict[str, np.ndarray | None]:
    """Each image's central face from the dataset ``faces``, which must hold every image and have been
    made by the same models."""
    from ..batch import central_vectors, read_manifest

    made = read_manifest(faces)
    if (made["detector"], made["embedder"]) != (detector, embedder):
        raise FaceprintError(f"{faces}: made with --detector {made['detector']} --embedder {made['embedder']}; "
                             "give the same")
    stored = central_vectors(faces)
    missing = [p for p in paths if str(p.absolute()) not in stored]
    if missing:
        raise FaceprintError(f"{faces}: {len(missing)} of the {len(paths)} images are not in it "
                             f"(first: {missing[0]}); run `faceprint embed` on them")
    return {str(p): stored[str(p.absolute())] for p in paths}
