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
    assert "Accuracy at equal rate (fixed / adapted;" in report
    with sqlite3.connect(out / "results.sqlite") as db:  # predictions lost: the saved models are reused
        db.execute("UPDATE results SET predicted_adapted = NULL WHERE codec = 'webp'")
    done = adapt(out, steps=3)
    assert (done.rows, done.trained, done.reused, done.size_mismatches) == (36, 0, 2, 0)


def _forget(out, codec=None):
    """Drop the run's adapted predictions (of one codec) and the saved models, as if adaptation never ran."""
    import shutil

    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("UPDATE results SET predicted_adapted = NULL" + (f" WHERE codec = '{codec}'" if codec else ""))
    shutil.rmtree(out / "adapted", ignore_errors=True)


def _predictions(out):
    with sqlite3.connect(out / "results.sqlite") as db:
        return sorted(db.execute("SELECT image, codec, quality, predicted_adapted FROM results"))


def test_folds_run_in_parallel_workers_with_the_same_predictions_and_a_crash_costs_one_fold(tmp_path, monkeypatch):
    import os

    from bench.tasks import adapt as adapt_module

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,90", "--limit", "12", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--no-report", "--protocol", "both", "--adapt-steps", "3"]) == 0  # fmt: skip
    serial = _predictions(out)
    _forget(out)
    assert adapt(out, steps=3, jobs=2).trained == 4
    assert _predictions(out) == serial  # seeded: workers change nothing

    _forget(out)
    original = adapt_module.adapt_fold

    def crashes_on_webp_fold1(job):
        if job.codec == "webp" and job.card["fold"] == 1:
            os._exit(3)  # a native crash in the worker
        return original(job)

    monkeypatch.setattr(adapt_module, "adapt_fold", crashes_on_webp_fold1)
    done = adapt(out, steps=3, jobs=2)
    assert done.trained == 3 and len(done.failures) == 1
    assert done.failures[0].startswith("eurosat webp fold 1: crash: worker process died (exit code 3)")
    labels = pd.read_csv(out / "results.csv").drop_duplicates("image").set_index("image")["label"]
    in_fold1 = sorted(image for image, fold in folds(labels, seed=0).items() if fold == 1)
    missing = [row for row in _predictions(out) if row[3] is None]  # that fold's images × 2 qualities, webp only
    assert sorted((image, codec) for image, codec, _, _ in missing) == sorted([(i, "webp") for i in in_fold1] * 2)
    monkeypatch.setattr(adapt_module, "adapt_fold", original)
    retried = adapt(out, steps=3, jobs=2)  # running again retries only the failed fold
    assert (retried.trained, retried.reused, retried.rows, retried.failures) == (1, 0, len(missing), [])
    assert _predictions(out) == serial
