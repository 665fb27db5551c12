"""The codec-adapted downstream protocol (`bench.tasks.adapt`), with tiny budgets."""

import sqlite3

import pandas as pd

from bench.cli import main
from bench.tasks.adapt import FOLDS, adapt, folds


def test_folds_are_stratified_seeded_and_cover_every_image():
    labels = pd.Series({f"{c}{i}": c for c in "abc" for i in range(7)})
    assigned = folds(labels, seed=3)
    assert assigned == folds(labels, seed=3) and set(assigned) == set(labels.index)
    for label in "abc":
        counts = pd.Series([assigned[i] for i in labels.index if labels[i] == label]).value_counts()
        assert set(counts.index) == set(range(FOLDS)) and counts.max() - counts.min() <= 1


def test_protocol_both_scores_every_row_with_a_model_that_never_saw_its_image(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,50,90", "--limit", "12", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--protocol", "both", "--adapt-steps", "3"]) == 0  # fmt: skip
    assert "adapted protocol: 72 predictions, 4 models trained, 0 reused" in capsys.readouterr().out
    rows = pd.read_csv(out / "results.csv")
    assert rows["predicted_adapted"].notna().all()
    cards = {path.stem: pd.read_json(path, typ="series") for path in (out / "adapted" / "eurosat").glob("*.json")}
    assert sorted(cards) == ["jpeg-fold0", "jpeg-fold1", "webp-fold0", "webp-fold1"]
    for codec in ("jpeg", "webp"):  # each fold's model trained on the other fold's images × 3 qualities: 12 × 3 in all
        assert cards[f"{codec}-fold0"]["train_tiles"] + cards[f"{codec}-fold1"]["train_tiles"] == 12 * 3
    summary = pd.read_csv(out / "aggregate.csv")
    assert {"accuracy_adapted", "accuracy_adapted_low", "f1_weighted_adapted", "rdai_adapted"} <= set(summary)
    assert (summary["n_scored_adapted"] == 12).all()
    assert "accuracy_adapted" in set(pd.read_csv(out / "bd.csv")["quality_axis"])
    report = (out / "report.md").read_text()
    assert "Two protocols" in report and "adapted accuracy" in report and "rd-eurosat-accuracy_adapted-bpp.png" in report
    with sqlite3.connect(out / "results.sqlite") as db:  # predictions lost: the saved models are reused
        db.execute("UPDATE results SET predicted_adapted = NULL WHERE codec = 'webp'")
    done = adapt(out, steps=3)
    assert (done.rows, done.trained, done.reused, done.size_mismatches) == (36, 0, 2, 0)
