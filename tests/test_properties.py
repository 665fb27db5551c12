"""Property-based checks (Hypothesis) of the metrics and the codec round trip."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench import metrics
from bench.codecs import CODECS

images = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda hw: arrays(np.uint8, (*hw, 3), elements=st.integers(0, 255))
)


@settings(deadline=None)
@given(images, st.data())
def test_psnr_and_ssim_are_symmetric_and_bounded(image, data):
    other = data.draw(arrays(np.uint8, image.shape, elements=st.integers(0, 255)))
    assert metrics.psnr(image, other) == metrics.psnr(other, image)
    assert metrics.psnr(image, image) == math.inf
    if min(image.shape[:2]) < metrics.SSIM_MIN_SIDE:
        assert math.isnan(metrics.ssim(image, other))
    else:
        value = metrics.ssim(image, other)
        assert -1.0 <= value <= 1.0 + 1e-6
        # symmetric in exact arithmetic; the fused SSIM filters the error in float32 (see bench.metrics)
        assert math.isclose(value, metrics.ssim(other, image), abs_tol=1e-6)


@settings(max_examples=25, deadline=None)
@given(images, st.sampled_from(["jpeg", "jpeg444", "webp", "avif", "jpegxl", "jpeg2000", "bpg"]), st.data())
def test_round_trip_keeps_shape_for_any_size_and_content(image, name, data):
    codec = CODECS[name]
    quality = data.draw(st.sampled_from(codec.qualities))
    decoded = codec.decode(codec.encode(image, quality))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
