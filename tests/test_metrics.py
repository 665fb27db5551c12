import math

import numpy as np
import pytest

from bench import metrics


def test_bpp_counts_native_pixels():
    assert metrics.bpp(512, (64, 64, 3)) == 1.0
    assert metrics.bpp(3, (1, 3)) == 8.0


def test_psnr_of_known_mse():
    reference = np.zeros((4, 4, 3), np.uint8)
    test = reference.copy()
    test[0, 0, 0] = 48  # one error of 48 over 48 samples: MSE = 48
    assert metrics.mse(reference, test) == pytest.approx(48.0)
    assert metrics.psnr(reference, test) == pytest.approx(10 * math.log10(255**2 / 48))


def test_psnr_of_identical_images_is_infinite():
    image = np.full((8, 8, 3), 7, np.uint8)
    assert metrics.psnr(image, image) == math.inf


def test_ssim_of_constant_images_is_the_luminance_term():
    # For constant images both variances and the covariance vanish, so SSIM
    # reduces to (2ab + C1) / (a² + b² + C1) with C1 = (0.01·255)².
    a, b = 100, 140
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    value = metrics.ssim(np.full((32, 32, 3), a, np.uint8), np.full((32, 32, 3), b, np.uint8))
    assert value == pytest.approx(expected, rel=1e-7)  # float32 filtering (see bench.metrics)


def test_ssim_identical_is_one_and_falls_with_noise(tiles):
    image = tiles[0]
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(image, noisy) < 0.95


def test_ms_ssim_is_nan_with_reason_on_small_images(tiles):
    assert math.isnan(metrics.ms_ssim(tiles[0], tiles[0]))
    assert metrics.missing_reasons(tiles[0].shape) == ["MS-SSIM undefined: short side 64 px < 161 px"]


def test_ssim_is_nan_when_its_window_does_not_fit():
    image = np.zeros((10, 300, 3), np.uint8)
    assert math.isnan(metrics.ssim(image, image))
    assert len(metrics.missing_reasons(image.shape)) == 2


def test_ms_ssim_on_large_images():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (170, 200, 3), dtype=np.uint8)
    assert metrics.missing_reasons(image.shape) == []
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(image.astype(int) + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ms_ssim(image, noisy) < 1


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


# --- the fused SSIM/MS-SSIM against the reference implementations (test-only dependencies) ---


def _skimage_ssim(reference, test):
    from skimage.metrics import structural_similarity

    return structural_similarity(reference, test, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)  # fmt: skip


def _pytorch_ms_ssim(reference, test):
    """pytorch-msssim in float64 with the exact Gaussian window.

    Its default window is computed and normalised in float32, which alone
    moves MS-SSIM by up to 1.4e-6 on noise images (4e-7 on Kodak).
    """
    import torch
    from pytorch_msssim import ms_ssim

    def tensor(image):
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).double()[None]

    taps = torch.exp(-(torch.arange(11, dtype=torch.float64) - 5) ** 2 / (2 * 1.5**2))
    window = (taps / taps.sum()).reshape(1, 1, 1, 11).repeat(3, 1, 1, 1)
    return float(ms_ssim(tensor(reference), tensor(test), data_range=255, win=window))


def _jpeg(image, quality):
    import imagecodecs

    return np.asarray(imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(image, level=quality)))


def _agrees(reference, test, tolerance=1e-6):
    """Within 1e-6 everywhere (flat or shifted synthetic images: ~2e-7 from float32 filtering); real
    decoded images are tested tighter: their errors are small, and so are the float32 terms (see bench.metrics)."""
    values = metrics.measure(reference, test)
    assert values["ssim"] == pytest.approx(_skimage_ssim(reference, test), abs=tolerance)
    if min(reference.shape[:2]) >= metrics.MS_SSIM_MIN_SIDE:
        assert values["ms_ssim"] == pytest.approx(_pytorch_ms_ssim(reference, test), abs=tolerance)
    else:
        assert math.isnan(values["ms_ssim"])


@pytest.mark.parametrize("quality", [5, 50, 95])
def test_fused_ssim_agrees_with_scikit_image_on_real_tiles(tiles, quality):
    for tile in tiles:
        _agrees(tile, _jpeg(tile, quality), tolerance=1e-7)


@pytest.mark.parametrize("quality", [10, 90])
def test_fused_ssim_and_ms_ssim_agree_on_kodak(shared_datasets, quality):
    from bench.images import read_rgb

    for name in ("kodim01.png", "kodim05.png", "kodim23.png"):
        image, _ = read_rgb(shared_datasets / "kodak" / name)
        _agrees(image, _jpeg(image, quality), tolerance=1e-7)


@pytest.mark.parametrize(
    "shape", [(11, 11, 3), (12, 17, 3), (64, 64, 3), (160, 300, 3), (161, 161, 3), (161, 200, 3), (175, 163, 3),
              (200, 322, 3),
              (74, 30, 3), (75, 30, 3), (138, 30, 3)],  # 64, 65 and 128 valid rows: the SSIM maps' strip edges
)  # fmt: skip
def test_fused_metrics_agree_on_random_images_at_every_size_edge(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(image + rng.normal(0, 25, shape), 0, 255).astype(np.uint8)
    _agrees(image, noisy)
    _agrees(image, image)


def test_fused_metrics_agree_on_flat_and_shifted_images():
    flat, other = np.full((170, 180, 3), 77, np.uint8), np.full((170, 180, 3), 90, np.uint8)
    _agrees(flat, other)
    _agrees(flat, flat)
    _agrees(flat, flat + 150)  # a pure shift: exactly what float32 filtering of e would cancel badly
    image = np.random.default_rng(3).integers(0, 100, (170, 180, 3), dtype=np.uint8)
    _agrees(image, image + 100)


def test_a_prepared_original_gives_the_same_values_for_every_decoded_version(tiles):
    """The cached moments and scratch space of one original must not leak from one comparison into the next."""
    image = np.concatenate([np.concatenate([tiles[0], tiles[1]], 1)] * 3, 0)  # 192×128: MS-SSIM too
    image = np.concatenate([image, image], 1)
    prepared = metrics.prepare(image)
    versions = [_jpeg(image, q) for q in (10, 40, 90)]
    shared = [metrics.measure(prepared, version) for version in versions]
    fresh = [metrics.measure(image, version) for version in versions]
    assert shared == fresh
    assert shared[0]["ssim"] < shared[1]["ssim"] < shared[2]["ssim"]


def test_every_metric_is_in_the_registry_with_its_direction():
    assert list(metrics.METRICS) == ["mse", "psnr", "psnr_y", "ssim", "ms_ssim"]
    assert not metrics.METRICS["mse"].higher_is_better and metrics.METRICS["psnr"].higher_is_better


def test_luma_psnr_is_bt601_luma_of_the_unrounded_weighted_sum(tiles):
    image, decoded = tiles[1], _jpeg(tiles[1], 30)
    luma = lambda a: a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    expected = 10 * math.log10(255**2 / np.mean((luma(image) - luma(decoded)) ** 2))
    assert metrics.measure(image, decoded)["psnr_y"] == pytest.approx(expected, abs=1e-4)
    assert metrics.measure(image, image)["psnr_y"] == math.inf


def test_a_registered_metric_reaches_rows_aggregate_report_and_gate(tmp_path):
    """psnr_y was added as one registry entry and its function: nothing else names it."""
    from bench.cli import main
    from bench.gate import TOLERANCES

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "20,80", "--limit", "3", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify"]) == 0  # fmt: skip
    import pandas as pd

    assert pd.read_csv(out / "results.csv")["psnr_y"].notna().all()
    assert {"psnr_y", "psnr_y_ci95"} <= set(pd.read_csv(out / "aggregate.csv").columns)
    assert "PSNR-Y (dB)" in (out / "report.md").read_text() and "psnr_y" in TOLERANCES
