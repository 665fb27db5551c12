"""Image-quality and rate metrics: NumPy arrays in, floats out.

All distortion metrics compare two RGB uint8 images of the same shape
(H×W×3), computed on the full image over all three channels with a data range
of 255, one value per image.
"""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP_DB = 100.0
"""Aggregates replace an infinite PSNR (identical images) by this value."""

SSIM_MIN_SIDE = 11
"""SSIM's 11×11 Gaussian window (σ = 1.5, truncated at 3.5σ) must fit in the image."""

MS_SSIM_MIN_SIDE = 161
"""MS-SSIM's five scales with an 11-pixel window need a short side above 160 px."""


def bpp(n_bytes: int, shape: tuple[int, ...]) -> float:
    """Bits per pixel of `n_bytes` for an image of `shape` (H, W, …), native pixels."""
    height, width = shape[:2]
    return 8.0 * n_bytes / (height * width)


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    _check_pair(reference, test)
    diff = reference.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(data_range² / MSE)``.

    MSE is taken over all pixels of all three channels together (RGB PSNR).
    Identical images give ``+inf``; aggregates cap it at `PSNR_CAP_DB`.
    """
    error = mse(reference, test)
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / error)


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004), mean over channels.

    scikit-image's `structural_similarity` with the paper's parameters:
    11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, population
    (not sample) covariance, data range 255, each RGB channel separately
    and then averaged. NaN when the window does not fit (short side below
    `SSIM_MIN_SIDE`).
    """
    from skimage.metrics import structural_similarity

    _check_pair(reference, test)
    if min(reference.shape[:2]) < SSIM_MIN_SIDE:
        return math.nan
    return float(
        structural_similarity(
            reference,
            test,
            data_range=255,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def missing_reasons(shape: tuple[int, ...]) -> list[str]:
    """Why SSIM or MS-SSIM is undefined (NaN) for an image of `shape`; empty when both are defined."""
    short = min(shape[:2])
    return [
        f"{name} undefined: short side {short} px < {minimum} px"
        for name, minimum in (("SSIM", SSIM_MIN_SIDE), ("MS-SSIM", MS_SSIM_MIN_SIDE))
        if short < minimum
    ]


def ms_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Multi-scale SSIM (Wang et al. 2003): five scales, the paper's weights.

    Computed with pytorch-msssim (11×11 Gaussian window, σ = 1.5, data range
    255) on RGB. NaN when the image is too small (short side below
    `MS_SSIM_MIN_SIDE`).
    """
    _check_pair(reference, test)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def as_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]

    with torch.no_grad():
        return float(_ms_ssim(as_tensor(reference), as_tensor(test), data_range=255, size_average=True))


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape}, test {test.shape}")
    if reference.dtype != np.uint8 or test.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {reference.dtype} and {test.dtype}")
