"""Codec registry: every codec of the suite, by name.

To add a codec, write a module with a `Codec` record (see `base.py`) and
list it in `_ALL` below; the runner, CLI and reports pick it up by name.
"""

from __future__ import annotations

from pathlib import Path

from bench.codecs import avif, bpg, heic, jpeg, jpeg2000, jpegxl, learned, webp
from bench.codecs.base import Codec, CodecUnavailable
from bench.names import UnknownName, did_you_mean

_ALL = (
    jpeg.jpeg, jpeg.jpeg444, jpeg2000.jpeg2000, webp.webp, bpg.bpg, heic.heic, avif.avif, jpegxl.jpegxl,
    *learned.codecs(),
)  # fmt: skip

CODECS: dict[str, Codec] = {codec.name: codec for codec in _ALL}


BUILT_IN = frozenset(CODECS)


def register(codec: Codec) -> None:
    """Add a codec to the registry (plugins, tests); ValueError for a built-in codec's name, which a run or a report
    would otherwise show as that codec."""
    if codec.name in BUILT_IN:
        raise ValueError(f"codec name {codec.name!r} is a built-in codec's; give the plug-in codec another name")
    CODECS[codec.name] = codec


def get_codec(name: str, *, weights_dir: Path | None = None, device: str = "cpu") -> Codec:
    """The codec registered as `name`; KeyError lists the valid names.

    A learned codec with `weights_dir` is the same architecture with the
    checkpoints of that folder, which replace committed ones of equal quality;
    with `device` its transforms run there (`bench.codecs.learned`). Classical
    codecs ignore both.
    """
    if (weights_dir is not None or device != "cpu") and name in learned.ARCHITECTURES:
        return learned.make_codec(learned.ARCHITECTURES[name], weights_dir and Path(weights_dir), device)
    try:
        return CODECS[name]
    except KeyError:
        raise UnknownName(f"unknown codec {name!r}{did_you_mean(name, CODECS)}; valid: {', '.join(CODECS)}") from None


def listing() -> list[str]:
    """Three lines per registered codec: name, family and library version (or why it cannot run); description;
    default sweep."""
    width = max(map(len, CODECS))
    lines = []
    for codec in CODECS.values():
        state = codec.version if codec.available else f"UNAVAILABLE: {codec.unavailable_reason}"
        lines += [f"{codec.name:<{width}} {codec.family:<9} {state}", f"{'':<{width}} {codec.description}",
                  f"{'':<{width}} sweep ({codec.quality_name}): {', '.join(f'{q:g}' for q in codec.qualities)}"]  # fmt: skip
    return lines


__all__ = ["CODECS", "Codec", "CodecUnavailable", "get_codec", "listing", "register"]
