"""WebP lossy (VP8 intra) through libwebp, as bundled by imagecodecs.

Rate accounting: ``bytes`` is the whole RIFF/WebP file. ``header_bytes`` is
the RIFF container: the 12-byte RIFF/WEBP header and the 8-byte header of
each chunk (plus any VP8X/metadata chunk). The VP8 frame header inside the
``VP8 `` chunk carries per-image sizes and is counted as payload.
"""

from __future__ import annotations

import numpy as np

from bench.codecs.base import Codec, Image


def library_version() -> str:
    import imagecodecs

    return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.webp_version()})"


def encode(image: Image, quality: float) -> bytes:
    import imagecodecs

    # method=6: slowest and best, what `cwebp -m 6` uses for archival quality.
    return bytes(imagecodecs.webp_encode(image, level=float(quality), lossless=False, method=6))


def decode(data: bytes) -> Image:
    import imagecodecs

    image = np.asarray(imagecodecs.webp_decode(data, hasalpha=False))
    return image


def header_size(data: bytes) -> int:
    """RIFF header plus chunk headers and non-bitstream chunks."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a RIFF/WebP file")
    header, pos = 12, 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        padded = size + (size & 1)
        header += 8 if fourcc in (b"VP8 ", b"VP8L") else 8 + padded
        pos += 8 + padded
    return header


webp = Codec(
    name="webp",
    family="classical",
    description="WebP lossy (VP8 intra, 4:2:0), method 6 (libwebp)",
    quality_name="libwebp quality 0–100 (higher = better)",
    qualities=(0, 5, 10, 20, 30, 50, 70, 80, 90, 95, 100),
    quality_range=(0, 100),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note="bytes: the complete RIFF/WebP file; header_bytes: RIFF header and chunk headers (~20 bytes).",
    library_version=library_version,
    install_hint="pip install imagecodecs",
)
