import pytest

from bench.tasks.scores import accuracy, f1_weighted, rdai


def test_rdai_matches_the_paper_formula_by_hand():
    # 0.333*(1 - 0.2816/10) + 0.333*(49.14/60) + 0.333*0.937 (the seed's hyperprior row)
    assert rdai(0.2816, 49.14, 0.937) == pytest.approx(0.333 * 0.97184 + 0.333 * 0.819 + 0.333 * 0.937, abs=1e-12)
    assert rdai(0.0, 60.0, 1.0) == pytest.approx(0.999)


def test_weighted_f1_by_hand():
    labels = ["a", "a", "a", "b"]
    predicted = ["a", "a", "b", "b"]
    # class a: precision 1, recall 2/3 → F1 0.8 (support 3); class b: precision 1/2, recall 1 → F1 2/3 (support 1)
    assert f1_weighted(labels, predicted) == pytest.approx((3 * 0.8 + 1 * (2 / 3)) / 4)
    assert accuracy(labels, predicted) == 0.75


def test_accuracy_at_rates_interpolates_between_measured_points_and_never_extrapolates():
    import math

    import pandas as pd

    from bench.tables import at_rates

    summary = pd.DataFrame({
        "dataset": "d", "codec": ["a"] * 4 + ["b"] * 2,
        "bpp": [0.5, 1.0, 1.0, 2.0, 0.2, 0.3],
        "accuracy": [0.6, 0.8, 0.9, 0.8, 0.5, float("nan")],  # a: two points at 1 bpp; a dip from 1 to 2 bpp kept
    })  # fmt: skip
    table = at_rates(summary, ["accuracy"], rates=(0.25, 0.5, math.sqrt(0.5), 1.5, 2.0)).set_index(["codec", "bpp"])
    a = table.loc["a", "accuracy"]
    assert a[0.5] == 0.6 and a[math.sqrt(0.5)] == pytest.approx(0.725)  # half-way in log rate to 0.85
    assert a[1.5] == pytest.approx(0.85 - 0.05 * math.log(1.5) / math.log(2))  # 1 bpp: its two points averaged
    assert a[2.0] == 0.8 and math.isnan(a[0.25])
    assert table.loc["b", "accuracy"].isna().all()  # one scored point: no curve
