"""BPG-style HEVC intra: x265 through PyAV, 4:4:4, full-range BT.601 YCbCr.

BPG (Bellard's "Better Portable Graphics") is one HEVC intra frame behind a
few-byte header; no ``bpgenc`` wheel exists, so this codec produces the same
kind of stream in-process: RGB is converted to full-range BT.601 YCbCr
(BPG's default colour space) here, in NumPy, so no colour-conversion
library can change the numbers; x265 (preset ``medium``) codes it at a fixed
QP, the quality knob, as ``bpgenc -q`` does (lower = better).

Stream layout: a 4-byte header (width, height as big-endian uint16, because
x265 codes a frame padded to a multiple of 8 pixels) followed by the HEVC
Annex-B stream (VPS, SPS, PPS, one IDR slice). x265's version SEI is turned
off, so no byte the decoder does not need is written.

Rate accounting: ``bytes`` is the whole stream. ``header_bytes`` is the
4-byte size header plus the VPS/SPS/PPS NAL units (~90 bytes). A real
``.bpg`` file stores the parameter sets in a compact form (a few bytes), so
``bpp_payload`` (slice data only) is the closer estimate of what BPG itself
would spend on a small tile, and ``bpp`` is an upper bound.
"""

from __future__ import annotations

import numpy as np

from bench.codecs.base import Codec, Image

_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)
_PARAMETER_SETS = {32, 33, 34}  # VPS, SPS, PPS
_BLOCK = 8  # x265's minimum coding-unit size: frame sizes must be multiples of it
_X265_PARAMS = "info=0:log-level=none:keyint=1:annexb=1:frame-threads=1:pools=none:range=full:colormatrix=smpte170m"


def library_version() -> str:
    import av

    return f"PyAV {av.__version__} (libx265, FFmpeg {av.ffmpeg_version_info})"


def rgb_to_ycbcr(image: Image) -> np.ndarray:
    ycc = image.astype(np.float64) @ _RGB_TO_YCC.T
    ycc[..., 1:] += 128.0
    return np.clip(np.rint(ycc), 0, 255).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray) -> Image:
    centred = ycc.astype(np.float64)
    centred[..., 1:] -= 128.0
    return np.clip(np.rint(centred @ _YCC_TO_RGB.T), 0, 255).astype(np.uint8)


def encode(image: Image, quality: float) -> bytes:
    import av

    height, width = image.shape[:2]
    padded_h, padded_w = (-(-n // _BLOCK) * _BLOCK for n in (height, width))
    padded = np.pad(image, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="edge")
    planes = np.ascontiguousarray(rgb_to_ycbcr(padded).transpose(2, 0, 1))
    context = av.CodecContext.create("libx265", "w")
    context.width, context.height, context.pix_fmt = padded_w, padded_h, "yuv444p"
    context.options = {"preset": "medium", "x265-params": f"qp={int(quality)}:{_X265_PARAMS}"}
    frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
    packets = [*context.encode(frame), *context.encode(None)]
    return width.to_bytes(2, "big") + height.to_bytes(2, "big") + b"".join(bytes(p) for p in packets)


def decode(data: bytes) -> Image:
    import av

    width, height = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
    context = av.CodecContext.create("hevc", "r")
    frames = [*context.decode(av.Packet(data[4:])), *context.decode(None)]
    if len(frames) != 1:
        raise ValueError(f"HEVC stream decoded to {len(frames)} frames, expected 1")
    planes = frames[0].to_ndarray(format="yuv444p")
    return ycbcr_to_rgb(planes.transpose(1, 2, 0))[:height, :width]


def header_size(data: bytes) -> int:
    """The 4-byte size header plus the VPS/SPS/PPS NAL units with their start codes."""
    stream = data[4:]
    starts = _nal_starts(stream)
    header = 4
    for (start, prefix), end in zip(starts, [s for s, _ in starts[1:]] + [len(stream)]):
        nal_type = (stream[start + prefix] >> 1) & 0x3F
        if nal_type in _PARAMETER_SETS:
            header += end - start
    return header


def _nal_starts(stream: bytes) -> list[tuple[int, int]]:
    """(offset, start-code length) of every Annex-B NAL unit."""
    starts, pos = [], stream.find(b"\x00\x00\x01")
    while pos >= 0:
        zero4 = pos > 0 and stream[pos - 1] == 0
        starts.append((pos - 1, 4) if zero4 else (pos, 3))
        pos = stream.find(b"\x00\x00\x01", pos + 3)
    return starts


bpg = Codec(
    name="bpg",
    family="classical",
    description="BPG-style HEVC intra (x265 medium, 4:4:4, full-range BT.601)",
    quality_name="HEVC QP 0–51 (lower = better), as bpgenc -q",
    qualities=(51, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "bytes: 4-byte size header + HEVC Annex-B stream; header_bytes: the size header and "
        "VPS/SPS/PPS (~90 bytes). A real .bpg stores parameter sets compactly, so bpp_payload "
        "is closer to BPG's own cost on small tiles."
    ),
    library_version=library_version,
    install_hint="pip install av",
)
