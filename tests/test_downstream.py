"""Downstream accuracy: predicted labels per row, test-split scores per codec point, the committed classifier."""

import json

import numpy as np
import pytest
import torch

from bench.codecs import checkpoints
from bench.datasets import load_dataset
from bench.runner import SweepConfig, sweep
from bench.tables import aggregate, original_accuracy, results
from bench.tasks import classifier


@pytest.fixture
def toy_classifier(tmp_path, monkeypatch):
    """A randomly initialised classifier with a valid card, in a temporary folder."""
    classes = load_dataset("eurosat").classes
    torch.manual_seed(0)
    model = classifier.build(len(classes))
    path = tmp_path / "classifier" / "eurosat.pt"
    path.parent.mkdir()
    torch.save({"state_dict": model.state_dict()}, path)
    card = {"network": classifier.DEFAULT_NETWORK, "classes": classes, "mean": [0.5] * 3, "std": [0.25] * 3,
            "sha256": checkpoints.sha256_of(path)}
    path.with_suffix(".json").write_text(json.dumps(card))
    monkeypatch.setattr(classifier, "CLASSIFIER_DIR", path.parent)
    classifier.load.cache_clear()
    yield classifier.load("eurosat")
    classifier.load.cache_clear()


def test_rows_carry_predictions_and_points_carry_scores_of_unseen_images(toy_classifier, tmp_path, monkeypatch):
    from bench.datasets import base

    sample = load_dataset("eurosat").select("all", 40)
    pretend_seen = frozenset(r.id for r in sample[::4])  # as if a committed model had trained on these 10
    monkeypatch.setattr(base, "seen_by_models", lambda name: pretend_seen)
    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (10.0, 90.0)}, out=tmp_path / "a",
                         limit=40, jobs=2, progress=False)  # fmt: skip
    sweep(config)
    frame = results(tmp_path / "a")
    assert frame["predicted"].isin(toy_classifier.classes).all()
    assert frame["predicted_original"].isin(toy_classifier.classes).all()
    assert set(frame.loc[frame["seen"] == 1, "image"]) == pretend_seen
    summary = aggregate(frame)
    assert (summary["n_scored"] == 30).all() and (summary["n_images"] == 30).all()  # seen rows left out
    unseen = frame[(frame["seen"] == 0) & (frame["quality"] == 10.0)]
    accuracy = summary.loc[summary["quality"] == 10.0, "accuracy"].item()
    assert accuracy == pytest.approx(float(np.mean(unseen["label"] == unseen["predicted"])))
    low, high = summary.loc[summary["quality"] == 10.0, ["accuracy_low", "accuracy_high"]].iloc[0]
    assert low < accuracy < high or accuracy in (0.0, 1.0)
    kept = aggregate(frame, include_seen=True)  # distortion means keep seen images; accuracy never counts them
    assert (kept["n_images"] == 40).all() and (kept["n_scored"] == 30).all()
    assert summary["rdai"].between(0, 1).all()
    assert original_accuracy(frame)["n_scored"].item() == 30
    # the same seeds give the same accuracies again
    sweep(SweepConfig(**{**config.__dict__, "out": tmp_path / "b"}))
    again = aggregate(results(tmp_path / "b"))
    assert list(again["accuracy"]) == list(summary["accuracy"])


def test_a_labelled_folder_is_scored_on_every_image(toy_classifier, tmp_path, monkeypatch):
    """A user's own held-out folder: no manifest, so nothing in it was seen, and every image counts."""
    import shutil

    from bench.datasets.eurosat import SAMPLE_DIR

    for name in ("Forest", "River"):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for path in sorted((SAMPLE_DIR / name).glob("*.jpg"))[:6]:
            shutil.copy(path, tmp_path / "mine" / name)
    sweep(SweepConfig(datasets=[f"folder:{tmp_path / 'mine'}"], codecs=["jpeg"], qualities={"jpeg": (50.0,)},
                      out=tmp_path / "run", jobs=1, progress=False))  # fmt: skip
    summary = aggregate(results(tmp_path / "run"))
    assert summary["n_scored"].item() == 12 and 0 <= summary["accuracy"].item() <= 1


def test_wilson_interval():
    from bench.stats import wilson_interval

    low, high = wilson_interval(1, 1)
    assert 0.2 < low < 0.21 and high == pytest.approx(1.0)  # one image: [0.207, 1], not "1.000"
    low, high = wilson_interval(95, 100)
    assert low == pytest.approx(0.8882, abs=1e-3) and high == pytest.approx(0.9785, abs=1e-3)


def test_originals_are_classified_once_per_process(toy_classifier, monkeypatch):
    from bench.measure import Task, evaluate

    batches = []
    predict = classifier.Classifier.predict

    def counting(self, images):
        batches.append(len(images))
        return predict(self, images)

    monkeypatch.setattr(classifier.Classifier, "predict", counting)
    records = tuple(load_dataset("eurosat").select("all", 4))
    first = evaluate(Task("eurosat", records, (("jpeg", 50.0),), classifier="eurosat"))
    second = evaluate(Task("eurosat", records, (("jpeg", 90.0),), classifier="eurosat"))
    assert batches == [4, 4, 4]  # the originals once, then each task's decoded images
    assert [r["predicted_original"] for r in first] == [r["predicted_original"] for r in second]
    assert all(r["predicted"] in toy_classifier.classes for r in first + second)


def test_no_classifier_means_no_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "CLASSIFIER_DIR", tmp_path / "none")
    classifier.load.cache_clear()
    sweep(SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path, limit=5,
                      jobs=1, progress=False))  # fmt: skip
    summary = aggregate(results(tmp_path))
    assert summary["accuracy"].isna().all() and (summary["n_scored"] == 0).all()
    classifier.load.cache_clear()


def test_committed_classifier_reproduces_its_card(shared_datasets):
    loaded = classifier.load("eurosat")
    if loaded is None:
        pytest.skip("no committed EuroSAT classifier")
    card = json.loads(loaded.path.with_suffix(".json").read_text())
    from bench.images import read_rgb

    records = load_dataset("eurosat", shared_datasets).select("test")
    predicted = []
    for start in range(0, len(records), 256):
        predicted += loaded.predict([read_rgb(r.path)[0] for r in records[start : start + 256]])
    accuracy = float(np.mean([p == r.label for p, r in zip(predicted, records)]))
    assert len(records) == card["test_images"]
    assert accuracy == pytest.approx(card["test_accuracy"]["original"], abs=5e-6)  # the card keeps 5 decimals


def test_dihedral_views_make_predictions_invariant_to_turns_and_mirrors(toy_classifier):
    import dataclasses

    tiles = list(np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8))
    averaged = dataclasses.replace(toy_classifier, views="dihedral-8")
    expected = averaged.predict(tiles)
    assert averaged.predict([np.rot90(t) for t in tiles]) == expected
    assert averaged.predict([t[:, ::-1] for t in tiles]) == expected
    # one view is the network alone
    with torch.no_grad():
        alone = toy_classifier.model(toy_classifier.inputs(tiles)).argmax(1).tolist()
    assert toy_classifier.predict(tiles) == [toy_classifier.classes[i] for i in alone]


def test_views_are_chosen_on_val_and_written_into_the_card(toy_classifier, labelled_folder):
    from bench.assets import CommittedAsset

    path = toy_classifier.path
    card = json.loads(path.with_suffix(".json").read_text())
    card.update(dataset="eurosat", split_seed=0, val_accuracy={"original": 0.1}, test_accuracy={"original": 0.1})
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CommittedAsset):  # the fixture's folder stands for the committed one
        classifier.select_views(path)
    path.with_suffix(".json").write_text(json.dumps({**card, "dataset": labelled_folder}))  # has val and test tiles
    card = classifier.select_views(path, force=True)
    assert card["views"] in classifier.VIEWS and set(card["views_val_accuracy"]) == set(classifier.VIEWS)
    assert card["val_accuracy"] == card["views_val_accuracy"][card["views"]]
    assert set(card["test_accuracy"]) == {"original", "jpeg q50", "webp q50"}
    assert card["val_accuracy_one_view"] == {"original": 0.1}  # the one-view numbers stay beside
    means = {views: np.mean(list(accuracies.values())) for views, accuracies in card["views_val_accuracy"].items()}
    best, n_val = max(means.values()), 3 * len(load_dataset(labelled_folder).select("val"))
    within_one_error = [v for v in classifier.VIEWS if means[v] >= best - np.sqrt(best * (1 - best) / n_val)]
    assert card["views"] == within_one_error[0]  # the fewest views that are as good as the best, within noise
    classifier.load.cache_clear()
    assert classifier.load("eurosat").views == card["views"]


def test_a_run_resumed_with_another_classifier_is_refused(toy_classifier, tmp_path):
    from bench.runner import RunMismatch

    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path / "run",
                         limit=6, jobs=1, progress=False)  # fmt: skip
    sweep(config)
    assert results(tmp_path / "run")["classifier"].eq(toy_classifier.identity).all()
    card_path = toy_classifier.path.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "views": "flips-4"}))
    classifier.load.cache_clear()
    more = SweepConfig(**{**config.__dict__, "qualities": {"jpeg": (50.0, 90.0)}})
    with pytest.raises(RunMismatch, match="views:none.*views:flips-4"):
        sweep(more)
    sweep(SweepConfig(**{**more.__dict__, "classify": False}))  # rows without accuracy may still be added
    assert len(results(tmp_path / "run")) == 12
    import sqlite3

    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as db:  # as written before rows named their classifier
        db.execute("UPDATE results SET classifier = NULL")
    with pytest.raises(RunMismatch, match="unrecorded classifier"):
        sweep(SweepConfig(**{**more.__dict__, "qualities": {"jpeg": (30.0,)}}))
