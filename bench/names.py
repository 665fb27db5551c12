"""Close-match hints for mistyped names (codecs, datasets, metrics, architectures)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'jpeg'?)`` for the closest valid name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
