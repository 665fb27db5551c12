"""The `heic` codec: HEVC intra in HEIF through pillow-heif (libheif + x265 + libde265)."""

import io

import numpy as np
import pytest

from bench import metrics
from bench.codecs import CODECS, get_codec, heic


def _top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level ISOBMFF box, read by hand (32-bit sizes only)."""
    boxes, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append((data[pos + 4 : pos + 8], pos, size))
        pos += size
    return boxes


def test_registered_after_bpg_and_available():
    assert get_codec("heic") is heic.heic
    names = list(CODECS)
    assert names.index("heic") == names.index("bpg") + 1
    assert heic.heic.family == "classical" and heic.heic.available
    assert "pillow-heif" in heic.heic.version and "libheif" in heic.heic.version
    assert heic.heic.install_hint == "pip install pillow-heif"
    assert len(heic.heic.qualities) >= 8 and heic.heic.qualities == tuple(sorted(heic.heic.qualities))


def test_round_trip_of_a_real_tile_rises_in_rate_and_psnr(tiles):
    image = tiles[1]
    sizes, psnrs = [], []
    for quality in (10, 50, 90):
        data = heic.encode(image, quality)
        decoded = heic.decode(data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert heic.encode(image, quality) == data  # deterministic
        sizes.append(len(data))
        psnrs.append(metrics.psnr(image, decoded))
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnrs[0] + 3 < psnrs[1] and psnrs[1] + 3 < psnrs[2]
    assert psnrs[2] > 42


def test_chroma_is_444_full_range():
    import pillow_heif

    data = heic.encode(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8), 50)
    info = pillow_heif.open_heif(io.BytesIO(data))[0].info
    assert info["chroma"] == 444 and info["bit_depth"] == 8
    assert info["nclx_profile"]["full_range_flag"] == 1 and info["nclx_profile"]["matrix_coefficients"] == 6


def test_header_size_of_a_hand_built_file():
    ftyp = (16).to_bytes(4, "big") + b"ftypheic" + b"\x00\x00\x00\x00"
    meta = (12).to_bytes(4, "big") + b"meta" + b"\x00\x00\x00\x00"
    mdat = (8 + 5).to_bytes(4, "big") + b"mdat" + b"\x01\x02\x03\x04\x05"
    assert heic.heic.header_size(ftyp + meta + mdat) == 16 + 12 + 8  # all but the 5 payload bytes
    large = (1).to_bytes(4, "big") + b"mdat" + (16 + 3).to_bytes(8, "big") + b"\x01\x02\x03"
    assert heic.heic.header_size(ftyp + large) == 16 + 16
    with pytest.raises(ValueError, match="corrupt"):
        heic.heic.header_size(ftyp + (4).to_bytes(4, "big") + b"mdat")


def test_header_size_is_total_minus_mdat_payload(tiles):
    data = heic.encode(tiles[0], 50)
    boxes = _top_level_boxes(data)
    assert [kind for kind, _, _ in boxes] == [b"ftyp", b"meta", b"mdat"]
    (_, _, ftyp_size), (_, _, meta_size), (_, mdat_at, mdat_size) = boxes
    assert mdat_at + mdat_size == len(data)
    header = heic.heic.header_size(data)
    assert header == len(data) - (mdat_size - 8) == ftyp_size + meta_size + 8
    assert b"hvcC" in data[:header] and 250 < header < 500  # parameter sets live in the container


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (65, 97), (2, 200)])
def test_odd_sizes_round_trip(shape):
    # libheif pads frames under 64 px (x265 needs 16) and crops them back with a clap property: 1×1 encodes.
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    decoded = heic.decode(heic.encode(image, 90))
    assert decoded.shape == image.shape
    assert metrics.psnr(image, decoded) > 30


def test_corrupt_files_and_bad_quality_raise_value_error(tiles):
    data = heic.encode(tiles[0], 50)
    for bad in (b"", data[:100], data[: len(data) - 20], b"\x00" * 64):
        with pytest.raises(ValueError):
            heic.decode(bad)
    with pytest.raises(ValueError):
        heic.encode(tiles[0], 101)
