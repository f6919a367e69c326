"""What zeroing dead weights (``faceprint.zoo.weights``) buys each model whose conversion does it.

    python benchmarks/dead_weights.py --lfw ../shared/datasets/lfw     # -> benchmarks/results/dead-weights.json

For each such model, its conversion without the zeroing and the one faceprint runs now are timed
in turn on faces of LFW images, as ``benchmarks/prelu.py`` times its pairs (one thread, batches of
1 and 8, the median per face), with how many weights were zeroed and a check that both give the
same outputs to the last bit. The gain depends on the CPU: Intel's compute with denormal numbers
in microcode, AMD's do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from prelu import arguments, compare, write_report  # beside this script

from faceprint import zoo
from faceprint.alignment import align
from faceprint.analysis import get_model
from faceprint.embedding import get_embedder
from faceprint.zoo.batch import free_batch
from faceprint.zoo.prelu import prelu_as_convs
from faceprint.zoo.tfgraph import convert_tfjs
from faceprint.zoo.weights import DEAD


def _zeroed(before: bytes, after: bytes) -> int:
    """Weights that are 0 in ``after`` and not in ``before``."""
    import onnx
    from onnx import numpy_helper

    was = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(before).graph.initializer}
    return sum(int(((numpy_helper.to_array(t) == 0) & (was[t.name] != 0)).sum())
               for t in onnx.load_from_string(after).graph.initializer if t.name in was)


def _unzeroed(name: str, source: Path) -> bytes:
    """The embedder's conversion as it was before it zeroed dead weights."""
    if name == "faceplugin":
        return prelu_as_convs(free_batch(source.read_bytes()))
    return convert_tfjs(json.loads(source.read_text()), weights_dir=zoo.get(name).path("weights").parent,
                        output_names=["embedding"])


def main() -> None:
    args, images, faces = arguments(__doc__.split("\n")[0], "dead-weights.json")
    models = {}
    for name in ("faceplugin", "mobilefacenet"):
        emb = get_embedder(name)
        x = emb._prepare(np.stack([align(i, f, emb.template, emb.size).pixels for i, f in zip(images, faces)]))
        models[name] = (_unzeroed(name, zoo.get(name).path(emb.source)), emb.model_path.read_bytes(), x)
    for attribute in ("age", "gender"):
        model = get_model(attribute, f"cydral-{attribute}")
        spec = zoo.get(model.name)
        x = np.concatenate([model._chip(i, f, {}) for i, f in zip(images, faces)])
        models[model.name] = (spec.path(model.source).read_bytes(),
                              spec.converted(model.source, model.convert).read_bytes(), x)
    rows = {}
    for name, (before, after, x) in models.items():
        rows[name] = {"weights_zeroed": _zeroed(before, after), "below": f"2^{int(np.log2(DEAD))} of the tensor's largest",
                      **compare(before, after, x, args.rounds)}
        print(name, json.dumps(rows[name]), flush=True)
    write_report(args.out, rows)


if __name__ == "__main__":
    main()
