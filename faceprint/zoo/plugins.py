"""Models chosen by name: a table of ``name -> "module:Class"``, imported only when asked for,
so a user of one model never pays for importing another's runtime (dlib, say)."""

from __future__ import annotations

import importlib

from ..errors import ModelError


def instantiate(table: dict[str, str], name: str, kind: str) -> object:
    try:
        module, cls = table[name].split(":")
    except KeyError:
        raise ModelError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}") from None
    return getattr(importlib.import_module(module), cls)()
