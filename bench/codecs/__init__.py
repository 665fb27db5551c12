"""Codec registry: every codec of the suite, by name.

To add a codec, write a module with a `Codec` record (see `base.py`) and
list it in `_ALL` below; the runner, CLI and reports pick it up by name.
"""

from __future__ import annotations

from bench.codecs.avif import avif
from bench.codecs.base import Codec, CodecUnavailable
from bench.codecs.bpg import bpg
from bench.codecs.jpeg import jpeg, jpeg444
from bench.codecs.jpeg2000 import jpeg2000
from bench.codecs.jpegxl import jpegxl
from bench.codecs.webp import webp

_ALL = (jpeg, jpeg444, jpeg2000, webp, bpg, avif, jpegxl)

CODECS: dict[str, Codec] = {codec.name: codec for codec in _ALL}


def register(codec: Codec) -> None:
    """Add a codec to the registry (plugins, tests)."""
    CODECS[codec.name] = codec


def get_codec(name: str) -> Codec:
    """The codec registered as `name`; KeyError lists the valid names."""
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; valid: {', '.join(CODECS)}") from None


__all__ = ["CODECS", "Codec", "CodecUnavailable", "get_codec", "register"]
