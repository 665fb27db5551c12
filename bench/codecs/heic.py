"""HEIC: HEVC intra in a HEIF container, as phones store photos, through pillow-heif (libheif + x265).

pillow-heif's own API (``pillow_heif.encode`` / ``pillow_heif.open_heif``), so
no Pillow plugin is registered globally. Encoding: libheif's x265 plugin with
its defaults (preset ``slow``, tune ``ssim`` then psy-rd/psy-rdoq 1.0 and
aq-mode 1, CRF = (100 − quality) / 2), chroma 4:4:4 (``chroma=444``; libheif's
own default is 4:2:0), 8 bits, RGB → YCbCr by libheif with its default nclx
profile (BT.601 matrix, full range), x265 on one thread (``pools=none``,
``frame-threads=1``, as the suite's ``bpg``; the bytes of a 64×64 tile are the
same as with libheif's thread pool). libheif codes frames smaller than 64 px
padded to 64 and crops them back with a ``clap`` property, so every size down
to 1×1 encodes. Decoding: libde265 through libheif.

Rate accounting: ``bytes`` is the whole HEIF file. ``header_bytes`` is the
ISOBMFF container, i.e. every byte except the payload of the ``mdat`` box
(~380 bytes on a 64×64 tile: ``ftyp``, ``meta`` with ``hdlr``, ``iloc``,
``iinf``, ``pitm`` and the item properties, among them the ``hvcC``
configuration that carries VPS/SPS/PPS (~120 bytes), ``colr``, ``ispe``,
``pixi``). The slice NAL unit with its 4-byte length field, inside ``mdat``, is
the payload.
"""

from __future__ import annotations

import io

import numpy as np

from bench.codecs.avif import header_size  # ISOBMFF: every byte outside the top-level mdat payload(s)
from bench.codecs.base import Codec, Image

_ENCODER_OPTIONS = {"chroma": 444, "enc_params": {"x265:pools": "none", "x265:frame-threads": "1"}}


def library_version() -> str:
    import pillow_heif

    info = pillow_heif.libheif_info()
    return (
        f"pillow-heif {pillow_heif.__version__} (libheif {pillow_heif.libheif_version()}, "
        f"{info['encoders'].get('x265', 'no x265 encoder')}, {', '.join(info['decoders'].values())})"
    )


def encode(image: Image, quality: float) -> bytes:
    import pillow_heif

    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    out = io.BytesIO()
    pillow_heif.encode("RGB", (width, height), image.tobytes(), out, quality=int(quality), **_ENCODER_OPTIONS)
    return out.getvalue()


def decode(data: bytes) -> Image:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    decoded = np.asarray(heif[heif.primary_index])
    return np.ascontiguousarray(decoded[..., :3])


heic = Codec(
    name="heic",
    family="classical",
    description="HEIC (HEVC intra in HEIF, 4:4:4, libheif's x265 defaults: preset slow, tune ssim)",
    quality_name="libheif quality 0–100 (higher = better; x265 CRF = (100 − quality)/2)",
    qualities=(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    quality_range=(0, 100),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "bytes: the complete HEIF file; header_bytes: the ISOBMFF container outside the mdat payload "
        "(~380 bytes on a 64×64 tile, hvcC parameter sets included)."
    ),
    library_version=library_version,
    install_hint="pip install pillow-heif",
)
