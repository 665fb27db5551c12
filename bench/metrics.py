"""Image-quality metrics: one registry, one fused SSIM/MS-SSIM, NumPy arrays in, floats out.

Every distortion metric compares two RGB uint8 images of the same shape
(H×W×3) at native resolution, over all three channels, data range 255, one
value per image. A sweep measures many decoded versions of one original, so
the original is prepared once (`prepare`): its MS-SSIM pyramid, its Gaussian
moments at each scale (μ, σ²) and whatever a metric derives from it alone
(`Reference.derived`) are computed at most once per image and shared by every
codec and quality.

SSIM and MS-SSIM come from one implementation of the SSIM maps (Wang et al.
2004; MS-SSIM: Wang et al. 2003): 11×11 Gaussian window, σ = 1.5, K1 = 0.01,
K2 = 0.03, population covariance, each channel separately, statistics over
the region where the window fits (what scikit-image crops, what
pytorch-msssim's valid convolution keeps). Agreement with scikit-image's
`structural_similarity` and pytorch-msssim's `ms_ssim` in float64 (test
references, not used here) is tested to 1e-7 on real decoded images (seen:
≤ 3e-9 on Kodak) and to 1e-6 on synthetic ones.

Why it is fast and still that exact: the maps are written in terms of
the error e = y − x. With the original's moments μx, σx² (float64, once per
image), the decoded image's are μy = μx + G*e, σxy = σx² + cov(x, e) and
σy² = σx² + 2·cov(x, e) + σe², so both factors take one form, n / (n + d):

    luminance = L / (L + (G*e)²),   L = 2μx² + C1 + 2μx·G*e = 2μxμy + C1
    contrast  = K / (K + σe²),      K = 2σx² + C2 + 2·cov(x, e) = 2σxy + C2

where 2μx² + C1 and 2σx² + C2 belong to the original alone. The three
filtered products per pair (G*e, G*(x·e), G*(e²)) scale with the error, not
with 255², so float32 filtering (4× faster than float64) loses nothing that
matters; filtering x² and y² in float32, as the textbook formula does, is
off by 1e-6 to 1e-4 from cancellation in E[y²] − μy². The maps are computed
in strips of rows that stay in cache, over whole rows (contiguous), and the
invalid columns are left out only where they are summed: elementwise work on
cropped views runs ~2× slower.

To add a metric: write ``def _name(pair: Pair) -> float`` and add a
`Metric` to `METRICS`; rows, database, aggregates, BD tables, the gate and
reports loop over the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

PSNR_CAP_DB = 100.0
"""Aggregates replace an infinite PSNR (identical images) by this value."""

SSIM_MIN_SIDE = 11
"""SSIM's 11×11 Gaussian window (σ = 1.5, truncated at 3.5σ) must fit in the image."""

MS_SSIM_MIN_SIDE = 161
"""MS-SSIM's five scales with an 11-pixel window need a short side above 160 px."""

_RADIUS = 5  # 11-tap window: scikit-image's int(3.5·σ + 0.5) for σ = 1.5
_TAPS = np.exp(-((np.arange(-_RADIUS, _RADIUS + 1)) ** 2) / (2 * 1.5**2))
_WINDOW = _TAPS / _TAPS.sum()
_WINDOWS = {np.dtype(np.float32): _WINDOW.astype(np.float32), np.dtype(np.float64): _WINDOW}
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang et al. 2003's per-scale exponents, finest scale first."""


def bpp(n_bytes: int, shape: tuple[int, ...]) -> float:
    """Bits per pixel of `n_bytes` for an image of `shape` (H, W, …), native pixels."""
    height, width = shape[:2]
    return 8.0 * n_bytes / (height * width)


def _blur(image: np.ndarray) -> np.ndarray:
    """The 11×11 Gaussian mean around each pixel of `image` (same shape and float type).

    Only pixels around which the whole window fits are used (the valid region, as scikit-image crops it), so
    the border mode, which touches the 5-px band outside it, is irrelevant.
    """
    import cv2

    window = _WINDOWS[image.dtype]
    return cv2.sepFilter2D(image, -1, window, window, borderType=cv2.BORDER_REFLECT).reshape(image.shape)


def _halve(image: np.ndarray) -> np.ndarray:
    """2×2 average pooling with pytorch-msssim's zero padding of odd sides (``avg_pool2d(padding=s % 2)``)."""
    import cv2

    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if not (pad_h or pad_w) and image.shape[2] <= 4:  # area resize by exactly 1/2 is the 2×2 mean, ~4× faster
        halved = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return halved.reshape(*halved.shape[:2], image.shape[2])
    image = np.pad(image, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    image = image[:height, :width]
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def _add_per_channel(values: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    import cv2

    if values.shape[2] <= 4:  # NumPy's broadcast over a last axis of 3 runs ~10× slower than cv2's scalar add
        return cv2.add(values, (*amounts.tolist(), 0.0)[:4]).reshape(values.shape)
    return values + amounts.astype(values.dtype)


def _channel_sums(values: np.ndarray) -> np.ndarray:
    """Per-channel float64 sums of an H×W×C array (cv2.sumElems: one pass, ~20× NumPy's sum over two axes)."""
    import cv2

    if values.shape[2] <= 4:
        return np.array(cv2.sumElems(values)[: values.shape[2]])
    return values.sum(axis=(0, 1), dtype=np.float64)


def _channel_means(values: np.ndarray) -> np.ndarray:
    return _channel_sums(values) / (values.shape[0] * values.shape[1])


def _times(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``scale·a·b`` in one pass (cv2.multiply: ~2× NumPy's product and scaling as two passes)."""
    import cv2

    return cv2.multiply(a, b, scale=scale).reshape(a.shape)


def _ratio(numerator: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``numerator / (numerator + rest)``; `rest` is overwritten."""
    rest += numerator
    return np.divide(numerator, rest, out=rest)


@dataclasses.dataclass(frozen=True)
class _Scale:
    """One scale of an original: the image and the parts of the SSIM maps that depend on it alone."""

    image: np.ndarray  # float32, H×W×C; exact: 2×2 means of 8-bit samples need at most 16 bits of mantissa

    @functools.cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        wide = self.image.astype(np.float64)
        mean = _blur(wide)
        return mean, _blur(wide * wide) - mean * mean

    @functools.cached_property
    def mean(self) -> np.ndarray:
        return self._moments[0].astype(np.float32)

    @functools.cached_property
    def luminance_base(self) -> np.ndarray:
        """2μx² + C1: with μy = μx + G*e, 2μxμy + C1 = this + 2μx·G*e."""
        mean = self._moments[0]
        return (2 * mean * mean + _C1).astype(np.float32)

    @functools.cached_property
    def contrast_base(self) -> np.ndarray:
        """2σx² + C2: with σxy = σx² + cov(x, e), 2σxy + C2 = this + 2·cov(x, e)."""
        return (2 * self._moments[1] + _C2).astype(np.float32)


class Reference:
    """An original image prepared for measuring many decoded versions of it."""

    def __init__(self, image: np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"expected an H×W×C uint8 image, got {image.shape} {image.dtype}")
        self.image = image
        self._scales: list[_Scale] = []
        self._derived: dict[str, object] = {}

    def derived(self, name: str, compute: Callable[[np.ndarray], object]) -> object:
        """``compute(image)``, once per original: a metric keeps what depends on the original alone here."""
        if name not in self._derived:
            self._derived[name] = compute(self.image)
        return self._derived[name]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.shape

    def scale(self, level: int) -> _Scale:
        """The original at MS-SSIM scale `level` (0: native), with its moments."""
        while len(self._scales) <= level:
            below = self._scales[-1].image if self._scales else None
            image = self.image.astype(np.float32) if below is None else _halve(below)
            self._scales.append(_Scale(image))
        return self._scales[level]


def prepare(image: np.ndarray) -> Reference:
    """`image` (H×W×3 uint8) ready to be compared with many decoded versions."""
    return Reference(np.ascontiguousarray(image))


class Pair:
    """An original and one decoded version; intermediate results shared by the metrics are computed once."""

    def __init__(self, reference: Reference | np.ndarray, test: np.ndarray):
        self.reference = reference if isinstance(reference, Reference) else prepare(reference)
        _check_pair(self.reference.image, test)
        self.test = np.ascontiguousarray(test)

    @functools.cached_property
    def squared_error(self) -> float:
        """Sum of squared sample differences, exact: OpenCV sums 8-bit differences in integers.

        Its double result can be off by an ulp (≪ 0.5 below 2⁵² ≈ 7e10 samples), hence the rounding.
        """
        import cv2

        return float(round(cv2.norm(self.reference.image, self.test, cv2.NORM_L2SQR)))

    @functools.cached_property
    def ssim_terms(self) -> tuple[np.ndarray, ...]:
        """Per-channel means of the SSIM map at scale 0 and, where MS-SSIM is defined, of its factors.

        ``(ssim₀,)`` below `MS_SSIM_MIN_SIDE`, else ``(ssim₀, cs₀, cs₁, cs₂, cs₃, ssim₄)``:
        Wang et al. 2003 weight the luminance term at the coarsest scale only.
        """
        import cv2

        levels = len(MS_SSIM_WEIGHTS) if min(self.test.shape[:2]) >= MS_SSIM_MIN_SIDE else 1
        terms, error = [], None
        for level in range(levels):
            scale = self.reference.scale(level)
            # the error image at each scale: 2×2 means are linear, so halving e is e of the halved images
            if level == 0:
                error = cv2.subtract(self.test, self.reference.image, dtype=cv2.CV_32F).reshape(self.test.shape)
            else:
                error = _halve(error)
            ssim, contrast = _ssim_means(scale, error, with_luminance=level in (0, levels - 1))
            if level == 0:
                terms.append(ssim)
            if levels > 1:
                terms.append(ssim if level == levels - 1 else contrast)
        return tuple(terms)


_STRIP_ROWS = 64
"""Rows of the SSIM maps computed at a time: a strip's arrays stay in cache (Kodak pair: 11.4 → 10.0 ms)."""


def _ssim_means(scale: _Scale, error: np.ndarray, *, with_luminance: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-channel means over the valid region of the SSIM map (None unless `with_luminance`) and of its
    contrast-structure factor, for original + `error` at one scale."""
    # (Co)variances do not change when a constant is taken off e. Taking off its mean keeps the float32
    # E[e²] − (G*e)² and G*(x·e) − μx·G*e from cancelling where the error is a shift (a flat image
    # brightened by 100 levels: 1e-5 off without it, exact with it).
    offset = _channel_means(error)
    height = error.shape[0] - 2 * _RADIUS
    ssim_sum, contrast_sum = np.zeros(error.shape[2]), np.zeros(error.shape[2])
    for top in range(0, height, _STRIP_ROWS):
        rows = slice(top, min(top + _STRIP_ROWS, height))
        luminance, contrast = _ssim_factors(scale, error, offset, rows, with_luminance=with_luminance)
        contrast_sum += _channel_sums(contrast[:, _RADIUS:-_RADIUS])
        if with_luminance:
            ssim_sum += _channel_sums(_times(luminance, contrast)[:, _RADIUS:-_RADIUS])
    count = height * (error.shape[1] - 2 * _RADIUS)
    return (ssim_sum / count if with_luminance else None), contrast_sum / count


def _ssim_factors(scale: _Scale, error: np.ndarray, offset: np.ndarray, rows: slice, *,
                  with_luminance: bool) -> tuple[np.ndarray | None, np.ndarray]:  # fmt: skip
    """The luminance (None unless `with_luminance`) and contrast-structure maps of original + `error` at one
    scale, on valid rows `rows` (counted from the first valid row) and every column (the callers leave out
    the 5 invalid ones at each side).

    Each as a ratio n / (n + d) with no cancellation beyond the textbook formula's own: as 1 − d / (n + d), a
    small factor (very unlike images) would lose its digits in float32.
    """
    window = slice(rows.start, rows.stop + 2 * _RADIUS)  # the input rows the strip's windows cover
    centre = slice(rows.start + _RADIUS, rows.stop + _RADIUS)  # the strip's rows in the image
    error = _add_per_channel(error[window], -offset)
    mean_error = _blur(error)[_RADIUS:-_RADIUS]
    error_variance = _blur(_times(error, error))[_RADIUS:-_RADIUS]
    error_variance -= _times(mean_error, mean_error)  # σe²
    mean_x = scale.mean[centre]
    contrast = _blur(_times(scale.image[window], error))[_RADIUS:-_RADIUS]
    contrast -= _times(mean_x, mean_error)  # cov(x, e) = G*(x·e) − μx·G*e
    contrast *= 2
    contrast += scale.contrast_base[centre]  # K = 2σxy + C2
    contrast = _ratio(contrast, error_variance)
    if not with_luminance:
        return None, contrast
    mean_error = _add_per_channel(mean_error, offset)  # G*e = μy − μx
    luminance = _times(mean_x, mean_error, 2.0)
    luminance += scale.luminance_base[centre]  # L = 2μxμy + C1
    return _ratio(luminance, _times(mean_error, mean_error)), contrast


def _mse(pair: Pair) -> float:
    return pair.squared_error / pair.test.size


def _psnr_of(mse: float) -> float:
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def _psnr(pair: Pair) -> float:
    return _psnr_of(_mse(pair))


_LUMA = np.array([[0.299, 0.587, 0.114]], np.float32)  # BT.601 Y′ from R′G′B′, as JPEG, BPG and HEVC test sets use


def _psnr_y(pair: Pair) -> float:
    """PSNR of BT.601 luma (Y′ = 0.299 R + 0.587 G + 0.114 B, unrounded), data range 255: what codec papers report."""
    import cv2

    if pair.test.shape[2] != 3:
        return math.nan

    def luma(image: np.ndarray) -> np.ndarray:
        return cv2.transform(image.astype(np.float32), _LUMA)

    reference = pair.reference.derived("luma", luma)
    return _psnr_of(cv2.norm(reference, luma(pair.test), cv2.NORM_L2SQR) / reference.size)


def _ssim(pair: Pair) -> float:
    if min(pair.test.shape[:2]) < SSIM_MIN_SIDE:
        return math.nan
    return float(pair.ssim_terms[0].mean())


def _ms_ssim(pair: Pair) -> float:
    if min(pair.test.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    # pytorch-msssim: contrast-structure of scales 1–4 and SSIM of scale 5, each relu'd, weighted product per channel
    factors = np.maximum(np.stack(pair.ssim_terms[1:]), 0.0) ** np.array(MS_SSIM_WEIGHTS)[:, None]
    return float(np.prod(factors, axis=0).mean())


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-image quality metric and everything tables, BD, the gate and reports need to know of it.

    Attributes:
        name: column name in rows, the database and tables.
        label: axis and column label for people.
        unit: unit of its values ("" when unitless).
        compute: ``compute(pair) -> float``.
        higher_is_better: its direction.
        tolerance: the gate's default tolerated worsening of a point's mean (absolute, in `unit`).
        bd_axis: whether BD-rates are computed against it.
        bd_min_span: shortest common interval of two curves on this axis that a BD-rate is computed over.
        min_side: shortest image side it is defined for (NaN below it).
        cap: value that replaces +inf in means (PSNR of identical images), None when it cannot be infinite.
        shown: whether reports show it (MSE is stored and aggregated, but PSNR says the same to a reader).
    """

    name: str
    label: str
    unit: str
    compute: Callable[[Pair], float] = dataclasses.field(repr=False)
    higher_is_better: bool = True
    tolerance: float = 0.0
    bd_axis: bool = False
    bd_min_span: float = 0.0
    min_side: int = 1
    cap: float | None = None
    shown: bool = True


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("mse", "MSE", "", _mse, higher_is_better=False, shown=False),
        Metric("psnr", "PSNR", "dB", _psnr, tolerance=0.02, bd_axis=True, bd_min_span=0.5, cap=PSNR_CAP_DB),
        Metric("psnr_y", "PSNR-Y", "dB", _psnr_y, tolerance=0.02, cap=PSNR_CAP_DB),
        Metric("ssim", "SSIM", "", _ssim, tolerance=0.0005, bd_axis=True, bd_min_span=0.005, min_side=SSIM_MIN_SIDE),
        Metric("ms_ssim", "MS-SSIM", "", _ms_ssim, tolerance=0.0005, bd_axis=True, bd_min_span=0.005,
               min_side=MS_SSIM_MIN_SIDE),
    )
}


def measure(reference: Reference | np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Every registered metric of `test` against `reference`, by name."""
    pair = Pair(reference, test)
    return {name: metric.compute(pair) for name, metric in METRICS.items()}


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    return _mse(Pair(reference, test))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """RGB PSNR in dB, ``10·log10(255² / MSE)``; ``+inf`` for identical images (means cap it at `PSNR_CAP_DB`)."""
    return _psnr(Pair(reference, test))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """SSIM, mean over channels; NaN when the 11-px window does not fit."""
    return _ssim(Pair(reference, test))


def ms_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Five-scale MS-SSIM, mean over channels; NaN below `MS_SSIM_MIN_SIDE`."""
    return _ms_ssim(Pair(reference, test))


def missing_reasons(shape: tuple[int, ...]) -> list[str]:
    """Why registered metrics are undefined (NaN) for an image of `shape`; empty when all are defined."""
    short = min(shape[:2])
    return [
        f"{metric.label} undefined: short side {short} px < {metric.min_side} px"
        for metric in METRICS.values()
        if short < metric.min_side
    ]


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape}, test {test.shape}")
    if reference.dtype != np.uint8 or test.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {reference.dtype} and {test.dtype}")
