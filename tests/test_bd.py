import math

import numpy as np
import pandas as pd
import pytest

from bench.bd import bd_pair, bd_table, winners

RATE = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
PSNR = np.array([28.0, 31.0, 34.5, 38.0, 41.0])


def test_identical_curves_have_zero_deltas():
    out = bd_pair(RATE, PSNR, RATE, PSNR)
    assert out["bd_rate"] == pytest.approx(0.0, abs=1e-9) and out["bd_metric"] == pytest.approx(0.0, abs=1e-9)
    assert out["overlap"] == pytest.approx(1.0)


def test_half_the_rate_for_the_same_quality_is_minus_50_percent():
    assert bd_pair(RATE, PSNR, RATE / 2, PSNR)["bd_rate"] == pytest.approx(-50.0, abs=1e-6)


def test_one_db_better_everywhere_is_plus_1_db():
    assert bd_pair(RATE, PSNR, RATE, PSNR + 1)["bd_metric"] == pytest.approx(1.0, abs=1e-9)


def test_curves_that_do_not_overlap_give_nan_not_extrapolation():
    out = bd_pair(RATE, PSNR, RATE * 100, PSNR + 30)
    assert math.isnan(out["bd_rate"]) and math.isnan(out["bd_metric"]) and out["overlap"] == 0


def test_repeated_rate_points_are_dropped_before_interpolation():
    rate = np.array([0.36, 0.36, 0.6, 1.0, 2.0])
    assert math.isfinite(bd_pair(RATE, PSNR, rate, np.array([23.0, 28.0, 31.5, 35.0, 39.0]))["bd_rate"])


def _summary(rows):
    return pd.DataFrame(rows, columns=["dataset", "codec", "quality", "bpp", "psnr", "ssim"])


def test_bd_table_and_winners():
    rows = [("d", "jpeg", q, r, p, p / 50) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    rows += [("d", "good", q, r / 2, p, p / 50) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    rows += [("d", "far", q, r * 100, p + 30, 0.99) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    table = bd_table(_summary(rows), anchor="jpeg").set_index("codec")
    assert table.loc["good", "bd_rate_psnr"] == pytest.approx(-50.0, abs=1e-6)
    assert math.isnan(table.loc["far", "bd_rate_psnr"])
    best = winners(_summary(rows), rates=(1.0,))
    assert list(best["codec"]) == ["good", "jpeg"]  # "far" does not reach 1 bpp: left out
