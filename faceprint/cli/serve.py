"""``faceprint serve``: the REST service and its web page."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ..errors import FaceprintError
from ._common import DbOpt, VectorsOpt, err, run

app = typer.Typer()


@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the service to the network.")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          db: DbOpt = None,
          workers: Annotated[int, typer.Option(help="Worker processes (each loads the models).")] = 1,
          thumbnails: Annotated[bool, typer.Option(
              "--thumbnails/--no-thumbnails", help="Keep a face image with each enrolled face.")] = False,
          max_body_mb: Annotated[float, typer.Option(help="Largest request body accepted, in MB.")] = 20.0,
          vectors: VectorsOpt = None) -> None:
    """Run the REST service and its web page (API docs at /docs)."""
    def go() -> None:
        try:
            import uvicorn
        except ImportError:
            raise FaceprintError("the service needs its extras: pip install 'faceprint[server]'") from None
        from ..gallery import Gallery
        from ..server.app import ENV

        if vectors and workers > 1:
            from ..gallery.milvus import is_lite

            if is_lite(vectors):
                raise FaceprintError("Milvus Lite serves one process: use --workers 1, or run `milvus-lite server "
                                     "--data-dir PATH` and --vectors http://127.0.0.1:19530 (docs/server-milvus.md)")
        with Gallery(db, vectors=vectors):  # a bad URL, wrong key or locked file fails here, not in each worker
            pass
        os.environ.update({ENV["max_body"]: str(int(max_body_mb * 1024 * 1024)),
                           ENV["thumbnails"]: "1" if thumbnails else "0", **({ENV["db"]: db} if db else {}),
                           **({ENV["vectors"]: vectors} if vectors else {})})
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(f"[yellow]warning:[/] listening on {host}: reachable from the network; "
                      "put TLS in front of it (API keys travel in headers)")
        uvicorn.run("faceprint.server.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info")
    run(go)
