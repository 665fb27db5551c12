"""BPG: HEVC intra, 4:4:4, full-range BT.601 YCbCr, as libbpg's ``bpgenc -f 444 -q QP`` writes it.

BPG (Bellard's "Better Portable Graphics") is one HEVC intra frame behind a
few-byte header. When ``bpgenc`` and ``bpgdec`` are on PATH, they are used
(``bpgenc -f 444 -q QP``, one subprocess per image: the only way to run the
reference tools). Otherwise, since no ``bpgenc`` package exists, this module
does in-process what libbpg 0.9.8's ``bpgenc`` does with its default
settings (only the chroma format is set, to 4:4:4), and writes a real
``.bpg`` file:

- RGB → full-range BT.601 YCbCr with bpgenc's own fixed-point arithmetic
  (``bpgenc.c``: ``convert_init``/``rgb24_to_ycc``), 8 bits
  (``DEFAULT_BIT_DEPTH 8``), edge-padded to a multiple of 8 pixels
  (``cb_size = 8; image_pad``);
- x265 (bundled with PyAV) with preset ``veryslow`` and tune ``ssim``
  (``x265_glue.c``: ``x265_param_default_preset(p, x265_preset_names[compress_level], "ssim")``
  with ``DEFAULT_COMPRESS_LEVEL 8``), fixed QP = the quality knob
  (``p->rc.qp = params->qp``, no offset in 0.9.8), intra only, AMP and
  rectangular partitions on, no info SEI;
- the Annex-B output turned into the BPG file as ``build_modified_sps`` and
  ``build_modified_hevc`` do: the VPS is dropped, the SPS is replaced by the
  compact HEVC header (``hevc_header_length`` + the few SPS fields a decoder
  cannot assume), the remaining NAL units (PPS, slice) are copied verbatim
  without the first start code; the header is magic ``BPG\\xfb``, the
  pixel_format/alpha1/bit_depth byte, the color_space/extension/alpha2/
  limited_range/animation byte, ue7 picture_width, ue7 picture_height and
  ue7 picture_data_length = 0 ("up to the end of the file", what bpgenc 0.9.8
  writes).

``decode`` parses the header back and rebuilds a standard VPS/SPS from it (as
libbpg's decoder does, ``libbpg.c``/``hevc_ps.c`` with ``USE_MSPS``) so that
FFmpeg's HEVC decoder (PyAV) decodes the stream, then converts YCbCr → RGB
with libbpg's fixed-point ``ycc_to_rgb24`` and crops the padding.

One deviation from bpgenc, only for images with a side below 16 pixels: the
x265 in PyAV refuses frames that small, so the frame is edge-padded further to
16 and the coded size is stored in a private extension (tag 126, 6 bytes,
counted as header); such files decode here but not with libbpg's ``bpgdec``.
Every image of 16×16 pixels or more gives a standard ``.bpg`` file.

Rate accounting: ``bytes`` is the whole ``.bpg`` file. ``header_bytes`` is
every byte before the first slice NAL unit: the BPG header (magic, 2 flag
bytes, ue7 width, height, picture_data_length, plus any extension), the
ue7 ``hevc_header_length`` and the compact HEVC header (3 bytes from this
x265), the PPS NAL unit that bpgenc keeps in the HEVC data (6 bytes) and the
3-byte start code in front of the slice: 22 bytes on a 64×64 tile, of which
13 are the BPG header proper (magic to compact HEVC header). ``bpp_payload``
is the slice NAL unit alone (its 2-byte NAL header, slice header and data).
Nothing is estimated: every byte counted is a byte of the file.

Corruption: BPG has no checksum and bpgenc 0.9.8 writes picture_data_length
0, so a file cut or damaged inside the slice data decodes (FFmpeg conceals
the error, as libbpg's decoder would); everything up to the slice NAL header
is checked and raises ValueError.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.codecs.base import Codec, Image

BPG_MAGIC = b"BPG\xfb"

# --- libbpg 0.9.8 defaults (bpgenc.c, x265_glue.c) ---------------------------------------------------
FORMAT_444 = 3  # libbpg.h BPG_FORMAT_444; bpgenc's default is 4:2:0, this codec is `bpgenc -f 444`
CS_YCBCR = 0  # libbpg.h BPG_CS_YCbCr: bpgenc.c `color_space = BPG_CS_YCbCr` (full-range BT.601, as JPEG)
LIMITED_RANGE = 0  # bpgenc.c `limited_range = 0`: full range unless -limitedrange
BIT_DEPTH = 8
"""bpgenc.c ``#define DEFAULT_BIT_DEPTH 8`` (libbpg 0.9.8; 0.9.1 used 10 with ``qp + 7``). The x265 in PyAV has
8-, 10- and 12-bit builds; 8 bits is what bpgenc does by default, so no QP offset applies."""
PRESET = "veryslow"
"""x265_glue.c ``preset = x265_preset_names[params->compress_level]`` with bpgenc.c ``DEFAULT_COMPRESS_LEVEL 8``:
x265_preset_names[8] is "veryslow" (0.9.1 reached the same preset with level 7 and index level + 1)."""
TUNE = "ssim"  # x265_glue.c: x265_param_default_preset(p, preset, "ssim")  (psy-rd and psy-rdoq off)
QP_OFFSET = 0  # x265_glue.c (0.9.8): p->rc.qp = params->qp, rate control X265_RC_CQP
CB_SIZE = 8  # bpgenc.c: `cb_size = 8; ... image_pad(img, cb_size)` (edge replication to a multiple of 8)
_X265_MIN_SIDE = 16  # PyAV's x265 (4.x) refuses smaller frames ("Image size is too small"), measured
# x265_glue.c: keyframeMax = 1 (only I frames), bEnableAMP = 1 ("cannot use 0 due to header restriction"),
# bEnableRectInter = 1, bEmitInfoSEI = 0, logLevel NONE; bRepeatHeaders = 1 is what FFmpeg's wrapper sets.
# frame-threads/pools: one thread, as every codec of the suite (x265 then turns wavefront parallel processing
# off, which changes nothing on images of one CTU row, i.e. up to 64 px high). allow-non-conformance: x265
# shrinks the CTU for frames under 64 px and refuses the result at the level it detected; level and profile
# live in the VPS/SPS that BPG drops, so this changes no byte of a .bpg file.
_X265_PARAMS = (
    "keyint=1:amp=1:rect=1:info=0:annexb=1:repeat-headers=1:log-level=none:"
    "frame-threads=1:pools=none:allow-non-conformance=1"
)
_CODED_SIZE_TAG = 126  # private extension (see module docstring): coded width, height as ue7
_VPS, _SPS = 32, 33  # NAL unit types


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

    return (
        f"PyAV {av.__version__} (libx265, FFmpeg {av.ffmpeg_version_info}); "
        f"in-process bpgenc 0.9.8 defaults: {PRESET}/{TUNE}, {BIT_DEPTH}-bit, .bpg container"
    )


# --- colour conversion: bpgenc.c convert_init/rgb24_to_ycc and libbpg.c convert_init/ycc_to_rgb24 -----
_K_R, _K_B = 0.299, 0.114  # BT.601, bpgenc.c/libbpg.c `case BPG_CS_YCbCr`
_ENC_SHIFT = 31 - BIT_DEPTH  # bpgenc.c: c_shift = 31 - out_bit_depth; mult = 2^c_shift for 8 → 8 bits
_ENC = np.array(
    [
        [_K_R, 1 - _K_R - _K_B, _K_B],
        [-0.5 * _K_R / (1 - _K_B), -0.5 * (1 - _K_R - _K_B) / (1 - _K_B), 0.5],
        [0.5, -0.5 * (1 - _K_R - _K_B) / (1 - _K_R), -0.5 * _K_B / (1 - _K_R)],
    ]
)
_ENC_INT = np.rint(_ENC * (1 << _ENC_SHIFT)).astype(np.int64)  # lrint(rgb_to_ycc[i] * mult)
_DEC_SHIFT = 30 - 8  # libbpg.c: c_shift = 30 - out_bit_depth (RGB24 output)
_DEC_MULT = 1 << _DEC_SHIFT  # mult = 255 * 2^c_shift / 255
_C_R_CR = round(2 * (1 - _K_R) * _DEC_MULT)
_C_G_CB = round(2 * _K_B * (1 - _K_B) / (1 - _K_B - _K_R) * _DEC_MULT)
_C_G_CR = round(2 * _K_R * (1 - _K_R) / (1 - _K_B - _K_R) * _DEC_MULT)
_C_B_CB = round(2 * (1 - _K_B) * _DEC_MULT)


def rgb_to_ycbcr(image: Image) -> np.ndarray:
    """bpgenc's ``rgb24_to_ycc`` (8-bit in, 8-bit out, full range): H×W×3 uint8 Y, Cb, Cr."""
    sums = image.astype(np.int64) @ _ENC_INT.T + (1 << (_ENC_SHIFT - 1))
    ycc = sums >> _ENC_SHIFT  # arithmetic shift, as C's >> on int
    ycc[..., 1:] += 1 << (BIT_DEPTH - 1)
    return np.clip(ycc, 0, 255).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray) -> Image:
    """libbpg's ``ycc_to_rgb24`` (full range): H×W×3 uint8 R, G, B."""
    y = ycc[..., 0].astype(np.int64) * _DEC_MULT + (1 << (_DEC_SHIFT - 1))
    cb = ycc[..., 1].astype(np.int64) - 128
    cr = ycc[..., 2].astype(np.int64) - 128
    rgb = np.stack([y + _C_R_CR * cr, y - _C_G_CB * cb - _C_G_CR * cr, y + _C_B_CB * cb], axis=-1) >> _DEC_SHIFT
    return np.clip(rgb, 0, 255).astype(np.uint8)


# --- ue7 and the BPG header (doc/bpg_spec.txt, bpgenc.c put_ue, libbpg.c get_ue32) -----------------------
def write_ue7(value: int) -> bytes:
    """BPG's ue7(32): big-endian groups of 7 bits, a set top bit on every byte but the last."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"ue7(32) cannot hold {value}")
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def read_ue7(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the ue7(32) at `pos`; ValueError if truncated or non-canonical."""
    if pos >= len(data):
        raise ValueError("truncated BPG header")
    if data[pos] == 0x80:
        raise ValueError("corrupt BPG header: non-canonical ue7 (first byte 0x80)")
    value = 0
    for _ in range(5):
        if pos >= len(data):
            raise ValueError("truncated BPG header")
        byte = data[pos]
        value, pos = (value << 7) | (byte & 0x7F), pos + 1
        if not byte & 0x80:
            if value >= 1 << 32:
                break
            return value, pos
    raise ValueError("corrupt BPG header: ue7 longer than 32 bits")


@dataclass(frozen=True)
class BpgHeader:
    """The fields of a BPG file up to and including the compact HEVC header (doc/bpg_spec.txt, 3.1)."""

    pixel_format: int
    alpha1: bool
    bit_depth: int
    color_space: int
    extension_present: bool
    alpha2: bool
    limited_range: bool
    animation: bool
    width: int
    height: int
    picture_data_length: int
    extensions: tuple[tuple[int, bytes], ...]
    hevc_header: bytes  # the compact SPS fields, without hevc_header_length
    hevc_data_start: int  # offset of hevc_data(): the first NAL unit, without start code
    hevc_data_end: int

    @property
    def size(self) -> int:
        """Bytes of the BPG header proper: everything before hevc_data() (compact HEVC header included)."""
        return self.hevc_data_start


def build_bpg(width: int, height: int, hevc_header: bytes, hevc_data: bytes, *,
              extensions: tuple[tuple[int, bytes], ...] = (), pixel_format: int = FORMAT_444,
              bit_depth: int = BIT_DEPTH, color_space: int = CS_YCBCR, limited_range: int = LIMITED_RANGE,
              picture_data_length: int = 0) -> bytes:  # fmt: skip
    """A BPG file without alpha or animation, as bpgenc.c ``bpg_encoder_encode`` writes its header."""
    extension = b"".join(write_ue7(tag) + write_ue7(len(body)) + body for tag, body in extensions)
    out = bytearray(BPG_MAGIC)
    out.append((pixel_format << 5) | (0 << 4) | (bit_depth - 8))  # alpha1_flag = 0
    # color_space, extension_present_flag, alpha2_flag = 0, limited_range_flag, animation_flag = 0
    out.append((color_space << 4) | (bool(extension) << 3) | (limited_range << 1))
    out += write_ue7(width) + write_ue7(height) + write_ue7(picture_data_length)
    if extension:
        out += write_ue7(len(extension)) + extension
    out += write_ue7(len(hevc_header)) + hevc_header + hevc_data
    return bytes(out)


def parse_bpg(data: bytes) -> BpgHeader:
    """Every header field of a BPG file; ValueError for anything that is not a complete, supported BPG file."""
    if data[:4] != BPG_MAGIC[: len(data[:4])] or not data:
        raise ValueError("not a BPG file (magic BPG\\xfb missing)")
    if len(data) < 6:
        raise ValueError("truncated BPG header")
    fmt, flags = data[4], data[5]
    width, pos = read_ue7(data, 6)
    height, pos = read_ue7(data, pos)
    if width == 0 or height == 0:
        raise ValueError("corrupt BPG header: picture width or height is 0")
    picture_data_length, pos = read_ue7(data, pos)
    extensions = []
    if flags & 0x08:
        length, pos = read_ue7(data, pos)
        end = pos + length
        if end > len(data):
            raise ValueError("truncated BPG file: extension data")
        while pos < end:
            tag, pos = read_ue7(data, pos)
            size, pos = read_ue7(data, pos)
            if pos + size > end:
                raise ValueError("corrupt BPG header: extension tag longer than the extension data")
            extensions.append((tag, bytes(data[pos : pos + size])))
            pos += size
    picture_start = pos
    header_length, pos = read_ue7(data, pos)
    if pos + header_length > len(data):
        raise ValueError("truncated BPG file: HEVC header")
    hevc_header = bytes(data[pos : pos + header_length])
    pos += header_length
    end = len(data) if picture_data_length == 0 else picture_start + picture_data_length
    if end > len(data):
        raise ValueError(f"truncated BPG file: {len(data)} bytes, picture data needs {end}")
    if pos >= end:
        raise ValueError("truncated BPG file: no HEVC data")
    return BpgHeader(
        pixel_format=fmt >> 5, alpha1=bool(fmt & 0x10), bit_depth=(fmt & 0x0F) + 8,
        color_space=flags >> 4, extension_present=bool(flags & 0x08), alpha2=bool(flags & 0x04),
        limited_range=bool(flags & 0x02), animation=bool(flags & 0x01), width=width, height=height,
        picture_data_length=picture_data_length, extensions=tuple(extensions), hevc_header=hevc_header,
        hevc_data_start=pos, hevc_data_end=end,
    )  # fmt: skip


# --- HEVC bitstream helpers ------------------------------------------------------------------------------
class _Bits:
    """MSB-first bit reader over an RBSP (emulation prevention removed); reads past the end raise ValueError."""

    def __init__(self, data: bytes):
        self.value, self.size, self.pos = int.from_bytes(data, "big"), 8 * len(data), 0

    def u(self, n: int) -> int:
        if self.pos + n > self.size:
            raise ValueError("corrupt HEVC parameter set: read past its end")
        self.pos += n
        return (self.value >> (self.size - self.pos)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("corrupt HEVC parameter set: Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros) if zeros else 0


class _BitWriter:
    def __init__(self):
        self.bits: list[str] = []

    def u(self, n: int, value: int) -> None:
        if n:
            self.bits.append(format(value, f"0{n}b"))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def bytes(self, *, rbsp_trailing: bool) -> bytes:
        """The bits, then rbsp_trailing_bits (a 1 and zeros) or, without, zero bits to a byte boundary."""
        bits = "".join(self.bits) + ("1" if rbsp_trailing else "")
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _unescape(nal: bytes) -> bytes:
    """NAL payload → RBSP: drop every emulation-prevention 0x03 of a 00 00 03 sequence."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


def _escape(rbsp: bytes) -> bytes:
    """RBSP → NAL payload: insert 0x03 after every 00 00 followed by a byte ≤ 3 (H.265 7.4.2)."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _nal_units(stream: bytes, *, first_has_start_code: bool = True) -> list[tuple[int, int, int]]:
    """(start of the start code, start of the NAL header, end) of every NAL unit of an Annex-B stream.

    As libbpg's ``find_nal_end``: a NAL unit ends where ``00 00 01`` or ``00 00 00 01`` begins. With
    `first_has_start_code` False the first unit starts at offset 0 without one (BPG's hevc_data()).
    """
    units, pos = [], 0
    while pos < len(stream):
        if first_has_start_code or units:
            if stream.startswith(b"\x00\x00\x00\x01", pos):
                head = pos + 4
            elif stream.startswith(b"\x00\x00\x01", pos):
                head = pos + 3
            else:
                raise ValueError(f"corrupt HEVC data: no start code at byte {pos}")
        else:
            head = pos
        if head + 2 > len(stream):
            raise ValueError("truncated HEVC data: NAL unit shorter than its 2-byte header")
        if stream[head] & 0x80 or not stream[head + 1] & 0x07:
            raise ValueError(f"corrupt HEVC data: invalid NAL unit header at byte {head}")
        end = stream.find(b"\x00\x00\x01", head + 2)
        end = len(stream) if end < 0 else end - (stream[end - 1] == 0 and end - 1 >= head + 2)
        units.append((pos, head, end))
        pos = end
    return units


def _nal_type(stream: bytes, head: int) -> int:
    return (stream[head] >> 1) & 0x3F


# --- Annex-B → BPG (bpgenc.c build_modified_sps / build_modified_hevc) -----------------------------------
@dataclass(frozen=True)
class CompactSps:
    """The SPS fields BPG keeps (doc/bpg_spec.txt hevc_header()), plus the coded size read from the SPS."""

    log2_min_cb_size: int
    log2_diff_max_min_cb_size: int
    log2_min_tb_size: int
    log2_diff_max_min_tb_size: int
    max_transform_hierarchy_depth_intra: int
    sao: int
    pcm: tuple[int, int, int, int, int] | None  # bit depths − 1, log2 min − 3, log2 diff, loop filter disabled
    strong_intra_smoothing: int
    extension_flag: int
    range_extension_flags: int | None  # the 9 sps_range_extension flags when present
    chroma_format_idc: int = 3
    bit_depth: int = 8
    coded_width: int = 0
    coded_height: int = 0

    def encode(self) -> bytes:
        """The compact HEVC header bytes (without hevc_header_length), as bpgenc writes them."""
        w = _BitWriter()
        w.ue(self.log2_min_cb_size - 3)
        w.ue(self.log2_diff_max_min_cb_size)
        w.ue(self.log2_min_tb_size - 2)
        w.ue(self.log2_diff_max_min_tb_size)
        w.ue(self.max_transform_hierarchy_depth_intra)
        w.u(1, self.sao)
        w.u(1, self.pcm is not None)
        if self.pcm is not None:
            w.u(4, self.pcm[0]), w.u(4, self.pcm[1]), w.ue(self.pcm[2]), w.ue(self.pcm[3]), w.u(1, self.pcm[4])
        w.u(1, self.strong_intra_smoothing)
        w.u(1, self.extension_flag)
        if self.extension_flag:
            w.u(1, self.range_extension_flags is not None)
            w.u(7, 0)
            if self.range_extension_flags is not None:
                w.u(9, self.range_extension_flags)
        return w.bytes(rbsp_trailing=False)  # trailing_bits: zeros to the byte boundary

    @classmethod
    def decode(cls, header: bytes, **fields) -> CompactSps:
        r = _Bits(header)
        values = dict(
            log2_min_cb_size=r.ue() + 3, log2_diff_max_min_cb_size=r.ue(), log2_min_tb_size=r.ue() + 2,
            log2_diff_max_min_tb_size=r.ue(), max_transform_hierarchy_depth_intra=r.ue(), sao=r.u(1),
        )  # fmt: skip
        values["pcm"] = (r.u(4), r.u(4), r.ue(), r.ue(), r.u(1)) if r.u(1) else None
        values["strong_intra_smoothing"] = r.u(1)
        values["extension_flag"] = r.u(1)
        values["range_extension_flags"] = None
        if values["extension_flag"]:
            range_flag, seven = r.u(1), r.u(7)
            if seven:
                raise ValueError("corrupt BPG HEVC header: sps_extension_7bits must be 0")
            if range_flag:
                values["range_extension_flags"] = r.u(9)
        if r.size - r.pos >= 8 or (r.size > r.pos and r.u(r.size - r.pos)):
            raise ValueError("corrupt BPG HEVC header: hevc_header_length does not match its fields")
        if values["log2_min_tb_size"] >= values["log2_min_cb_size"]:
            raise ValueError("corrupt BPG HEVC header: log2_min_tb_size must be below log2_min_cb_size")
        return cls(**values, **fields)


def _parse_sps(nal: bytes) -> CompactSps:
    """Read x265's SPS and check bpgenc's restrictions (bpgenc.c build_modified_sps, same messages)."""
    r = _Bits(_unescape(nal))
    r.u(16)  # NAL header
    if r.u(4) != 0:
        raise ValueError("VPS id 0 expected")
    if r.u(3) != 0:
        raise ValueError("max_sub_layers == 0 expected")
    r.u(1)  # temporal_id_nesting_flag
    r.u(96)  # profile_tier_level(1, 0): general profile, 32 compatibility flags, 48 constraint bits, level
    if r.ue() != 0:
        raise ValueError("SPS id 0 expected")
    chroma_format_idc = r.ue()
    if chroma_format_idc == 3:
        r.u(1)  # separate_colour_plane_flag
    width, height = r.ue(), r.ue()
    if r.u(1):  # conformance_window_flag: bpgenc skips it (the BPG header has the real size)
        r.ue(), r.ue(), r.ue(), r.ue()
    bit_depth, bit_depth_chroma = r.ue() + 8, r.ue() + 8
    if (log2_max_poc_lsb := r.ue() + 4) != 8:
        raise ValueError(f"log2_max_poc_lsb must be 8 ({log2_max_poc_lsb})")
    r.u(1)  # sps_sub_layer_ordering_info_present_flag (one sub-layer)
    r.ue(), r.ue(), r.ue()  # max_dec_pic_buffering, num_reorder_pics, max_latency_increase
    log2_min_cb, log2_diff_cb, log2_min_tb, log2_diff_tb = r.ue() + 3, r.ue(), r.ue() + 2, r.ue()
    depth_inter, depth_intra = r.ue(), r.ue()
    if depth_inter != depth_intra:
        raise ValueError(
            "max_transform_hierarchy_depth_inter must be the same as max_transform_hierarchy_depth_intra "
            f"({depth_inter} {depth_intra})"
        )
    if r.u(1):
        raise ValueError("scaling_list_enable_flag must be 0")
    if not r.u(1):
        raise ValueError("amp_enabled_flag must be set")
    sao = r.u(1)
    pcm = (r.u(4), r.u(4), r.ue(), r.ue(), r.u(1)) if r.u(1) else None
    if (nb_st_rps := r.ue()) != 0:
        raise ValueError(f"nb_st_rps must be 0 ({nb_st_rps})")
    if r.u(1):
        raise ValueError("long_term_ref_pics_present_flag must be 0")
    if not r.u(1):
        raise ValueError("sps_temporal_mvp_enabled_flag must be set")
    strong_intra_smoothing = r.u(1)
    if r.u(1):  # vui_parameters_present_flag: skipped as bpgenc does, refusing what it refuses
        if r.u(1) and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc
            r.u(32)
        if r.u(1):  # overscan_info_present_flag
            r.u(1)
        if r.u(1):  # video_signal_type_present_flag: bpgenc refuses it, but FFmpeg's libx265 wrapper always
            # sets it (x265_glue.c calls x265 directly); it is VUI metadata, dropped with the SPS, and
            # changes nothing in the coded picture
            r.u(4)  # video_format, video_full_range_flag
            if r.u(1):  # colour_description_present_flag
                r.u(24)
        if r.u(1):  # chroma_loc_info_present_flag
            r.ue(), r.ue()
        r.u(3)  # neutral_chroma_indication, field_seq, frame_field_info_present
        if r.u(1):
            raise ValueError("default_display_window_flag must be 0")
        if r.u(1):  # vui_timing_info_present_flag
            r.u(64)
            if r.u(1):
                r.ue()
            if r.u(1):
                raise ValueError("vui_hrd_parameters_present_flag must be 0")
        if r.u(1):  # bitstream_restriction_flag
            r.u(3), r.ue(), r.ue(), r.ue(), r.ue(), r.ue()
    extension_flag, range_flags = r.u(1), None
    if extension_flag:
        range_flag = r.u(1)
        if r.u(7):
            raise ValueError("sps_extension_7bits must be 0")
        if range_flag:
            range_flags = r.u(9)
            if range_flags & ((1 << 5) | (1 << 4) | (1 << 2) | 1):
                raise ValueError(f"unsupported range extensions (0x{range_flags:x})")
    if bit_depth_chroma != bit_depth:
        raise ValueError("luma and chroma bit depths differ")
    return CompactSps(
        log2_min_cb, log2_diff_cb, log2_min_tb, log2_diff_tb, depth_intra, sao, pcm, strong_intra_smoothing,
        extension_flag, range_flags, chroma_format_idc, bit_depth, width, height,
    )  # fmt: skip


def annexb_to_bpg_data(stream: bytes) -> tuple[CompactSps, bytes]:
    """x265's Annex-B stream → (compact SPS, hevc_data()) exactly as bpgenc's build_modified_hevc builds them.

    VPS and SPS are dropped (the SPS becomes the compact header); every later NAL unit is copied verbatim,
    its start code included, except the first one's start code.
    """
    units = _nal_units(stream)
    if len(units) < 3:
        raise ValueError(f"x265 wrote {len(units)} NAL units; expected VPS, SPS, PPS and a slice")
    if _nal_type(stream, units[0][1]) != _VPS:
        raise ValueError(f"expecting VPS nal ({_nal_type(stream, units[0][1])})")
    if _nal_type(stream, units[1][1]) != _SPS:
        raise ValueError(f"expecting SPS nal ({_nal_type(stream, units[1][1])})")
    sps = _parse_sps(stream[units[1][1] : units[1][2]])
    return sps, stream[units[2][1] :]


# --- BPG → Annex-B (what libbpg's decoder does with its modified libavcodec, written as standard VPS/SPS) ---
def _profile_tier_level(chroma_format_idc: int, bit_depth: int) -> _BitWriter:
    w = _BitWriter()
    profile = 1 if (chroma_format_idc, bit_depth) == (1, 8) else 2 if (chroma_format_idc, bit_depth) == (1, 10) else 4
    w.u(2, 0), w.u(1, 0), w.u(5, profile)  # profile_space, tier_flag, profile_idc (Main, Main 10, RExt)
    w.u(32, 1 << (31 - profile))  # general_profile_compatibility_flag[profile]
    w.u(4, 0b1001)  # progressive_source, interlaced_source, non_packed_constraint, frame_only_constraint
    w.u(44, 0)  # constraint / reserved bits
    w.u(8, 255)  # general_level_idc: level 8.5 (doc/bpg_spec.txt 3.3: "Level 8.5")
    return w


def _vps(chroma_format_idc: int, bit_depth: int) -> bytes:
    w = _BitWriter()
    w.u(4, 0), w.u(1, 1), w.u(1, 1), w.u(6, 0), w.u(3, 0), w.u(1, 1), w.u(16, 0xFFFF)
    w.bits += _profile_tier_level(chroma_format_idc, bit_depth).bits
    w.u(1, 1), w.ue(0), w.ue(0), w.ue(0)  # sub-layer ordering info: one picture, no reordering
    w.u(6, 0), w.ue(0), w.u(1, 0), w.u(1, 0)  # max_layer_id, num_layer_sets − 1, no timing info, no extension
    return b"\x40\x01" + _escape(w.bytes(rbsp_trailing=True))


def _sps(sps: CompactSps, width: int, height: int) -> bytes:
    """A standard SPS with libbpg's assumptions (doc/bpg_spec.txt 3.2; hevc_ps.c under USE_MSPS)."""
    w = _BitWriter()
    w.u(4, 0), w.u(3, 0), w.u(1, 1)  # sps_video_parameter_set_id, max_sub_layers − 1, temporal_id_nesting
    w.bits += _profile_tier_level(sps.chroma_format_idc, sps.bit_depth).bits
    w.ue(0), w.ue(sps.chroma_format_idc)
    if sps.chroma_format_idc == 3:
        w.u(1, 0)  # separate_colour_plane_flag
    w.ue(width), w.ue(height), w.u(1, 0)  # no conformance window: the decoder crops to the BPG header's size
    w.ue(sps.bit_depth - 8), w.ue(sps.bit_depth - 8)
    w.ue(8 - 4)  # log2_max_pic_order_cnt_lsb = 8
    w.u(1, 1), w.ue(0), w.ue(0), w.ue(0)  # max_dec_pic_buffering 1, no reordering, no latency limit
    w.ue(sps.log2_min_cb_size - 3), w.ue(sps.log2_diff_max_min_cb_size)
    w.ue(sps.log2_min_tb_size - 2), w.ue(sps.log2_diff_max_min_tb_size)
    w.ue(sps.max_transform_hierarchy_depth_intra), w.ue(sps.max_transform_hierarchy_depth_intra)  # inter = intra
    w.u(1, 0), w.u(1, 1), w.u(1, sps.sao)  # scaling_list_enabled 0, amp_enabled 1, sao
    w.u(1, sps.pcm is not None)
    if sps.pcm is not None:
        w.u(4, sps.pcm[0]), w.u(4, sps.pcm[1]), w.ue(sps.pcm[2]), w.ue(sps.pcm[3]), w.u(1, sps.pcm[4])
    w.ue(0), w.u(1, 0), w.u(1, 1)  # no short-term RPS, no long-term refs, sps_temporal_mvp_enabled
    w.u(1, sps.strong_intra_smoothing), w.u(1, 0)  # strong intra smoothing, no VUI
    w.u(1, sps.extension_flag)
    if sps.extension_flag:
        w.u(1, sps.range_extension_flags is not None), w.u(7, 0)
        if sps.range_extension_flags is not None:
            w.u(9, sps.range_extension_flags)
    return b"\x42\x01" + _escape(w.bytes(rbsp_trailing=True))


def coded_size(header: BpgHeader, sps: CompactSps) -> tuple[int, int]:
    """The HEVC picture size: the private coded-size extension when present, else (bpg_spec.txt 3.2)
    ceil(picture_width / cb_size) · cb_size with cb_size = 1 << log2_min_luma_coding_block_size."""
    for tag, body in header.extensions:
        if tag == _CODED_SIZE_TAG:
            width, pos = read_ue7(body, 0)
            height, _ = read_ue7(body, pos)
            return width, height
    cb = 1 << sps.log2_min_cb_size
    return -(-header.width // cb) * cb, -(-header.height // cb) * cb


def bpg_to_annexb(data: bytes) -> tuple[BpgHeader, bytes]:
    """A standard HEVC Annex-B stream (VPS, SPS, then the file's NAL units) for a BPG file without alpha."""
    header = parse_bpg(data)
    if header.alpha1 or header.alpha2:
        raise ValueError("BPG files with an alpha plane are not supported")
    if header.pixel_format not in (0, 1, 2, 3):
        raise ValueError(f"BPG pixel_format {header.pixel_format} is not supported")
    chroma = header.pixel_format
    sps = CompactSps.decode(header.hevc_header, chroma_format_idc=chroma, bit_depth=header.bit_depth)
    width, height = coded_size(header, sps)
    start = b"\x00\x00\x00\x01"
    hevc_data = data[header.hevc_data_start : header.hevc_data_end]
    stream = start + _vps(chroma, header.bit_depth) + start + _sps(sps, width, height) + start + hevc_data
    return header, stream


def slice_data_start(data: bytes) -> int:
    """Offset of the first slice NAL unit's header in a BPG file (everything before it is header)."""
    header = parse_bpg(data)
    hevc_data = data[header.hevc_data_start : header.hevc_data_end]
    for _, head, _ in _nal_units(hevc_data, first_has_start_code=False):
        if _nal_type(hevc_data, head) < 32:  # VCL NAL unit
            return header.hevc_data_start + head
    raise ValueError("corrupt BPG file: no slice NAL unit in the HEVC data")


# --- the codec --------------------------------------------------------------------------------------------
def encode(image: Image, quality: float) -> bytes:
    if tools := bpg_tools():
        return _encode_bpgenc(tools[0], image, quality)
    return _encode_x265(image, quality)


def decode(data: bytes) -> Image:
    if tools := bpg_tools():
        return _decode_bpgdec(tools[1], data)
    return _decode_x265(data)


def header_size(data: bytes) -> int:
    """Bytes before the first slice NAL unit: BPG header, compact HEVC header, PPS and the slice's start code."""
    return slice_data_start(data)


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


def _encode_x265(image: Image, quality: float) -> bytes:
    import av

    qp = int(quality)
    if not 0 <= qp <= 51:
        raise ValueError(f"qp must be between 0 and 51 ({qp})")  # bpgenc.c's check of -q
    height, width = image.shape[:2]
    padded_h, padded_w = (-(-n // CB_SIZE) * CB_SIZE for n in (height, width))  # bpgenc.c image_pad
    coded_h, coded_w = max(padded_h, _X265_MIN_SIDE), max(padded_w, _X265_MIN_SIDE)
    ycc = rgb_to_ycbcr(image)
    padded = np.pad(ycc, ((0, coded_h - height), (0, coded_w - width), (0, 0)), mode="edge")
    context = av.CodecContext.create("libx265", "w")
    context.width, context.height, context.pix_fmt = coded_w, coded_h, "yuv444p"
    context.options = {"preset": PRESET, **({"tune": TUNE} if TUNE else {}),
                       "x265-params": f"qp={qp + QP_OFFSET}:{_X265_PARAMS}"}  # fmt: skip
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded.transpose(2, 0, 1)), format="yuv444p")
    stream = b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])
    sps, hevc_data = annexb_to_bpg_data(stream)
    if (sps.coded_width, sps.coded_height) != (coded_w, coded_h):
        raise RuntimeError(f"x265 coded {sps.coded_width}×{sps.coded_height}, expected {coded_w}×{coded_h}")
    extensions = ()
    if (coded_w, coded_h) != (padded_w, padded_h):  # only for a side below 16 px: see the module docstring
        extensions = ((_CODED_SIZE_TAG, write_ue7(coded_w) + write_ue7(coded_h)),)
    return build_bpg(width, height, sps.encode(), hevc_data, extensions=extensions)


def _decode_x265(data: bytes) -> Image:
    import av

    header, stream = bpg_to_annexb(data)
    if header.pixel_format != FORMAT_444 or header.bit_depth != 8 or header.color_space != CS_YCBCR:
        raise ValueError(
            f"in-process decoding supports 4:4:4 8-bit YCbCr BPG files (pixel_format={header.pixel_format}, "
            f"bit_depth={header.bit_depth}, color_space={header.color_space})"
        )
    if header.limited_range:
        raise ValueError("in-process decoding supports full-range BPG files only")
    context = av.CodecContext.create("hevc", "r")
    try:
        frames = [*context.decode(av.Packet(stream)), *context.decode(None)]
    except av.error.FFmpegError as exc:
        raise ValueError(f"corrupt BPG file: the HEVC decoder failed ({exc})") from None
    if len(frames) != 1:
        raise ValueError(f"corrupt BPG file: HEVC data decoded to {len(frames)} frames, expected 1")
    planes = frames[0].to_ndarray(format="yuv444p")
    if planes.shape[1] < header.height or planes.shape[2] < header.width:
        raise ValueError("corrupt BPG file: decoded picture smaller than the header's size")
    return ycbcr_to_rgb(planes[:, : header.height, : header.width].transpose(1, 2, 0))


bpg = Codec(
    name="bpg",
    family="classical",
    description="BPG: HEVC intra, 4:4:4, full-range BT.601 (bpgenc when on PATH, else bpgenc 0.9.8's "
    "defaults in-process: x265 veryslow, tune ssim, 8-bit, real .bpg file)",
    quality_name="HEVC QP 0–51 (lower = better), as bpgenc -q",
    qualities=(51, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10),
    quality_range=(0, 51),
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "bytes: the complete .bpg file (bpgenc's, or written in-process exactly as bpgenc 0.9.8 does); "
        "header_bytes: everything before the slice NAL unit = BPG header (magic, 2 flag bytes, ue7 width, "
        "height, picture_data_length) + ue7 hevc_header_length + compact HEVC header + the PPS NAL unit "
        "and the slice's start code (22 bytes on a 64×64 tile, of which 13 are the BPG header proper); "
        "images with a side under 16 px also carry a 6-byte private coded-size extension."
    ),
    library_version=library_version,
    install_hint="pip install av",
)
