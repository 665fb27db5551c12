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
