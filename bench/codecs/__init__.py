"""Codec registry: every codec of the suite, by name.

To add a codec, write a module with a `Codec` record (see `base.py`) and
list it in `_ALL` below; the runner, CLI and reports pick it up by name.
"""

from __future__ import annotations

from bench.codecs import avif, bpg, heic, jpeg, jpeg2000, jpegxl, learned, webp
from bench.codecs.base import Codec, CodecUnavailable

_ALL = (
    jpeg.jpeg, jpeg.jpeg444, jpeg2000.jpeg2000, webp.webp, bpg.bpg, heic.heic, avif.avif, jpegxl.jpegxl,
    *learned.codecs(),
)  # fmt: skip

CODECS: dict[str, Codec] = {codec.name: codec for codec in _ALL}


def register(codec: Codec) -> None:
    """Add a codec to the registry (plugins, tests)."""
    CODECS[codec.name] = codec


def refresh_learned() -> None:
    """Re-read the learned codecs' checkpoints (after the weights directory changed)."""
    for codec in learned.codecs():
        CODECS[codec.name] = codec


def get_codec(name: str) -> Codec:
    """The codec registered as `name`; KeyError lists the valid names."""
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; valid: {', '.join(CODECS)}") from None


__all__ = ["CODECS", "Codec", "CodecUnavailable", "get_codec", "refresh_learned", "register"]
