import numpy as np
import pytest

from bench import metrics
from bench.codecs import CODECS, Codec, get_codec

AVAILABLE = [c for c in CODECS.values() if c.available and c.family == "classical"]


@pytest.fixture(params=AVAILABLE, ids=lambda c: c.name)
def codec(request) -> Codec:
    return request.param


CLASSICAL = [c for c in CODECS.values() if c.family == "classical"]


def test_every_classical_codec_is_available_here():
    # The test environment installs every classical codec's library.
    missing = {c.name: c.unavailable_reason for c in CLASSICAL if not c.available}
    assert not missing


def test_sweeps_are_long_enough():
    for codec in CLASSICAL:
        assert len(codec.qualities) >= 8, codec.name


def test_round_trip_shape_dtype_and_determinism(codec, tiles):
    image = tiles[1]
    quality = codec.qualities[len(codec.qualities) // 2]
    data = codec.encode(image, quality)
    assert isinstance(data, bytes) and len(data) > 0
    decoded = codec.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(codec.decode(data), decoded)
    assert 0 <= codec.header_size(data) < len(data)


def test_odd_sized_image_round_trips(codec):
    image = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    decoded = codec.decode(codec.encode(image, codec.qualities[-1]))
    assert decoded.shape == image.shape


def test_rate_rises_and_psnr_rises_along_the_sweep(codec, tiles):
    rates, psnrs = [], []
    for quality in codec.qualities:
        sizes, values = [], []
        for image in tiles:
            data = codec.encode(image, quality)
            sizes.append(metrics.bpp(len(data), image.shape))
            values.append(metrics.psnr(image, codec.decode(data)))
        rates.append(np.mean(sizes))
        psnrs.append(np.mean(values))
    # Coarsest to finest: rate never falls by more than rounding, and the
    # finest setting costs more and looks better than the coarsest.
    assert all(b >= a - 0.01 for a, b in zip(rates, rates[1:])), rates
    assert rates[-1] > 2 * rates[0]
    assert psnrs[-1] > psnrs[0] + 10
    assert psnrs[-1] >= 42  # the sweep reaches high quality on EuroSAT


def test_jpeg_scan_data_ends_at_the_first_real_marker():
    from bench.codecs.jpeg import _next_marker

    scan = b"\x12\xff\x00\x34\xff\xd3\x56\xff\xff\xd9"  # stuffed 0xFF, RST3, then a fill byte before EOI
    assert _next_marker(scan, 0) == 7
    assert _next_marker(b"\x12\xff\x00\x34", 0) == 3  # no marker: the scan runs to the last byte
    assert _next_marker(b"\x12\xff", 5) == 5  # past the end (a truncated file): an empty scan


def test_jpeg_header_is_everything_but_scan_data(tiles):
    data = get_codec("jpeg").encode(tiles[0], 50)
    sos = data.index(b"\xff\xda")
    sos_header = 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    assert get_codec("jpeg").header_size(data) == sos + sos_header + 2  # + EOI


def test_webp_header_is_riff_and_chunk_headers(tiles):
    assert get_codec("webp").header_size(get_codec("webp").encode(tiles[0], 50)) == 20


def test_bpg_header_is_the_bpg_header_and_what_precedes_the_slice(tiles):
    data = get_codec("bpg").encode(tiles[0], 30)
    header = get_codec("bpg").header_size(data)
    assert data[:4] == b"BPG\xfb"
    # BPG header with its compact HEVC header, then the PPS bpgenc keeps, then the IDR_N_LP slice (NAL type 20)
    slice_start = data.index(b"\x00\x00\x01" + bytes([20 << 1]))
    assert header == slice_start + 3
    assert 15 < header < 30


def test_avif_header_is_container_outside_mdat(tiles):
    data = get_codec("avif").encode(tiles[0], 50)
    mdat = data.index(b"mdat") - 4
    assert get_codec("avif").header_size(data) == mdat + 8


def test_jpeg2000_header_excludes_packet_data(tiles):
    data = get_codec("jpeg2000").encode(tiles[0], 2.0)
    header = get_codec("jpeg2000").header_size(data)
    assert data.index(b"\xff\x90") < header < len(data) // 2


def test_unavailable_codec_reports_reason_and_hint():
    def missing() -> str:
        raise ImportError("libfoo not found")

    ghost = Codec(  # an unavailable codec with a hint
        name="ghost", family="classical", description="", quality_name="", qualities=(1,),
        encode=lambda i, q: b"", decode=lambda b: None, header_size=len, rate_note="",
        library_version=missing, install_hint="pip install foo",
    )  # fmt: skip
    assert not ghost.available
    assert ghost.unavailable_reason == "libfoo not found; install: pip install foo"


def test_unknown_codec_lists_valid_names():
    with pytest.raises(KeyError, match="valid: jpeg"):
        get_codec("jpeg3000")


@pytest.mark.parametrize("shape", [(1, 1), (3, 50), (2, 200)])
def test_tiny_and_thin_images_round_trip(codec, shape):
    image = np.random.default_rng(5).integers(0, 256, (*shape, 3), dtype=np.uint8)
    decoded = codec.decode(codec.encode(image, codec.qualities[-1]))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
