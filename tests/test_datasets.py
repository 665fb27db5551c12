from collections import Counter
from pathlib import Path

import pytest

from bench.datasets import ImageRecord, assign_splits, load_dataset, stratified_subset
from bench.datasets import eurosat
from bench.datasets.base import DatasetNotFound


def _records(per_class: dict[str, int]) -> list[ImageRecord]:
    return [ImageRecord(f"{c}/{c}_{i}.jpg", Path(f"{c}_{i}.jpg"), c) for c, n in per_class.items() for i in range(n)]


def test_splits_are_deterministic_and_stratified():
    records = _records({"A": 100, "B": 50, "C": 30})
    first, again = assign_splits(records, seed=7), assign_splits(list(reversed(records)), seed=7)
    assert {r.id: r.split for r in first} == {r.id: r.split for r in again}
    counts = Counter((r.label, r.split) for r in first)
    assert (counts["A", "train"], counts["A", "val"], counts["A", "test"]) == (70, 10, 20)
    assert (counts["B", "train"], counts["B", "val"], counts["B", "test"]) == (35, 5, 10)
    assert (counts["C", "train"], counts["C", "val"], counts["C", "test"]) == (21, 3, 6)
    other = assign_splits(records, seed=8)
    assert {r.id: r.split for r in first} != {r.id: r.split for r in other}


def test_adding_a_class_does_not_reshuffle_the_others():
    before = {r.id: r.split for r in assign_splits(_records({"A": 40, "B": 40}), seed=1)}
    after = {r.id: r.split for r in assign_splits(_records({"A": 40, "B": 40, "C": 10}), seed=1)}
    assert all(after[k] == v for k, v in before.items())


def test_stratified_subset_keeps_class_proportions():
    records = _records({"A": 60, "B": 30, "C": 10})
    subset = stratified_subset(records, 10, seed=0)
    assert Counter(r.label for r in subset) == {"A": 6, "B": 3, "C": 1}
    assert stratified_subset(records, 10, seed=0) == subset
    assert len(stratified_subset(records, 1000)) == 100


def test_shipped_sample_is_the_default():
    dataset = load_dataset("eurosat", None)
    assert "shipped sample" in dataset.source
    assert len(dataset.records) == 500 and len(dataset.classes) == 10
    test = dataset.select("test")
    # drawn from the committed manifest's test split only: nothing in it was seen by a committed model
    assert len(test) == 500 and {r.split for r in test} == {"test"} and not any(r.seen for r in test)
    assert {r.label for r in test} == set(dataset.classes)


def test_seen_marks_the_committed_models_train_and_val_images_whatever_the_runs_seed(tmp_path):
    from bench.datasets.base import Dataset, ImageRecord, seen_by_models

    seen = seen_by_models("eurosat")
    assert len(seen) == 20_800  # train (18,200) + val (2,600) of the committed 26,000-tile manifest
    ids = sorted(seen)[:3] + ["Forest/not-in-the-manifest.jpg"]
    dataset = Dataset("eurosat", tmp_path, "test", "-", tuple(ImageRecord(i, tmp_path / i, i.split("/")[0]) for i in ids))
    for seed in (0, 1):
        flags = {r.id: r.seen for r in dataset.select("all", seed=seed)}
        assert flags == {i: i in seen for i in ids}
    assert not Dataset("folder:x", tmp_path, "", "", dataset.records).select()[0].seen  # no manifest: all unseen


@pytest.mark.parametrize("layout", ["eurosat", "EuroSAT_RGB", "2750", "eurosat/2750"])
def test_eurosat_found_in_official_layouts(tmp_path, layout):
    source = next(iter(sorted((eurosat.SAMPLE_DIR / "Forest").glob("*.jpg"))))
    target = tmp_path / layout / "Forest"
    target.mkdir(parents=True)
    (target / source.name).write_bytes(source.read_bytes())
    dataset = load_dataset("eurosat", tmp_path)
    assert dataset.root == tmp_path / layout
    assert [r.id for r in dataset.records] == [f"Forest/{source.name}"]


def test_full_eurosat_from_shared(shared_datasets):
    dataset = load_dataset("eurosat", shared_datasets)
    assert len(dataset.records) == 26000 and "full dataset" in dataset.source


def test_kodak_needs_a_data_dir(tmp_path):
    with pytest.raises(DatasetNotFound, match="kodak"):
        load_dataset("kodak", tmp_path)


def test_folder_dataset_labels_from_subfolders(tmp_path):
    source = next(iter(sorted((eurosat.SAMPLE_DIR / "River").glob("*.jpg"))))
    (tmp_path / "water").mkdir()
    (tmp_path / "water" / "a.jpg").write_bytes(source.read_bytes())
    (tmp_path / "loose.jpg").write_bytes(source.read_bytes())
    dataset = load_dataset(f"folder:{tmp_path}")
    assert {r.id: r.label for r in dataset.records} == {"water/a.jpg": "water", "loose.jpg": None}


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(KeyError, match="valid: eurosat, kodak"):
        load_dataset("eurosad")


def test_rsicb256_two_level_layout(tmp_path):
    tile = next(iter(sorted((eurosat.SAMPLE_DIR / "Forest").glob("*.jpg"))))
    for category, cls in (("construction land", "city_building"), ("woodland", "forest"), ("woodland", "sparse_forest")):
        folder = tmp_path / "rsi-cb256" / category / cls
        folder.mkdir(parents=True)
        (folder / f"{cls}_1.tif").write_bytes(tile.read_bytes())
    dataset = load_dataset("rsi-cb256", tmp_path)
    assert dataset.classes == ["city_building", "forest", "sparse_forest"]
    assert dataset.records[0].id == "construction land/city_building/city_building_1.tif"


def test_patternnet_layout(tmp_path):
    tile = next(iter(sorted((eurosat.SAMPLE_DIR / "River").glob("*.jpg"))))
    for cls in ("airplane", "beach"):
        folder = tmp_path / "patternnet" / "PatternNet" / "images" / cls
        folder.mkdir(parents=True)
        (folder / f"{cls}001.jpg").write_bytes(tile.read_bytes())
    dataset = load_dataset("patternnet", tmp_path)
    assert dataset.classes == ["airplane", "beach"] and len(dataset.records) == 2


def test_manifest_round_trip_and_use(tmp_path, monkeypatch):
    from bench.datasets import base

    records = assign_splits(_records({"A": 20, "B": 10}), seed=3)
    path = tmp_path / "manifests" / "toy-seed3.csv"
    base.write_manifest(records, path)
    assert base.read_manifest(path) == {r.id: r.split for r in records}
    monkeypatch.setattr(base, "SHIPPED_DIR", tmp_path)
    toy = base.Dataset("toy", tmp_path, "", "", tuple(_records({"A": 20, "B": 10, "C": 1})))
    chosen = {r.id: r.split for r in toy.select("all", seed=3)}
    assert chosen["C/C_0.jpg"] == "unlisted" and all(chosen[r.id] == r.split for r in records)


@pytest.mark.parametrize("content, problem", [("name,split\nx,test\n", "expected the columns id,label,split"),
                                              ("id,label,split\nForest/a.jpg,Forest\n", "toy.csv:2: expected 3 columns"),
                                              ("id,label,split\nForest/a.jpg,Forest,tset\n", "unknown split 'tset'")])  # fmt: skip
def test_malformed_manifest_names_the_file_and_problem(tmp_path, content, problem):
    from bench.datasets import base

    path = tmp_path / "toy.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        base.read_manifest(path)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "/etc/passwd", "Forest/../../x.jpg"])
def test_manifest_ids_cannot_escape_the_dataset_root(tmp_path, bad_id):
    from bench.datasets import base

    path = tmp_path / "evil.csv"
    path.write_text(f"id,label,split\nForest/ok.jpg,Forest,train\n{bad_id},x,test\n")
    with pytest.raises(ValueError, match="outside the dataset root"):
        base.read_manifest(path)


def test_committed_eurosat_manifest_is_stratified():
    from bench.datasets.base import manifest_path, read_manifest

    splits = read_manifest(manifest_path("eurosat", 0))
    assert len(splits) == 26000
    counts = Counter((key.split("/")[0], split) for key, split in splits.items())
    assert counts["Forest", "test"] == 580 and counts["Forest", "val"] == 290 and counts["Forest", "train"] == 2030
