"""Close-match hints for mistyped names (codecs, datasets, metrics, architectures)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownName(KeyError):
    """A name that is not in a registry (codec, dataset, anchor); its message lists the valid ones. Exit 2."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'jpeg'?)`` for the closest valid name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
