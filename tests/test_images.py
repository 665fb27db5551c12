import io

import numpy as np
import pytest
from PIL import Image

from bench.images import ImageReadError, read_rgb


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def test_rgb_jpeg_reads_unchanged(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = _save(tmp_path / "x.png", Image.fromarray(array))
    image, note = read_rgb(path)
    assert np.array_equal(image, array) and note == ""


@pytest.mark.parametrize(
    "mode, expected",
    [("L", "mode L converted to RGB"), ("P", "mode P converted to RGB"), ("RGBA", "alpha dropped"), ("CMYK", "mode CMYK")],
)
def test_other_modes_are_converted_and_said_so(tmp_path, mode, expected):
    path = _save(tmp_path / ("x.jpg" if mode == "CMYK" else "x.png"), Image.new(mode, (6, 4)))
    image, note = read_rgb(path)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert expected in note


def test_16_bit_png_is_scaled(tmp_path):
    array = np.full((3, 3), 65535, dtype=np.uint16)
    path = _save(tmp_path / "x.png", Image.fromarray(array))
    image, note = read_rgb(path)
    assert image.max() == 255 and "scaled to 8 bits" in note


def test_exif_rotation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = _save(tmp_path / "x.jpg", Image.new("RGB", (8, 2)), exif=exif)
    image, note = read_rgb(path)
    assert image.shape == (8, 2, 3) and "EXIF" in note


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "not a readable image"), (b"hello, world", "not a readable image"), (None, "cannot decode")],
)
def test_unreadable_files_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.jpg"
    if content is None:  # truncated JPEG
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
        content = buffer.getvalue()[:300]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=problem) as raised:
        read_rgb(path)
    assert str(path) in str(raised.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_rgb(tmp_path / "nope.png")
