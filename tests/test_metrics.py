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
    assert value == pytest.approx(expected, rel=1e-9)


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
