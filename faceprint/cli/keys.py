"""``faceprint keys``: API keys for ``faceprint serve`` (create, list, revoke)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from ..errors import FaceprintError
from ._common import DbOpt, JsonOpt, err, out, print_json, run

app = typer.Typer(help="API keys for `faceprint serve`: stored as hashes, each with scopes.", no_args_is_help=True)

ScopeOpt = Annotated[list[str], typer.Option("--scope", "-s", help="read, enroll or admin; repeat for several.")]


@app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")], scope: ScopeOpt,
                db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Make a key; it is printed once and only its hash is stored."""
    from ..gallery import Gallery
    from ..gallery.keys import create_key

    def go() -> None:
        with Gallery(db) as g:
            key = create_key(g.store, name, scope)
        if json_out:
            return print_json({"key": key, "id": key.split("_")[1], "name": name, "scopes": scope})
        out.print(key, highlight=False, soft_wrap=True)
        err.print("store it now: it cannot be shown again")
    run(go)


@app.command("list")
def keys_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Every key: id, name, scopes, created, revoked (never the key)."""
    from ..gallery import Gallery
    from ..gallery.keys import list_keys

    def go() -> None:
        with Gallery(db, readonly=True) as g:
            rows = [{"id": k.id, "name": k.name, "scopes": list(k.scopes), "created": k.created,
                     "revoked": k.revoked} for k in list_keys(g.store)]
        if json_out:
            return print_json(rows)
        t = Table("id", "name", "scopes", "created", "revoked")
        for r in rows:
            t.add_row(r["id"], r["name"], " ".join(r["scopes"]), _when(r["created"]),
                      _when(r["revoked"]) if r["revoked"] else "")
        out.print(t)
    run(go)


@app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
                db: DbOpt = None) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from ..gallery import Gallery
    from ..gallery.keys import revoke_key

    def go() -> None:
        with Gallery(db) as g:
            if not revoke_key(g.store, key_id):
                raise FaceprintError(f"no live key with id {key_id!r}")
        out.print(f"revoked {key_id}", highlight=False)
    run(go)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
