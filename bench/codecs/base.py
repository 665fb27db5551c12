"""The codec interface every codec of the suite implements.

A codec is a plain record of functions (no class hierarchy): `encode` turns an
RGB uint8 image into one self-contained byte string, `decode` turns those bytes
back into an RGB uint8 image, `header_size` says how many of those bytes a
tile-based system would agree once instead of sending with every tile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Image = np.ndarray  # H×W×3, uint8


class CodecUnavailable(RuntimeError):
    """The library behind a codec is missing or unusable on this machine."""


@dataclass(frozen=True)
class Codec:
    """One codec of the benchmark.

    Attributes:
        name: registry key, used on the command line and in every result row.
        family: ``"classical"`` or ``"learned"``.
        description: one line for tables and reports.
        quality_name: what the quality knob means (units, direction).
        qualities: default sweep, ordered from the coarsest setting (lowest
            rate) to the finest.
        encode: ``encode(image, quality) -> bytes``; the bytes are everything a
            decoder needs (stand-alone file).
        decode: ``decode(bytes) -> image`` (H×W×3 uint8).
        header_size: ``header_size(bytes) -> int``; bytes of the stream that a
            tile-based system would agree once and not send per tile
            (container, tables, parameter sets).
        rate_note: how `header_size` splits the stream, for the report.
        library_version: returns the version string of the library behind the
            codec; raises ImportError or CodecUnavailable when it cannot run.
        install_hint: what to install when it cannot run.
        encode_batch: optional ``encode_batch(images, quality) -> list[bytes]`` for equal-size
            images in one pass (learned codecs); each stream is the one `encode` would give.
        decode_batch: optional ``decode_batch(streams) -> list[image]``, its counterpart.
        quality_range: the closed interval of valid qualities; None when only the sweep's
            values are valid (learned codecs: one checkpoint per quality).
        integer_quality: whether a quality must be a whole number.
        point_version: optional ``point_version(quality) -> str``, the version of one quality point where points
            are made by different files (a learned codec's checkpoint); rows store it, so adding or replacing one
            checkpoint leaves the other points' rows valid.
    """

    name: str
    family: str
    description: str
    quality_name: str
    qualities: tuple[float, ...]
    encode: Callable[[Image, float], bytes] = field(repr=False)
    decode: Callable[[bytes], Image] = field(repr=False)
    header_size: Callable[[bytes], int] = field(repr=False)
    rate_note: str = field(repr=False)
    library_version: Callable[[], str] = field(repr=False)
    install_hint: str = ""
    encode_batch: Callable[[list[Image], float], list[bytes]] | None = field(default=None, repr=False)
    decode_batch: Callable[[list[bytes]], list[Image]] | None = field(default=None, repr=False)
    quality_range: tuple[float, float] | None = None
    integer_quality: bool = True
    point_version: Callable[[float], str] | None = field(default=None, repr=False)

    def check_quality(self, value: float) -> float:
        """`value` as this codec takes it; ValueError naming the codec and its valid qualities otherwise."""
        if self.quality_range is None:
            valid = ", ".join(f"{q:g}" for q in self.qualities) or "none (no checkpoints)"
            if value not in self.qualities:
                raise ValueError(f"{self.name}: quality {value:g} is not one of {valid}")
            return float(value)
        low, high = self.quality_range
        kind = "a whole number " if self.integer_quality else ""
        if not (math.isfinite(value) and low <= value <= high) or (self.integer_quality and value != int(value)):
            raise ValueError(f"{self.name}: quality {value:g} is not {kind}in {low:g}–{high:g} ({self.quality_name})")
        return float(value)

    @functools.cached_property
    def unavailable_reason(self) -> str | None:
        """Why the codec cannot run here (with the install hint), or None."""
        try:
            self.library_version()
        except CodecUnavailable as exc:  # says itself what is missing
            return str(exc)
        except (ImportError, OSError) as exc:
            hint = f"; install: {self.install_hint}" if self.install_hint else ""
            return f"{exc}{hint}"
        return None

    def describe(self) -> dict:
        """What reports say of the codec; stored with each run, so reports need neither the codec nor its library."""
        described = {field: getattr(self, field) for field in ("name", "family", "description", "quality_name", "rate_note")}
        # the sweep runs coarse to fine: QP- and distance-like knobs fall as quality rises
        described["finer"] = "lower" if len(self.qualities) > 1 and self.qualities[0] > self.qualities[-1] else "higher"
        return described

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @functools.cached_property
    def version(self) -> str:
        """``"<library> <version>"`` of the library behind the codec."""
        return self.library_version()

    def version_at(self, quality: float) -> str:
        """What made the rows of `quality`: `point_version` where the codec has one, else `version`."""
        return self.point_version(quality) if self.point_version is not None else self.version
