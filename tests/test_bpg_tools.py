"""The `bpg` codec: the .bpg container written in-process as bpgenc does, and bpgenc/bpgdec when on PATH.

No bpgenc exists on package registries, so the tools tests put stand-ins on
PATH: they write and read a genuine BPG 0.9.8 header (magic, format bytes,
ue7 sizes, picture_data_length 0, hevc_header_length, a PPS-like NAL unit and
a slice NAL header) around raw pixels instead of HEVC data, which exercises
the command lines, the file round trip and the header parsing. The other
tests run the in-process path (x265 through PyAV) on real EuroSAT tiles.
"""

import stat
import sys
import textwrap

import numpy as np
import pytest

from bench import metrics
from bench.bd import bd_pair
from bench.codecs import bpg

FAKE_BPGENC = """
import sys
from PIL import Image
import numpy as np

def ue7(n):
    out = [n & 0x7F]
    while n >> 7:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))

if sys.argv[1] == "-h":
    print("BPG Image Encoder version 0.9.8 (stand-in)")
    sys.exit(0)
args = sys.argv[1:]
assert args[args.index("-f") + 1] == "444"
quality = int(args[args.index("-q") + 1])
pixels = np.asarray(Image.open(args[-1]).convert("RGB"))
h, w = pixels.shape[:2]
hevc_header = bytes([quality, 0xAA, 0xBB])
pps, slice_header = bytes.fromhex("4401c1718112"), bytes.fromhex("000001" "2801")
with open(args[args.index("-o") + 1], "wb") as out:
    out.write(b"BPG\\xfb" + bytes([3 << 5, 0]) + ue7(w) + ue7(h) + ue7(0) + ue7(len(hevc_header)) + hevc_header
              + pps + slice_header + pixels.tobytes())
"""

FAKE_BPGDEC = """
import sys
from PIL import Image
import numpy as np

def ue7(data, pos):
    value = 0
    while True:
        value = (value << 7) | (data[pos] & 0x7F)
        pos += 1
        if not data[pos - 1] & 0x80:
            return value, pos

args = sys.argv[1:]
data = open(args[-1], "rb").read()
w, pos = ue7(data, 6)
h, pos = ue7(data, pos)
pixels = np.frombuffer(data[len(data) - w * h * 3:], np.uint8).reshape(h, w, 3)
Image.fromarray(pixels).save(args[args.index("-o") + 1])
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    for name, body in (("bpgenc", FAKE_BPGENC), ("bpgdec", FAKE_BPGDEC)):
        path = tmp_path / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    bpg.bpg_tools.cache_clear()
    yield tmp_path
    bpg.bpg_tools.cache_clear()


@pytest.fixture
def in_process(monkeypatch):
    """The in-process path, even on a machine that has bpgenc."""
    monkeypatch.setattr(bpg, "bpg_tools", lambda: None)


def test_bpgenc_on_path_is_used(fake_tools):
    assert bpg.bpg_tools() == (str(fake_tools / "bpgenc"), str(fake_tools / "bpgdec"))
    assert "BPG Image Encoder version 0.9.8" in bpg.library_version()
    image = np.random.default_rng(0).integers(0, 256, (9, 300, 3), dtype=np.uint8)
    data = bpg.encode(image, 28)
    assert data[:4] == bpg.BPG_MAGIC
    assert np.array_equal(bpg.decode(data), image)
    header = bpg.parse_bpg(data)
    assert (header.width, header.height, header.picture_data_length, header.hevc_header) == (300, 9, 0, b"\x1c\xaa\xbb")
    # magic 4 + format 2 + ue7 width (2 bytes for 300) + height 1 + picture_data_length 1
    # + hevc_header_length 1 + compact header 3, then the PPS (6) and the slice's start code (3)
    assert header.size == 4 + 2 + 2 + 1 + 1 + 1 + 3
    assert bpg.header_size(data) == header.size + 6 + 3


def test_in_process_writes_a_bpg_file_without_tools(in_process):
    assert bpg.library_version().startswith("PyAV")
    image = np.zeros((16, 16, 3), np.uint8)
    assert bpg.encode(image, 30)[:4] == bpg.BPG_MAGIC


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (8, "08"), (64, "40"), (127, "7f"), (128, "8100"), (200, "8148"), (300, "822c"), (542, "841e"),
     (16383, "ff7f"), (16384, "818000"), (728855, "acbe17"), (2**32 - 1, "8fffffff7f")],
)  # fmt: skip
def test_ue7_matches_hand_computed_bytes(value, encoded):
    # 200 = 1·128 + 72 → 0x81 0x48; 300 = 2·128 + 44 → 0x82 0x2c; 16384 = 1·128² → 0x81 0x80 0x00;
    # 542 and 728855 are the examples of doc/bpg_spec.txt.
    assert bpg.write_ue7(value).hex() == encoded
    assert bpg.read_ue7(bytes.fromhex(encoded) + b"\xff", 0) == (value, len(encoded) // 2)


def test_ue7_refuses_non_canonical_overlong_and_truncated_codes():
    with pytest.raises(ValueError, match="non-canonical"):
        bpg.read_ue7(b"\x80\x01", 0)  # libbpg.c get_ue32: "we don't accept non canonical encodings"
    with pytest.raises(ValueError, match="32 bits"):
        bpg.read_ue7(b"\x90\x80\x80\x80\x00", 0)
    with pytest.raises(ValueError, match="truncated"):
        bpg.read_ue7(b"\x81", 0)
    with pytest.raises(ValueError):
        bpg.write_ue7(2**32)


def test_header_bytes_for_444_8bit_bt601_full_range():
    data = bpg.build_bpg(64, 64, b"\x92\x47\x40", b"\x44\x01")
    # pixel_format 3 (4:4:4) << 5 | alpha1 0 << 4 | bit_depth − 8 = 0 → 0x60;
    # color_space 0 (YCbCr BT.601) << 4 | extension 0 | alpha2 0 | limited_range 0 | animation 0 → 0x00;
    # width 64, height 64, picture_data_length 0 (to the end of the file, as bpgenc 0.9.8 writes it);
    # hevc_header_length 3, the compact header, then the HEVC data.
    assert data == bytes.fromhex("425047fb" "60" "00" "40" "40" "00" "03" "924740" "4401")
    header = bpg.parse_bpg(data)
    assert (header.pixel_format, header.alpha1, header.alpha2, header.bit_depth) == (3, False, False, 8)
    assert (header.color_space, header.limited_range, header.animation, header.extension_present) == (0, 0, 0, 0)
    assert (header.width, header.height, header.picture_data_length) == (64, 64, 0)
    assert (header.hevc_header, header.size, header.hevc_data_end) == (b"\x92\x47\x40", 13, len(data))


def test_picture_data_length_bounds_the_picture_data():
    # A non-zero picture_data_length (what bpgenc 0.9.1 wrote) covers hevc_header_length, header and data.
    hevc = b"\x44\x01\x00\x00\x01\x28\x01\xaa"
    data = bpg.build_bpg(300, 200, b"\x92\x47\x40", hevc, picture_data_length=1 + 3 + len(hevc)) + b"trailing"
    header = bpg.parse_bpg(data)
    assert (header.width, header.height, header.picture_data_length) == (300, 200, 12)
    assert data[header.hevc_data_start : header.hevc_data_end] == hevc
    assert bpg.header_size(data) == header.size + 2 + 3  # PPS-like NAL unit, start code
    with pytest.raises(ValueError, match="truncated"):
        bpg.parse_bpg(bpg.build_bpg(300, 200, b"\x92\x47\x40", hevc, picture_data_length=100))


def test_compact_hevc_header_round_trips():
    sps = bpg.CompactSps(3, 3, 2, 3, 2, 1, None, 1, 0, None)
    assert sps.encode() == bytes.fromhex("924740")  # ue 0, 3, 0, 3, 2; sao 1, pcm 0, strong 1, extension 0
    assert bpg.CompactSps.decode(sps.encode()) == sps
    with_range = bpg.CompactSps(3, 3, 2, 3, 2, 1, (7, 7, 0, 1, 1), 1, 1, 0b000000101)
    assert bpg.CompactSps.decode(with_range.encode()) == with_range
    with pytest.raises(ValueError, match="sps_extension_7bits"):
        bpg.CompactSps.decode(bytes.fromhex("92476100"))  # sps_extension_present 1, range 0, 7 bits 0b0001000


def test_colour_conversion_is_bpgenc_and_libbpg_fixed_point():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # Y = 0.299 R + 0.587 G + 0.114 B, Cb = B − Y scaled by 0.5/(1 − 0.114), Cr = R − Y by 0.5/(1 − 0.299),
    # rounded as (x·2^23 + 2^22) >> 23 and clamped: red → Y 76.2 → 76, Cb −43.03 → 85, Cr 127.5 → 255.
    expected = [[255, 128, 128], [0, 128, 128], [76, 85, 255], [150, 44, 21], [29, 255, 107]]
    assert bpg.rgb_to_ycbcr(rgb).tolist() == [expected]
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    back = bpg.ycbcr_to_rgb(bpg.rgb_to_ycbcr(pixels)).astype(int)
    assert np.abs(back - pixels).max() <= 2


def test_real_tile_round_trip_and_header(in_process, tiles):
    image = tiles[2]
    data = bpg.encode(image, 30)
    decoded = bpg.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert 33 < metrics.psnr(image, decoded) < 45
    header = bpg.parse_bpg(data)
    assert (header.pixel_format, header.bit_depth, header.color_space, header.limited_range) == (3, 8, 0, False)
    assert (header.width, header.height, header.picture_data_length, header.extensions) == (64, 64, 0, ())
    # what was written parses back to the same fields: rebuilding the file from them gives the same bytes
    hevc_data = data[header.hevc_data_start :]
    assert bpg.build_bpg(header.width, header.height, header.hevc_header, hevc_data) == data
    assert bpg.CompactSps.decode(header.hevc_header).encode() == header.hevc_header
    # the HEVC data is the PPS without start code, then the slice behind a start code
    assert (hevc_data[0] >> 1) & 0x3F == 34
    slice_at = bpg.header_size(data)
    assert data[slice_at - 3 : slice_at] == b"\x00\x00\x01" and (data[slice_at] >> 1) & 0x3F == 20  # IDR_N_LP
    assert 10 <= header.size <= 16 and 18 <= slice_at <= 30


def test_bpg_data_is_x265s_stream_without_vps_and_sps(in_process, tiles):
    """The compact header and the rebuilt VPS/SPS decode to exactly the picture x265's own stream decodes to."""
    import av

    planes = np.ascontiguousarray(bpg.rgb_to_ycbcr(tiles[1]).transpose(2, 0, 1))
    context = av.CodecContext.create("libx265", "w")
    context.width, context.height, context.pix_fmt = 64, 64, "yuv444p"
    context.options = {"preset": bpg.PRESET, "tune": bpg.TUNE, "x265-params": f"qp=30:{bpg._X265_PARAMS}"}
    frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
    stream = b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])
    sps, hevc_data = bpg.annexb_to_bpg_data(stream)
    assert stream.endswith(hevc_data) and (sps.coded_width, sps.coded_height) == (64, 64)
    data = bpg.build_bpg(64, 64, sps.encode(), hevc_data)
    assert data == bpg.encode(tiles[1], 30)

    def decode(annexb: bytes) -> np.ndarray:
        decoder = av.CodecContext.create("hevc", "r")
        return [*decoder.decode(av.Packet(annexb)), *decoder.decode(None)][0].to_ndarray(format="yuv444p")

    assert np.array_equal(decode(bpg.bpg_to_annexb(data)[1]), decode(stream))


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (65, 97), (3, 50)])
def test_odd_sizes_decode_to_their_size(in_process, shape):
    image = np.random.default_rng(4).integers(0, 256, (*shape, 3), dtype=np.uint8)
    data = bpg.encode(image, 22)
    decoded = bpg.decode(data)
    assert decoded.shape == image.shape
    assert metrics.psnr(image, decoded) > 30
    header = bpg.parse_bpg(data)
    assert (header.height, header.width) == shape
    sps = bpg.CompactSps.decode(header.hevc_header)
    if min(shape) >= 16:  # a standard file: the coded size is the picture size rounded up to 8 (cb_size)
        assert header.extensions == ()
        assert bpg.coded_size(header, sps) == (-(-shape[1] // 8) * 8, -(-shape[0] // 8) * 8)
    else:  # x265 needs 16 px: the coded size travels in the private extension, counted as header
        assert header.extension_present and header.extensions[0][0] == 126
        assert min(bpg.coded_size(header, sps)) >= 16


def test_truncated_or_corrupt_files_raise_value_error(in_process, tiles):
    data = bpg.encode(tiles[0], 34)
    # Everything up to the slice NAL unit's header is checked (BPG header, compact header, PPS, start code).
    # picture_data_length is 0 in bpgenc 0.9.8's files and BPG has no checksum, so a file cut inside the slice
    # data is decoded as far as it goes, as libbpg would.
    for size in range(bpg.header_size(data) + 2):
        with pytest.raises(ValueError):
            bpg.decode(data[:size])
    with pytest.raises(ValueError, match="not a BPG file"):
        bpg.decode(b"\x00" + data[1:])
    with pytest.raises(ValueError, match="alpha"):
        bpg.decode(data[:4] + bytes([data[4] | 0x10]) + data[5:])
    with pytest.raises(ValueError, match="truncated"):
        bpg.decode(data[:9] + bytes([0x7F]) + data[10:])  # hevc_header_length far beyond the file
    with pytest.raises(ValueError, match="width or height is 0"):
        bpg.decode(data[:6] + b"\x00" + data[7:])
    with pytest.raises(ValueError):
        bpg.header_size(data[:13] + b"\x00" * 40)  # no NAL unit structure after the compact header


def test_bpgenc_settings_beat_preset_medium_at_equal_psnr(in_process, tiles, monkeypatch):
    """bpgenc's settings (veryslow, tune ssim) spend fewer payload bits than x265 medium at equal PSNR."""
    qualities = (42, 38, 34, 30, 26, 22)

    def curve() -> tuple[list[float], list[float]]:
        rates, psnrs = [], []
        for quality in qualities:
            streams = [bpg.encode(t, quality) for t in tiles]
            rates.append(np.mean([metrics.bpp(len(s) - bpg.header_size(s), t.shape) for s, t in zip(streams, tiles)]))
            psnrs.append(np.mean([metrics.psnr(t, bpg.decode(s)) for s, t in zip(streams, tiles)]))
        return rates, psnrs

    bpgenc_like = curve()
    monkeypatch.setattr(bpg, "PRESET", "medium")
    monkeypatch.setattr(bpg, "TUNE", None)
    medium = curve()
    assert bd_pair(*medium, *bpgenc_like, min_quality_span=0.5)["bd_rate_pct"] < -2
