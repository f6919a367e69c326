"""Models chosen by name: one ``Registry`` per kind (detectors, embedders, ...), each a table of
``name -> "module:Class"`` imported only when asked for, so a user of one model never pays for
importing another's runtime (dlib, say), and a model is loaded once, on first use."""

from __future__ import annotations

import importlib
import threading
from typing import Generic, TypeVar

from ..errors import ModelError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named models of one ``kind``; ``get`` makes each one once (its model files fetched and loaded
    then) and hands out that shared instance."""

    def __init__(self, kind: str, table: dict[str, str]) -> None:
        self.kind = kind
        self._table = table
        self._made: dict[str, T] = {}
        self._lock = threading.RLock()  # a fusion made under it makes its parts through the same registry

    def names(self) -> list[str]:
        return list(self._table)

    def register(self, name: str, target: str) -> None:
        """Add a model: ``target`` is ``"module:Class"``, a class made with no arguments."""
        self._table[name] = target

    def cls(self, name: str) -> type[T]:
        """The class of ``name``, imported but not made (no model loaded)."""
        try:
            module, cls = self._table[name].split(":")
        except KeyError:
            raise ModelError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._table)}") from None
        return getattr(importlib.import_module(module), cls)

    def get(self, name: str) -> T:
        """The shared instance of ``name``, made on first use."""
        if name not in self._made:
            with self._lock:
                if name not in self._made:
                    self._made[name] = self.cls(name)()
        return self._made[name]

    def loaded(self) -> list[str]:
        """The names made so far."""
        return list(self._made)


def fingerprint(name: str, revision: int, settings: str) -> str:
    """What determines a model's output: name, code revision, settings, weight hashes.

    Evaluation caches are keyed on it, so new weights or changed code never reuse old results.
    """
    from . import get

    try:
        hashes = sorted(f.sha256 for f in get(name).files.values())
    except ModelError:  # a model with no zoo entry (tests' stand-ins): name and settings only
        hashes = []
    return f"{name} r{revision} {settings} {' '.join(hashes)}"
