import math

import numpy as np
import pandas as pd
import pytest

from bench.bd import MIN_LOG_RATE_SPAN, bd_pair, bd_table, headline, strongest_classical, winners

RATE = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
PSNR = np.array([28.0, 31.0, 34.5, 38.0, 41.0])


def _pair(anchor_rate, anchor_quality, test_rate, test_quality, **kwargs):
    return bd_pair(anchor_rate, anchor_quality, test_rate, test_quality, min_quality_span=0.5, **kwargs)


def test_identical_curves_have_zero_deltas():
    out = _pair(RATE, PSNR, RATE, PSNR)
    assert out["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9) and out["bd_quality"] == pytest.approx(0.0, abs=1e-9)
    assert out["coverage_quality"] == pytest.approx(1.0) and out["coverage_rate"] == pytest.approx(1.0)
    assert out["note_rate"] == out["note_quality"] == "" and out["dropped"] == 0


def test_half_the_rate_for_the_same_quality_is_minus_50_percent():
    assert _pair(RATE, PSNR, RATE / 2, PSNR)["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)


def test_one_db_better_everywhere_is_plus_1_db():
    assert _pair(RATE, PSNR, RATE, PSNR + 1)["bd_quality"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_a_curve_inside_the_anchors_quality_range_at_a_tenth_of_its_rate_has_a_bd_rate_and_no_bd_quality(method):
    """The learned-codec case: PSNR 29.6–34.0 dB inside JPEG's 28–41 dB, rates far below JPEG's."""
    inside = np.array([29.6, 31.0, 32.5, 34.0])
    rate = np.interp(inside, PSNR, RATE) / 10  # exactly a tenth of the anchor's rate at every quality
    out = _pair(RATE, PSNR, rate, inside, method=method)
    assert out["bd_rate_pct"] == pytest.approx(-90.0, abs=0.5)
    assert out["coverage_quality"] == pytest.approx(1.0)  # all of the codec's own PSNR range is shared
    assert math.isnan(out["bd_quality"]) and out["note_quality"] == "no common rate interval"


def test_a_common_interval_below_the_minimum_is_refused_with_its_length():
    out = _pair(RATE, PSNR, np.array([0.1, 0.2]), np.array([27.0, 28.2]))  # shares 0.2 dB of PSNR
    assert math.isnan(out["bd_rate_pct"]) and out["note_rate"] == "common quality interval 0.2 < 0.5"
    sliver = _pair(RATE, PSNR, np.array([4.0 * 0.95, 4.0 * 1.05, 8.0]), np.array([40.0, 42.0, 45.0]))
    assert math.exp(0.0488) < math.exp(MIN_LOG_RATE_SPAN)
    assert math.isnan(sliver["bd_quality"]) and sliver["note_quality"].startswith("common rate interval ×1.05")


def test_curves_that_do_not_overlap_give_nan_with_reasons_not_extrapolation():
    out = _pair(RATE, PSNR, RATE * 100, PSNR + 30)
    assert math.isnan(out["bd_rate_pct"]) and math.isnan(out["bd_quality"])
    assert out["note_rate"] == "no common quality interval" and out["note_quality"] == "no common rate interval"
    assert out["coverage_quality"] == 0 and out["coverage_rate"] == 0


def test_points_dropped_for_monotonicity_are_counted():
    rate = np.array([0.36, 0.36, 0.6, 1.0, 2.0])
    out = _pair(RATE, PSNR, rate, np.array([23.0, 28.0, 31.5, 35.0, 39.0]))
    assert math.isfinite(out["bd_rate_pct"]) and out["dropped"] == 1


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="akima"):
        _pair(RATE, PSNR, RATE, PSNR, method="cubic")


def _summary(rows):
    frame = pd.DataFrame(rows, columns=["dataset", "codec", "family", "quality", "bpp", "bpp_payload", "psnr", "ssim"])
    return frame


def _curves():
    rows = [("d", "jpeg", "classical", q, r, r * 0.5, p, p / 50) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    rows += [("d", "webp", "classical", q, r * 0.8, r * 0.7, p, p / 50) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    rows += [("d", "good", "learned", q, r / 2, r / 2.2, p, p / 50) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    rows += [("d", "far", "learned", q, r * 100, r * 100, p + 30, 0.99) for q, (r, p) in enumerate(zip(RATE, PSNR))]
    return _summary(rows)


def test_bd_table_is_tidy_in_both_rate_views_and_names_the_strongest_classical_codec():
    summary = _curves()
    table = bd_table(summary, anchor="jpeg")
    assert set(table["rate"]) == {"bpp", "bpp_payload"} and set(table["quality_axis"]) == {"psnr", "ssim"}
    assert len(table) == 3 * 2 * 2  # codecs × rate views × quality axes
    assert headline(table)["good"] == pytest.approx(-50.0, abs=1e-6)
    assert headline(table)["webp"] == pytest.approx(-20.0, abs=1e-6)
    payload = table[(table["rate"] == "bpp_payload") & (table["quality_axis"] == "psnr")].set_index("codec")
    assert payload.loc["webp", "bd_rate_pct"] == pytest.approx(40.0, abs=1e-6)  # headers decide: 0.7 vs 0.5
    assert math.isnan(headline(table)["far"])
    assert strongest_classical(table, summary, "d") == "webp"
    against_webp = headline(bd_table(summary, anchor="webp"))
    assert against_webp["good"] == pytest.approx(-37.5, abs=1e-6)  # 0.5 / 0.8


def test_winners_in_either_rate_view():
    summary = _curves()
    best = winners(summary, rates=(1.0,))
    assert list(best["codec"])[:1] == ["good"] and "far" not in set(best["codec"])
    assert set(winners(summary, rates=(1.0,), rate="bpp_payload")["rate"]) == {"bpp_payload"}


def _per_image(codecs: dict[str, float], n: int = 60, noise: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """Per-image rows: each image's curve is PSNR = a·log(bpp) + image offset + codec offset + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(n):
        base = rng.normal(30, 2)
        for codec, offset in codecs.items():
            for rate in RATE:
                psnr = base + 4 * np.log(rate) + offset + rng.normal(0, noise)
                rows.append({"image": f"i{image}", "codec": codec, "bpp": rate, "psnr": psnr, "error": None})
    return pd.DataFrame(rows)


def test_a_real_lead_is_distinguishable_and_a_tie_is_not():
    from bench.bd import paired_lead

    lead = paired_lead(_per_image({"a": 1.0, "b": 0.0}), "a", "b", 1.0)
    assert lead["n"] == 60 and lead["win_share"] > 0.95 and lead["low_db"] < 1.0 < lead["high_db"]
    assert lead["distinguishable"]
    tie = paired_lead(_per_image({"a": 0.0, "b": 0.0}), "a", "b", 1.0)
    assert tie["low_db"] < 0 < tie["high_db"] and not tie["distinguishable"]


def _curves_per_image(rate_factor: float, n: int, seed: int, noise: float = 1.0) -> pd.DataFrame:
    """Per-image rows of an anchor and of a codec spending `rate_factor` × its rate for the same quality."""
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(n):
        base = rng.normal(30, 2)
        for quality, rate in enumerate(RATE):
            truth = base + 4 * np.log(rate)
            for codec, factor in (("anchor", 1.0), ("test", rate_factor)):
                rows.append({"dataset": "d", "image": f"i{image}", "label": f"c{image % 3}", "codec": codec,
                             "quality": quality, "bpp": rate * factor * np.exp(rng.normal(0, 0.02)),
                             "psnr": truth + rng.normal(0, noise), "error": None})  # fmt: skip
    return pd.DataFrame(rows)


def test_bootstrap_intervals_of_identical_codecs_contain_zero():
    from bench.bd import bootstrap_bd

    interval = bootstrap_bd(_curves_per_image(1.0, 40, seed=3), "anchor", resamples=200).iloc[0]
    assert interval["bd_rate_low"] < 0 < interval["bd_rate_high"]


def test_bootstrap_intervals_cover_the_true_bd_rate_at_about_the_nominal_rate():
    """Seeded simulation: 60 samples of 40 images, true BD-rate −20%; a 95% interval should miss ~3 of 60."""
    from bench.bd import bootstrap_bd

    covered = covered_quality = 0
    for seed in range(60):
        interval = bootstrap_bd(_curves_per_image(0.8, 40, seed=seed), "anchor", resamples=200, seed=seed).iloc[0]
        covered += interval["bd_rate_low"] <= -20.0 <= interval["bd_rate_high"]
        covered_quality += interval["bd_quality_low"] <= 4 * np.log(1 / 0.8) <= interval["bd_quality_high"]
    assert 51 <= covered <= 60, covered  # binomial(60, 0.95): 50 or fewer happens once in ~600 simulations
    assert 51 <= covered_quality <= 60, covered_quality  # the curves are 4·ln(1/0.8) dB apart at equal rate


def test_batched_bd_of_resamples_equals_bd_pair_row_by_row():
    """The bootstrap's vectorised PCHIP BD (`resampled_bd`) gives `bd_pair`'s (bjontegaard's) numbers, refusals included."""
    from bench.bd import bd_pair, resampled_bd

    rng = np.random.default_rng(7)
    rate = np.exp(np.linspace(-2, 1.5, 9))
    anchor_rate = rate * np.exp(rng.normal(0, 0.05, (120, 9)))
    anchor_quality = 30 + 4 * np.log(anchor_rate) + rng.normal(0, 0.4, (120, 9))
    test_rate = rate[:7] * 0.7 * np.exp(rng.normal(0, 0.05, (120, 7)))
    test_quality = 30 + 4 * np.log(test_rate / 0.7) + rng.normal(0, 0.4, (120, 7))
    test_quality[::17] += 40  # some rows with no common quality interval: refused in both
    anchor_quality[3, 4] = np.nan  # a missing point
    bd_rate, bd_quality = resampled_bd(anchor_rate, anchor_quality, test_rate, test_quality, min_quality_span=0.5)
    for row in range(120):
        expected = bd_pair(anchor_rate[row], anchor_quality[row], test_rate[row], test_quality[row], min_quality_span=0.5)
        np.testing.assert_allclose([bd_rate[row], bd_quality[row]], [expected["bd_rate_pct"], expected["bd_quality"]],
                                   rtol=1e-9, atol=1e-9, equal_nan=True)  # fmt: skip
    assert np.isnan(bd_rate[::17]).all() and np.isfinite(bd_rate[1:17]).all()


def test_bootstrap_gives_an_interval_to_every_bd_rate_and_bd_quality():
    from bench.bd import bd_pair, bootstrap_bd

    frame = _curves_per_image(0.8, 40, seed=1)
    frame["bpp_payload"] = frame["bpp"] * 0.9
    frame["ssim"] = 1 - 1 / frame["psnr"]
    intervals = bootstrap_bd(frame, "anchor", resamples=100)
    assert len(intervals) == 2 * 2  # two rate views × two quality axes
    assert intervals[["bd_rate_low", "bd_rate_high", "bd_quality_low", "bd_quality_high"]].notna().all().all()
    means = frame.groupby(["codec", "quality"])[["bpp", "psnr"]].mean()
    point = bd_pair(means.loc["anchor", "bpp"], means.loc["anchor", "psnr"], means.loc["test", "bpp"],
                    means.loc["test", "psnr"], min_quality_span=0.5)  # fmt: skip
    psnr = intervals[(intervals["rate"] == "bpp") & (intervals["quality_axis"] == "psnr")].iloc[0]
    assert psnr["bd_rate_low"] < point["bd_rate_pct"] < psnr["bd_rate_high"] < 0
    assert 0 < psnr["bd_quality_low"] < point["bd_quality"] < psnr["bd_quality_high"]


def _failing_jpeg(*, at_quality: float | None):
    """jpeg that fails on the busiest images (the hardest to code), at every quality or at `at_quality` only."""
    import dataclasses

    from bench.codecs import get_codec, register

    jpeg = get_codec("jpeg")

    def encode(image, quality):
        if image.std() > 20 and at_quality in (None, quality):
            raise RuntimeError("refused a busy image")
        return jpeg.encode(image, quality)

    register(dataclasses.replace(jpeg, name="jpegfail", description="jpeg failing on busy images", encode=encode))


@pytest.mark.parametrize("at_quality", [None, 50.0], ids=["every-point", "one-point"])
def test_points_where_images_failed_are_left_out_of_bd_and_verdicts(tmp_path, at_quality):
    """A codec that fails on the hard images has means over the easy ones: it must not win on them (it did, by
    −38.8% BD-rate "significant" against the very codec it wraps)."""
    from bench.run import Run
    from bench.runner import SweepConfig, sweep

    _failing_jpeg(at_quality=at_quality)
    qualities = (10.0, 30.0, 50.0, 70.0, 90.0)
    sweep(SweepConfig(datasets=["eurosat"], codecs=["jpeg", "jpegfail"], qualities={"jpeg": qualities, "jpegfail": qualities},
                      out=tmp_path, limit=30, jobs=1, progress=False, classify=False))  # fmt: skip
    run = Run(tmp_path, bootstrap=50)
    assert run.summary.loc[run.summary["codec"] == "jpegfail", "n_errors"].gt(0).sum() == (1 if at_quality else 5)
    row = headline_rows_of(run.bd("jpeg"), "jpegfail")
    if at_quality is None:  # nothing comparable is left
        assert math.isnan(row["bd_rate_pct"]) and "5 of its 5 points have failed images" in row["note_rate"]
    else:  # the other four points are the same jpeg: no difference, within the interval
        assert row["dropped"] >= 1 and abs(row["bd_rate_pct"]) < 0.5  # interpolated through 4 points, not 5
        assert -0.5 < row["bd_rate_low"] <= row["bd_rate_high"] < 0.5  # resampled over the same four points
    verdicts = winners(run.summary).pivot_table(index="bpp", columns="codec", values="psnr")
    if at_quality is None:
        assert "jpegfail" not in verdicts
    else:  # where it is ranked, it is ranked as what it is: jpeg
        both = verdicts.dropna()
        assert len(both) and (both["jpegfail"] - both["jpeg"]).abs().max() < 0.5


def headline_rows_of(bd: pd.DataFrame, codec: str) -> pd.Series:
    return bd[(bd["codec"] == codec) & (bd["rate"] == "bpp") & (bd["quality_axis"] == "psnr")].iloc[0]
