"""JPEG (ITU-T T.81) through libjpeg-turbo, as bundled by imagecodecs.

Two variants: ``jpeg`` with 4:2:0 chroma subsampling, what users get from
every default encoder, and ``jpeg444`` without subsampling. Both use
optimised Huffman tables (``optimize=True``), which cuts ~300 bytes off a
64×64 tile compared to the standard tables.

Rate accounting: ``bytes`` is the whole JFIF file. ``header_bytes`` is
every byte outside the entropy-coded scan data: SOI/EOI, APP0, the
quantisation and Huffman tables, frame and scan headers. A tile-based
system that fixes its tables once would send only the scan data.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from bench.codecs.base import Codec, Image

_STANDALONE_MARKERS = {0xD8, 0xD9, *range(0xD0, 0xD8), 0x01}  # SOI, EOI, RSTn, TEM


def library_version() -> str:
    import imagecodecs

    return f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpeg8_version()})"


def encode(image: Image, quality: float, subsampling: tuple[int, int] = (2, 2)) -> bytes:
    import imagecodecs

    return bytes(
        imagecodecs.jpeg8_encode(image, level=int(quality), subsampling=subsampling, optimize=True)
    )


def decode(data: bytes) -> Image:
    import imagecodecs

    return np.asarray(imagecodecs.jpeg8_decode(data))


def header_size(data: bytes) -> int:
    """Bytes of `data` outside entropy-coded scan segments."""
    return len(data) - _scan_data_size(data)


def _scan_data_size(data: bytes) -> int:
    size, pos, n = 0, 0, len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:
            raise ValueError(f"not a JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            if marker == 0xD9:
                break
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data follows until the next marker
            start = pos
            pos = _next_marker(data, pos)
            size += pos - start
    return size


def _next_marker(data: bytes, pos: int) -> int:
    """Position of the first marker at or after `pos` inside scan data (len − 1 where none is).

    Inside scan data 0xFF is followed by a stuffed 0x00 or a restart marker RST0–7; any other byte after it
    ends the scan. `bytes.find` jumps between 0xFF bytes: a byte-by-byte loop cost 4 ms on a Kodak JPEG.
    """
    last = len(data) - 1
    while (found := data.find(0xFF, pos, last)) >= 0:
        following = data[found + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return found
        pos = found + 2
    return max(pos, last)


jpeg = Codec(
    name="jpeg",
    family="classical",
    description="JPEG baseline, 4:2:0, optimised Huffman tables (libjpeg-turbo)",
    quality_name="libjpeg quality 1–100 (higher = better)",
    qualities=(1, 5, 10, 20, 30, 50, 70, 80, 90, 95, 100),
    quality_range=(1, 100),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "bytes: the complete JFIF file; header_bytes: everything outside the entropy-coded "
        "scan data (markers, quantisation and Huffman tables, frame/scan headers)."
    ),
    library_version=library_version,
    install_hint="pip install imagecodecs",
)

jpeg444 = dataclasses.replace(
    jpeg,
    name="jpeg444",
    description="JPEG baseline, 4:4:4 (no chroma subsampling), optimised Huffman tables",
    encode=functools.partial(encode, subsampling=(1, 1)),
)
