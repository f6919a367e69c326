"""The one rule for people's names, applied by the gallery's store whatever the caller (CLI, REST, web page).

A name is a path segment of the REST routes (``/v1/people/{name}``) and a label shown to people, so
it may not hold ``/`` or ``\\`` (the route would never match it: the person could not be deleted over
REST), be ``.`` or ``..`` (a browser resolves those in a URL), or hold characters that are invisible
or change how text around them reads: controls, format characters such as U+202E (right-to-left
override) or U+200B (zero-width space), line and paragraph separators (Unicode categories Cc, Cf,
Zl, Zp) and lone surrogates (Cs, which cannot even be stored). Names are kept in Unicode NFC, so a
name typed decomposed (``José`` as ``e`` + combining accent) and composed is one person.
"""

from __future__ import annotations

import unicodedata

from ..errors import InvalidNameError

MAX_LENGTH = 200
_REFUSED_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible format character",
                       "Zl": "a line separator", "Zp": "a paragraph separator", "Cs": "a lone surrogate"}


def valid_name(name: str) -> str:
    """``name`` in NFC, or InvalidNameError saying which part of the rule it breaks."""
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise InvalidNameError("a person's name cannot be empty")
    if name != name.strip():
        raise InvalidNameError(f"a person's name cannot begin or end with spaces: {name!r}")
    if len(name) > MAX_LENGTH:
        raise InvalidNameError(f"a person's name must be at most {MAX_LENGTH} characters (got {len(name)})")
    if name in (".", ".."):
        raise InvalidNameError(f"{name!r} cannot be a person's name")
    for c in name:
        if c in "/\\":
            raise InvalidNameError(f"a person's name cannot contain {c!r}: {name!r}")
        what = _REFUSED_CATEGORIES.get(unicodedata.category(c))
        if what:
            raise InvalidNameError(f"a person's name cannot contain {what} (U+{ord(c):04X}): {name!r}")
    return name


def lookup_name(name: str) -> str:
    """The form a name is stored in, to find a person by it (no refusal: a name stored before the rule
    existed can still be found, renamed and removed)."""
    return unicodedata.normalize("NFC", name)
