"""``faceprint export``: a pipeline as a folder a device or another program runs without faceprint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import JsonOpt, out, print_json, run

app = typer.Typer()


@app.command()
def export(target: Annotated[Path, typer.Option("--target", help="Folder to write the bundle into.")],
           pipeline: Annotated[str, typer.Option(help="Pipeline to export: fast (blazeface-short + "
                                                 "expo-mobilefacenet) or default (blazeface-mtcnn + "
                                                 "faceplugin).")] = "fast",
           fmt: Annotated[str, typer.Option("--format", help="Model format: onnx (float32), or tflite "
                                            "(the fast pipeline's networks as published, for LiteRT; int8 "
                                            "is not offered).")] = "onnx",
           json_out: JsonOpt = False) -> None:
    """Model files, bundle.json (SHA-256s, preprocessing, template, threshold) and runner.py, which
    needs only the runtime (onnxruntime, or ai-edge-litert for tflite), numpy and OpenCV:
    `python runner.py verify a.jpg b.jpg`."""
    from ..export import export as write_bundle

    def go() -> None:
        spec = write_bundle(target, pipeline, fmt)
        if json_out:
            print_json({"bundle": str(spec), "files": sorted(p.name for p in target.iterdir() if not p.name.startswith("."))})
        else:
            out.print(f"bundle written to {target}: python {target / 'runner.py'} verify A.jpg B.jpg")
    run(go)
