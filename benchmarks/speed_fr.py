"""Child of ``benchmarks/speed.py``: times face_recognition 1.3.0 in its own venv (benchmarks/.venv-fr).

Run by speed.py, not by hand. It must not import faceprint: face_recognition's environment is
kept separate so neither library's dependencies shape the other's numbers.

The timed steps are exactly those of face_recognition's public pipeline, ``load_image_file`` ->
``face_locations(model=...)`` -> ``face_encodings(image, locations)`` (no jitter, 5-point model),
with ``face_encodings``' two statements (the 5-point landmarks, then dlib's chip + ResNet per face)
timed separately so "embedding alone" excludes the landmarks.

Protocol (shared with speed.py's faceprint worker): ``speed_fr.py MODE MODEL LIST OUT``.
MODE ``cold``: time import + model load + the first image, write JSON, exit.
MODE ``run``: load, warm up on the list's first image, print ``ready``, wait for a line on
stdin, then time every image in LIST and write per-image times and peak RSS to OUT.
"""

import time

T0 = time.perf_counter()

import sys
from pathlib import Path

from _common import serve  # beside this script


def main() -> None:
    mode, model, list_path, out_path = sys.argv[1:5]
    paths = [p for p in Path(list_path).read_text().split("\n") if p]
    import face_recognition  # loads all of dlib's models at import time
    from face_recognition import api

    t_loaded = time.perf_counter()

    def one(path):
        c, t = time.process_time(), time.perf_counter()
        image = face_recognition.load_image_file(path)
        t1 = time.perf_counter()
        locations = face_recognition.face_locations(image, model=model)
        t2 = time.perf_counter()
        # face_recognition.face_encodings(image, locations), its two steps timed apart
        landmarks = api._raw_face_landmarks(image, locations, "small")
        t3 = time.perf_counter()
        vectors = [api.face_encoder.compute_face_descriptor(image, lm, 1) for lm in landmarks]
        t4 = time.perf_counter()
        return {"decode": t1 - t, "detect": t2 - t1, "align": t3 - t2, "embed": t4 - t3, "total": t4 - t,
                "cpu": time.process_time() - c,
                "faces": len(vectors)}

    serve(mode, paths, one, out_path, T0, t_loaded)

if __name__ == "__main__":
    main()
