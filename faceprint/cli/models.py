"""``faceprint models``: list, fetch and verify the pretrained models in the zoo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .. import zoo
from ..errors import FaceprintError
from ._common import JsonOpt, err, out, print_json, run

app = typer.Typer(help="List, fetch and verify pretrained models.", no_args_is_help=True)


@app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """Every model in the zoo: kind, size, licence, source, cached or not."""
    rows = [
        {"name": s.name, "kind": s.kind, "cached": s.cached, "size_bytes": s.size, "licence": s.licence,
         "summary": s.summary, "input": s.input, "threshold": s.threshold, "sources": s.sources}
        for s in zoo.specs()
    ]
    if json_out:
        return print_json(rows)
    t = Table("name", "kind", "size", "licence", "cached", "what")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.1f} MB" if r["size_bytes"] else "-"
        t.add_row(r["name"], r["kind"], size, r["licence"], "yes" if r["cached"] else "no", r["summary"])
    out.print(t)


@app.command("fetch")
def models_fetch(names: Annotated[Optional[list[str]], typer.Argument(help="Models to fetch (default all).")] = None,
                 force: Annotated[bool, typer.Option(
                     "--force", help="Download again even if cached and redo the conversions: "
                                     "the fix for a file that `models verify` or a load refused.")] = False,
                 ) -> None:
    """Download, verify and convert models into the cache (then everything works offline)."""
    def go() -> None:
        specs = [zoo.get(n) for n in names] if names else zoo.specs()
        fix = " ".join(["faceprint models fetch --force", *(names or [])])
        zoo.fetch([f for s in specs for f in s.files.values()], progress=err.is_terminal, force=force, fix=fix)
        for s in specs:
            if s.calibrated and not names and not os.environ.get("FACEPRINT_LFW"):
                # "all" never fails for want of calibration faces; asked for by name, it says what it needs
                out.print(f"{s.name}: sources cached; built on first use or by `faceprint models fetch {s.name}` "
                          f"with FACEPRINT_LFW set (it is calibrated on LFW faces)", highlight=False)
                continue
            _load_model(s)  # converts on first load, so using the cache later needs no write access
            out.print(f"{s.name}: cached ({', '.join(s.sources)})", highlight=False)
    run(go)


def _load_model(spec: zoo.ModelSpec) -> None:
    from ..analysis import ATTRIBUTES, get_model, model_names
    from ..detection import get_detector
    from ..embedding import get_embedder

    if spec.kind in ("landmarks", "attribute"):
        get_model(next(a for a in ATTRIBUTES if spec.name in model_names(a)), spec.name)
    else:
        (get_detector if spec.kind == "detector" else get_embedder)(spec.name)


@app.command("verify")
def models_verify(json_out: JsonOpt = False) -> None:
    """Re-hash every cached model file and conversion, and run each embedder's known-answer self-test."""
    from ..zoo import selftest

    status = {None: "missing", True: "ok", False: "CORRUPT"}
    results, seen = [], set()
    for s in zoo.specs():
        for f in s.files.values():
            results.append({"model": s.name, "file": f.member, "status": status[zoo.verify(f)]})
            for stamp in zoo.converted_from(f.sha256):
                if stamp.suffix == ".json" and stamp not in seen:
                    seen.add(stamp)
                    results.append({"model": s.name, "file": f"converted/{stamp.stem}", **_conversion_status(stamp)})
    for s in zoo.specs("embedder"):
        row = {"model": s.name, "file": "self-test", "status": "missing"}
        if s.cached:
            try:
                d, most = selftest.distance(s.name), selftest.tolerance(s.name)
                row.update(status="ok" if d <= most else "FAILED",
                           detail=f"cosine distance {d:.1e} to the reference (at most {most:g})")
            except FaceprintError as e:
                row.update(status="FAILED", detail=str(e))
        results.append(row)
    if json_out:
        print_json(results)
    else:
        for r in results:
            detail = f"  {r['detail']}" if "detail" in r else ""
            out.print(f"{r['status']:9} {r['model']:22} {r['file']}{detail}", highlight=False, soft_wrap=True)
    bad = sorted({r["model"] for r in results if r["status"] in {"CORRUPT", "FAILED"}})
    if bad:
        err.print(f"damaged: {', '.join(bad)}; run `faceprint models fetch --force {' '.join(bad)}`", highlight=False)
        raise typer.Exit(1)


def _conversion_status(stamp: Path) -> dict:
    """A conversion whose file is gone is ``missing``: it is made again on next use."""
    try:
        return {"status": "ok" if zoo.checked_conversion(stamp, fresh=True) else "missing"}
    except FaceprintError as e:
        return {"status": "CORRUPT", "detail": str(e)}
