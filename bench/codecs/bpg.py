"""BPG: HEVC intra, 4:4:4, full-range BT.601 YCbCr.

BPG (Bellard's "Better Portable Graphics") is one HEVC intra frame behind a
few-byte header. When ``bpgenc`` and ``bpgdec`` are on PATH, they are used
(``bpgenc -f 444 -q QP``, one subprocess per image: the only way to run the
reference tools) and the rate is the real ``.bpg`` file; ``header_bytes`` is
then everything before the HEVC slice data (BPG header and its compact
parameter sets). Otherwise, since no ``bpgenc`` wheel exists, this codec
produces the same kind of stream in-process: RGB is converted to full-range BT.601 YCbCr
(BPG's default colour space) here, in NumPy, so no colour-conversion
library can change the numbers; x265 (preset ``medium``) codes it at a fixed
QP, the quality knob, as ``bpgenc -q`` does (lower = better).

Stream layout: a 4-byte header (width, height as big-endian uint16, because
x265 codes a frame edge-padded to a multiple of 8 pixels and at least 32) followed by the HEVC
Annex-B stream (VPS, SPS, PPS, one IDR slice). x265's version SEI is turned
off, so no byte the decoder does not need is written.

Rate accounting: ``bytes`` is the whole stream. ``header_bytes`` is the
4-byte size header plus the VPS/SPS/PPS NAL units (~90 bytes). A real
``.bpg`` file stores the parameter sets in a compact form (a few bytes), so
``bpp_payload`` (slice data only) is the closer estimate of what BPG itself
would spend on a small tile, and ``bpp`` is an upper bound.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.codecs.base import Codec, Image

_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)
_PARAMETER_SETS = {32, 33, 34}  # VPS, SPS, PPS
_BLOCK = 8  # x265's minimum coding-unit size: frame sizes must be multiples of it
_MIN_SIDE = 32  # x265 (4.x) refuses to open for frames smaller than this (measured)
_X265_PARAMS = "info=0:log-level=none:keyint=1:annexb=1:frame-threads=1:pools=none:range=full:colormatrix=smpte170m"


BPG_MAGIC = b"BPG\xfb"


@functools.cache
def bpg_tools() -> tuple[str, str] | None:
    """Paths of ``bpgenc`` and ``bpgdec`` when both are on PATH."""
    encoder, decoder = shutil.which("bpgenc"), shutil.which("bpgdec")
    return (encoder, decoder) if encoder and decoder else None


def library_version() -> str:
    if tools := bpg_tools():
        banner = subprocess.run([tools[0], "-h"], capture_output=True, text=True).stdout.splitlines()
        return f"{tools[0]} ({banner[0] if banner else 'version unknown'})"
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
    if tools := bpg_tools():
        return _encode_bpgenc(tools[0], image, quality)
    return _encode_x265(image, quality)


def decode(data: bytes) -> Image:
    if data[:4] == BPG_MAGIC:
        tools = bpg_tools()
        if tools is None:
            raise RuntimeError("a .bpg stream needs bpgdec on PATH")
        return _decode_bpgdec(tools[1], data)
    return _decode_x265(data)


def header_size(data: bytes) -> int:
    if data[:4] == BPG_MAGIC:
        return _bpg_header_size(data)
    return _x265_header_size(data)


def _encode_bpgenc(bpgenc: str, image: Image, quality: float) -> bytes:
    from PIL import Image as PILImage

    with tempfile.TemporaryDirectory(prefix="bench-bpg-") as work:
        source, target = Path(work, "in.png"), Path(work, "out.bpg")
        PILImage.fromarray(image).save(source)
        _run([bpgenc, "-f", "444", "-q", str(int(quality)), "-o", str(target), str(source)])
        return target.read_bytes()


def _decode_bpgdec(bpgdec: str, data: bytes) -> Image:
    from PIL import Image as PILImage

    with tempfile.TemporaryDirectory(prefix="bench-bpg-") as work:
        source, target = Path(work, "in.bpg"), Path(work, "out.png")
        source.write_bytes(data)
        _run([bpgdec, "-o", str(target), str(source)])
        with PILImage.open(target) as decoded:
            return np.asarray(decoded.convert("RGB"))


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} exited with {done.returncode}: {done.stderr.strip()[:200]}")


def _read_ue7(data: bytes, pos: int) -> tuple[int, int]:
    """BPG's ue7(32): big-endian base-128 with a continuation bit; (value, next position)."""
    value = 0
    for _ in range(5):
        byte = data[pos]
        value, pos = (value << 7) | (byte & 0x7F), pos + 1
        if not byte & 0x80:
            return value, pos
    raise ValueError("corrupt BPG header: ue7 longer than 5 bytes")


def _bpg_header_size(data: bytes) -> int:
    """Bytes before the HEVC slice data: BPG header, extensions, compact parameter sets."""
    flags = data[5]
    pos = 6
    for _ in range(3):  # picture_width, picture_height, picture_data_length
        _, pos = _read_ue7(data, pos)
    if flags & 0x08:  # extension_present_flag
        length, pos = _read_ue7(data, pos)
        pos += length
    hevc_header_length, pos = _read_ue7(data, pos)
    return pos + hevc_header_length


def _encode_x265(image: Image, quality: float) -> bytes:
    import av

    height, width = image.shape[:2]
    padded_h, padded_w = (max(_MIN_SIDE, -(-n // _BLOCK) * _BLOCK) for n in (height, width))
    padded = np.pad(image, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="edge")
    planes = np.ascontiguousarray(rgb_to_ycbcr(padded).transpose(2, 0, 1))
    context = av.CodecContext.create("libx265", "w")
    context.width, context.height, context.pix_fmt = padded_w, padded_h, "yuv444p"
    context.options = {"preset": "medium", "x265-params": f"qp={int(quality)}:{_X265_PARAMS}"}
    frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
    packets = [*context.encode(frame), *context.encode(None)]
    return width.to_bytes(2, "big") + height.to_bytes(2, "big") + b"".join(bytes(p) for p in packets)


def _decode_x265(data: bytes) -> Image:
    import av

    width, height = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
    context = av.CodecContext.create("hevc", "r")
    frames = [*context.decode(av.Packet(data[4:])), *context.decode(None)]
    if len(frames) != 1:
        raise ValueError(f"HEVC stream decoded to {len(frames)} frames, expected 1")
    planes = frames[0].to_ndarray(format="yuv444p")
    return ycbcr_to_rgb(planes.transpose(1, 2, 0))[:height, :width]


def _x265_header_size(data: bytes) -> int:
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
    description="BPG: HEVC intra, 4:4:4, full-range BT.601 (bpgenc when on PATH, else x265 medium via PyAV)",
    quality_name="HEVC QP 0–51 (lower = better), as bpgenc -q",
    qualities=(51, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "with bpgenc: the .bpg file, header_bytes = BPG header + compact parameter sets; in-process: "
        "4-byte size header + HEVC Annex-B stream, header_bytes = size header + VPS/SPS/PPS (~90 bytes), "
        "so bpp_payload is the closer estimate of BPG's own cost on small tiles."
    ),
    library_version=library_version,
    install_hint="pip install av",
)
