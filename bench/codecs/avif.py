"""AVIF (AV1 intra in a HEIF container) through libavif + libaom, as bundled by imagecodecs.

4:4:4, speed 6 (``avifenc``'s defaults).

Rate accounting: ``bytes`` is the whole AVIF file. ``header_bytes`` is the
ISOBMFF container, i.e. every byte except the payload of the ``mdat`` box
(~300 bytes: ``ftyp``, ``meta`` with item properties, colour information
and the AV1 configuration). The AV1 sequence header OBU inside ``mdat`` is
counted as payload.
"""

from __future__ import annotations

import numpy as np

from bench.codecs.base import Codec, Image


def library_version() -> str:
    import imagecodecs

    return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.avif_version()})"


def encode(image: Image, quality: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.avif_encode(image, level=int(quality), speed=6, pixelformat="yuv444"))


def decode(data: bytes) -> Image:
    import imagecodecs

    return np.asarray(imagecodecs.avif_decode(data))


def header_size(data: bytes) -> int:
    """Bytes outside the payload of the top-level ``mdat`` box(es)."""
    payload, pos = 0, 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        head = 8
        if size == 1:  # 64-bit largesize follows the type
            size, head = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # box extends to the end of the file
            size = len(data) - pos
        if size < head:
            raise ValueError(f"corrupt ISOBMFF box at byte {pos}")
        if kind == b"mdat":
            payload += size - head
        pos += size
    return len(data) - payload


avif = Codec(
    name="avif",
    family="classical",
    description="AVIF (AV1 intra, 4:4:4, libaom speed 6)",
    quality_name="libavif quality 0–100 (higher = better)",
    qualities=(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    quality_range=(0, 100),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note="bytes: the complete AVIF file; header_bytes: the ISOBMFF container outside the mdat payload (~300 bytes).",
    library_version=library_version,
    install_hint="pip install imagecodecs",
)
