"""read_rgb on hostile inputs: pixel bombs, 16/32-bit and float samples, animations, odd EXIF orientations.

Every odd file is either converted exactly with a note, or an ImageReadError naming the file: never a silent
conversion, never another exception type.
"""

import struct
import tracemalloc
import zlib

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

import bench.images
from bench.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadError, read_rgb


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(path, width, height, color_type, rows):
    """A PNG of the declared size whose IDAT holds the (possibly truncated) filtered rows `rows`."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


def _unfinished(rows: bytes) -> bytes:
    """`rows` deflated without ending the stream: a decoder that gets this far reports a truncated file."""
    stream = zlib.compressobj()
    return stream.compress(rows) + stream.flush(zlib.Z_SYNC_FLUSH)


def _expected_8bit(values, maxval=65535):
    return np.rint(np.asarray(values, np.float64) * 255 / maxval).astype(np.uint8)


# ---- 1. pixel budget, from the header --------------------------------------------------------------------


def test_decompression_bomb_under_pillows_limit_is_refused(tmp_path):
    """9,400² gray zeros: 88 Mpx, under Pillow's 89 Mpx warning, ~90 KB on disk: what drove a worker to GBs."""
    side, stream = 9400, zlib.compressobj(9)
    row = b"\0" * (side + 1)
    rows = b"".join(stream.compress(row) for _ in range(side)) + stream.flush()
    path = _png(tmp_path / "bomb.png", side, side, 0, rows)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageReadError) as raised:
        read_rgb(path)
    assert str(raised.value) == (
        f"{path}: 9400×9400 = 88360000 pixels exceeds the pixel budget of {DEFAULT_MAX_PIXELS} (--max-pixels)"
    )


def test_budget_is_checked_before_decoding(tmp_path):
    """Only 4 of the 9,000 declared rows exist: decoding would fail as truncated, the header check comes first."""
    path = _png(tmp_path / "x.png", 9000, 9000, 2, _unfinished(b"\0" * (9000 * 3 + 1) * 4))
    with pytest.raises(ImageReadError, match="exceeds the pixel budget"):
        read_rgb(path)
    with pytest.raises(ImageReadError, match="cannot decode"):  # within a raised budget it is decoded (and fails)
        read_rgb(path, max_pixels=9000 * 9000)


def test_budget_is_a_parameter_and_inclusive(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (10, 10)).save(path)
    assert read_rgb(path, max_pixels=100)[0].shape == (10, 10, 3)
    with pytest.raises(ImageReadError, match=r"10×10 = 100 pixels exceeds the pixel budget of 99 \(--max-pixels\)"):
        read_rgb(path, max_pixels=99)


def test_default_budget_admits_a_50_mpx_scene():
    assert DEFAULT_MAX_PIXELS >= 50_000_000


def test_pillows_warning_threshold_does_not_preempt_a_raised_budget(tmp_path):
    """90 Mpx is over Pillow's 89 Mpx warning: with --max-pixels raised, the file gets decoded (here: truncated)."""
    path = _png(tmp_path / "x.png", 9500, 9500, 0, _unfinished(b"\0" * 9501 * 2))
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_rgb(path, max_pixels=10**9)


def test_pillows_hard_limit_is_an_image_read_error(tmp_path):
    path = _png(tmp_path / "x.png", 20000, 10000, 0, _unfinished(b"\0" * 20001))
    with pytest.raises(ImageReadError, match="decompression bomb") as raised:
        read_rgb(path, max_pixels=10**9)
    assert str(path) in str(raised.value)


def test_numpy_side_peak_is_about_the_result(tmp_path):
    """Allocations tracemalloc sees (numpy, bytes) stay near the 3 bytes/pixel result: no whole-image copies.

    (Pillow's own decode buffer, 4 bytes/pixel for RGB, is outside tracemalloc's view.) Before the rework this
    was 6 bytes/pixel: `tobytes()` + the result, next to Pillow's image and its `.copy()`.
    """
    height, width = 1500, 2000
    array = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path, compress_level=0)
    tracemalloc.start()
    try:
        image, _ = read_rgb(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(image, array)
    assert peak < 3 * height * width + 4 * bench.images._BAND_PIXELS * 3


# ---- 2. 32-bit integer and float samples ------------------------------------------------------------------


def test_uint32_tiff_is_scaled_by_32_bits(tmp_path):
    values = np.array([[0, 70000, 2**31, 2**32 - 1]], np.uint32)
    tifffile.imwrite(tmp_path / "x.tif", values)
    image, note = read_rgb(tmp_path / "x.tif")
    assert image.shape == (1, 4, 3)
    assert image[..., 0].tolist() == [_expected_8bit(values, 2**32 - 1)[0].tolist()] == [[0, 0, 128, 255]]
    assert np.all(image == image[..., :1])
    assert "mode I (32-bit unsigned gray) scaled to 8 bits" in note


@pytest.mark.parametrize("dtype, bits", [(np.int32, 32), (np.int16, 16)])
def test_signed_integer_tiff_is_an_error(tmp_path, dtype, bits):
    tifffile.imwrite(tmp_path / "x.tif", np.array([[0, 7, -5]], dtype))
    with pytest.raises(ImageReadError, match=f"signed {bits}-bit integer samples: no defined scaling"):
        read_rgb(tmp_path / "x.tif")


@pytest.mark.parametrize(
    "values, expected, how",
    [
        ([0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255], "values in [0, 1] scaled by 255"),
        ([0.0, 1.5, 127.4, 255.0], [0, 2, 127, 255], "values in [0, 255] rounded"),
    ],
)
def test_float_tiff_is_scaled_by_its_range(tmp_path, values, expected, how):
    tifffile.imwrite(tmp_path / "x.tif", np.array([values], np.float32))
    image, note = read_rgb(tmp_path / "x.tif")
    assert image[0, :, 0].tolist() == expected and np.all(image == image[..., :1])
    assert f"mode F (32-bit float) {how}" in note


@pytest.mark.parametrize(
    "values, problem",
    [
        ([0.0, 256.0], r"values outside \[0, 1\] and \[0, 255\]: min 0, max 256: no defined scaling"),
        ([-0.5, 0.5], "min -0.5, max 0.5"),
        ([0.0, np.inf], "max inf"),
        ([0.0, np.nan], "NaN"),
    ],
)
def test_float_tiff_without_a_defined_scaling_is_an_error(tmp_path, values, problem):
    tifffile.imwrite(tmp_path / "x.tif", np.array([values], np.float32))
    with pytest.raises(ImageReadError, match=problem) as raised:
        read_rgb(tmp_path / "x.tif")
    assert str(tmp_path / "x.tif") in str(raised.value)


def test_16_bit_pgm_is_scaled_by_16_bits_even_when_dark(tmp_path):
    """The old heuristic took a mode-I image whose samples are all ≤ 255 for an 8-bit one."""
    values = np.array([[0, 200, 255]], ">u2")
    path = tmp_path / "x.pgm"
    path.write_bytes(b"P5\n3 1\n65535\n" + values.tobytes())
    image, note = read_rgb(path)
    assert image[0, :, 0].tolist() == [0, 1, 1] and "mode I (16-bit unsigned gray) scaled to 8 bits" in note


def test_ppm_with_other_maxval_is_noted(tmp_path):
    path = tmp_path / "x.ppm"
    path.write_bytes(b"P6\n2 1\n65535\n" + np.array([0, 511, 65535, 32896, 128, 129], ">u2").tobytes())
    image, note = read_rgb(path)
    assert image.reshape(-1).tolist() == [0, 2, 255, 128, 0, 1] and "PPM maxval 65535 scaled to 8 bits" in note


# ---- 3. 16-bit multi-channel samples ----------------------------------------------------------------------

_EDGES = [0, 128, 129, 511, 32896, 65535]  # 128/257 rounds down, 129/257 up; 511 truncates to 1 but rounds to 2


def _wide(channels, seed=0):
    values = np.random.default_rng(seed).integers(0, 65536, (5, 7, channels), dtype=np.uint16)
    values[0, : len(_EDGES), 0] = _EDGES
    return values


@pytest.mark.parametrize(
    "channels, kind", [(3, "16-bit RGB scaled to 8 bits"), (4, "16-bit RGB+alpha scaled to 8 bits (alpha dropped)")]
)
def test_16_bit_rgb_png_is_rounded_not_truncated(tmp_path, channels, kind):
    values = _wide(channels)
    path = tmp_path / "x.png"
    path.write_bytes(imagecodecs.png_encode(values))
    image, note = read_rgb(path)
    assert np.array_equal(image, _expected_8bit(values[..., :3])) and kind in note
    assert image[0, :6, 0].tolist() == [0, 0, 1, 2, 128, 255]


def test_16_bit_gray_alpha_png(tmp_path):
    values = _wide(2)
    path = tmp_path / "x.png"
    path.write_bytes(imagecodecs.png_encode(values))
    image, note = read_rgb(path)
    assert np.array_equal(image, np.repeat(_expected_8bit(values[..., :1]), 3, axis=2))
    assert "16-bit gray+alpha scaled to 8 bits (alpha dropped), gray replicated to RGB" in note


@pytest.mark.parametrize(
    "layout", [{}, {"compression": "zlib"}, {"planarconfig": "separate"}, {"extrasamples": ["unassalpha"]}]
)
def test_16_bit_rgb_tiff_is_rounded_not_truncated(tmp_path, layout):
    values = _wide(4 if "extrasamples" in layout else 3)
    data = np.moveaxis(values, -1, 0).copy() if layout.get("planarconfig") == "separate" else values
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="rgb", **layout)
    image, note = read_rgb(tmp_path / "x.tif")
    assert np.array_equal(image, _expected_8bit(values[..., :3]))
    assert "16-bit RGB" in note and "scaled to 8 bits" in note


@pytest.mark.parametrize("before_idat", [True, False])
def test_16_bit_rgb_png_orientation_is_applied(tmp_path, before_idat):
    values = _wide(3)
    exif = Image.Exif()
    exif[0x0112] = 8
    png = imagecodecs.png_encode(values)
    exif_chunk = _chunk(b"eXIf", exif.tobytes())
    at = png.index(b"IDAT") - 4 if before_idat else png.index(b"IEND") - 4
    path = tmp_path / "x.png"
    path.write_bytes(png[:at] + exif_chunk + png[at:])
    image, note = read_rgb(path)
    assert np.array_equal(image, np.rot90(_expected_8bit(values), 1)) and "EXIF orientation 8 applied" in note


def test_16_bit_cmyk_tiff_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", _wide(4), photometric="separated")
    with pytest.raises(ImageReadError, match="16-bit CMYK TIFF .*without truncating"):
        read_rgb(tmp_path / "x.tif")


def test_16_bit_rgb_tiff_orientation_is_applied(tmp_path):
    values = _wide(3)
    tifffile.imwrite(tmp_path / "x.tif", values, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    image, note = read_rgb(tmp_path / "x.tif")
    assert np.array_equal(image, np.rot90(_expected_8bit(values), -1)) and "EXIF orientation 6 applied" in note


# ---- 4. several frames ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gif", ".png", ".tif", ".webp"])
def test_animations_and_multi_page_files_are_errors(tmp_path, suffix):
    frames = [Image.new("RGB", (6, 4), color) for color in ("red", "blue", "green")]
    path = tmp_path / f"x{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="3 frames: a codec benchmark measures still images; extract one frame"):
        read_rgb(path)


def test_animated_files_are_listed_not_skipped():
    assert {".gif", ".apng"} <= IMAGE_SUFFIXES


def test_single_frame_gif_is_read(tmp_path):
    Image.new("RGB", (6, 4), "red").save(tmp_path / "x.gif")
    image, note = read_rgb(tmp_path / "x.gif")
    assert image.shape == (4, 6, 3) and image[0, 0].tolist() == [255, 0, 0] and "mode P converted to RGB" in note


def test_tiff_thumbnail_pages_are_not_frames(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with tifffile.TiffWriter(tmp_path / "x.tif") as writer:
        writer.write(array, photometric="rgb")
        writer.write(array[::2, ::2], photometric="rgb", subfiletype=1)  # reduced-resolution copy
    image, note = read_rgb(tmp_path / "x.tif")
    assert np.array_equal(image, array) and "1 reduced-resolution TIFF page(s) ignored" in note


def test_mpo_camera_jpeg_uses_its_primary_image(tmp_path):
    frames = [Image.new("RGB", (6, 4), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "x.jpg", format="MPO", save_all=True, append_images=frames[1:])
    image, note = read_rgb(tmp_path / "x.jpg")
    assert image.shape == (4, 6, 3) and image[..., 0].min() > 200 and "MPO primary image used" in note


# ---- 5. EXIF orientation ----------------------------------------------------------------------------------


def _exif_png(path, array, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif)
    return path


@pytest.mark.parametrize("band_pixels", [bench.images._BAND_PIXELS, 1])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientations_match_pillow(tmp_path, monkeypatch, orientation, band_pixels):
    monkeypatch.setattr(bench.images, "_BAND_PIXELS", band_pixels)  # 1: a band per row, written through the view
    array = np.random.default_rng(orientation).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    path = _exif_png(tmp_path / "x.png", array, orientation)
    with Image.open(path) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    image, note = read_rgb(path)
    assert np.array_equal(image, expected) and image.flags.c_contiguous
    assert note == f"EXIF orientation {orientation} applied"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_tiff_orientation_is_applied_once(tmp_path, orientation, dtype):
    """Pillow ≥ 11 applies a TIFF's orientation itself while loading; libtiff (16-bit RGB) does not."""
    array = np.random.default_rng(orientation).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    with Image.open(_exif_png(tmp_path / "x.png", array, orientation)) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    stored = array[..., 0] if dtype == np.float32 else array.astype(dtype) * (257 if dtype == np.uint16 else 1)
    tifffile.imwrite(tmp_path / "x.tif", stored.astype(dtype), photometric="minisblack" if stored.ndim == 2 else "rgb",
                     extratags=[(274, "H", 1, orientation, True)])
    image, note = read_rgb(tmp_path / "x.tif")
    assert np.array_equal(image, expected[..., :1].repeat(3, axis=2) if dtype == np.float32 else expected)
    assert f"EXIF orientation {orientation} applied" in note


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_exif_orientation_is_ignored_and_said_so(tmp_path, orientation):
    array = np.random.default_rng(0).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    image, note = read_rgb(_exif_png(tmp_path / "x.png", array, orientation))
    assert np.array_equal(image, array) and note == f"EXIF orientation {orientation} invalid, ignored"


def test_invalid_tiff_orientation_is_ignored_and_said_so(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", array, photometric="rgb", extratags=[(274, "H", 1, 9, True)])
    image, note = read_rgb(tmp_path / "x.tif")
    assert np.array_equal(image, array) and note == "EXIF orientation 9 invalid, ignored"


def test_orientation_1_says_nothing(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    image, note = read_rgb(_exif_png(tmp_path / "x.png", array, 1))
    assert np.array_equal(image, array) and note == ""


# ---- 6. the band-wise conversion gives what a whole-image conversion gives ------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "1", "I;16", "F"])
def test_band_wise_conversion_matches_whole_image(tmp_path, monkeypatch, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    if mode == "I;16":
        source = Image.fromarray(rng.integers(0, 65536, (9, 7), dtype=np.uint16))
    elif mode == "F":
        source = Image.fromarray(rng.random((9, 7), dtype=np.float32))
    else:
        source = rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "F") else "x.png")
    source.save(path)
    whole, note = read_rgb(path)
    monkeypatch.setattr(bench.images, "_BAND_PIXELS", 10)
    banded, banded_note = read_rgb(path)
    assert np.array_equal(whole, banded) and note == banded_note
    if mode in ("RGB", "L", "P", "RGBA", "LA", "CMYK", "1"):
        assert np.array_equal(whole, np.asarray(Image.open(path).convert("RGB")))


# ---- damaged files: only ImageReadError ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data", "Truncated File Read" …
def test_damaged_files_raise_only_image_read_errors(tmp_path):
    """Byte flips, cuts and insertions in every kind of file above: read, or an ImageReadError naming the file."""
    import io
    import random

    array = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    seeds = {}
    for suffix, fmt in [(".png", "PNG"), (".jpg", "JPEG"), (".gif", "GIF"), (".tif", "TIFF"), (".webp", "WEBP")]:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, fmt)
        seeds[suffix] = buffer.getvalue()
    seeds["16.png"] = imagecodecs.png_encode(array.astype(np.uint16) * 257)
    for name, data in [("16.tif", array.astype(np.uint16) * 257), ("f.tif", array[..., 0] / 255.0)]:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        seeds[name] = buffer.getvalue()
    rng = random.Random(0)
    for attempt in range(300):
        name = rng.choice(sorted(seeds))
        data = bytearray(seeds[name])
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.6:
                data[at] = rng.randrange(256)
            elif kind < 0.8:
                del data[at : at + rng.randint(1, 64)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
        path = tmp_path / f"{attempt}{name}"
        path.write_bytes(bytes(data))
        try:
            image, _ = read_rgb(path)
        except ImageReadError as exc:
            assert str(path) in str(exc)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
