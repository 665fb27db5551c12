"""JPEG XL (ISO/IEC 18181) through libjxl, as bundled by imagecodecs.

Lossy VarDCT mode, effort 7 (``cjxl``'s default); the quality knob is the
Butteraugli distance, lower is better (1.0 ≈ visually lossless).

Rate accounting: the encoder writes a bare codestream (no ISOBMFF
container), so ``bytes`` is the codestream and ``header_bytes`` is 0: its
size and metadata header is a few bit-packed bytes that cannot be split
from the frame data without a bit-level parser, so it is counted as payload.
"""

from __future__ import annotations

import numpy as np

from bench.codecs.base import Codec, Image


def library_version() -> str:
    import imagecodecs

    return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpegxl_version()})"


def encode(image: Image, quality: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(image, distance=float(quality), effort=7, usecontainer=False))


def decode(data: bytes) -> Image:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))


def header_size(data: bytes) -> int:
    return 0


jpegxl = Codec(
    name="jpegxl",
    family="classical",
    description="JPEG XL lossy (VarDCT, effort 7, libjxl)",
    quality_name="Butteraugli distance (lower = better)",
    qualities=(25, 15, 10, 6, 4, 3, 2, 1.5, 1, 0.5, 0.2),
    quality_range=(0.01, 25.0),
    integer_quality=False,
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note="bytes: the bare JPEG XL codestream; header_bytes: 0 (its bit-packed header is a few bytes, counted as payload).",
    library_version=library_version,
    install_hint="pip install imagecodecs",
)
