"""Dataset registry: name → loader. ``folder:PATH`` loads any folder of images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.assets import refuse_committed, refuse_replacing_other
from bench.datasets import eurosat, folder, kodak, patternnet, rsicb256
from bench.datasets.base import (
    DATA_DIR_ENV,
    DEFAULT_SEED,
    SPLITS,
    Dataset,
    DatasetNotFound,
    ImageRecord,
    MANIFEST_HEADER,
    assign_splits,
    manifest_path,
    stratified_subset,
    write_manifest,
)
from bench.names import UnknownName, did_you_mean

DATASETS: dict[str, Callable[[Path | None], Dataset]] = {
    "eurosat": eurosat.load,
    "kodak": kodak.load,
    "rsi-cb256": rsicb256.load,
    "patternnet": patternnet.load,
}
FOLDER_PREFIX = "folder:"


def check_name(name: str) -> None:
    """Raise KeyError listing the valid names when `name` is not a dataset."""
    if name == FOLDER_PREFIX:  # an empty path would silently mean the current folder
        raise UnknownName(f"{FOLDER_PREFIX} needs a path: {FOLDER_PREFIX}PATH")
    if name not in DATASETS and not name.startswith(FOLDER_PREFIX):
        raise UnknownName(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; valid: {', '.join(DATASETS)}, "
                       f"{FOLDER_PREFIX}PATH")


def write_split_manifest(name: str, data_dir: Path | None, seed: int, out: Path | None = None, *,
                         force: bool = False) -> tuple[Path, Dataset]:  # fmt: skip
    """Write the seeded train/val/test split of dataset `name` as a manifest (default under ``runs/manifests/``).

    The committed manifest (``datasets/manifests/``) is the split every committed
    model used; it is replaced only with `force`.
    """
    dataset = load_dataset(name, data_dir)
    committed = manifest_path(dataset.name, seed)
    path = out or Path("runs") / "manifests" / committed.name
    refuse_committed(path, committed, "the committed split every committed model used", force)
    refuse_replacing_other(path, "a split manifest", ".csv", lambda p: p.read_text().startswith(MANIFEST_HEADER))
    write_manifest(assign_splits(dataset.records, seed), path)
    return path, dataset


def describe(name: str, data_dir: Path | None = None) -> str:
    """One line on dataset `name`: where it was found, classes and licence, or why it was not."""
    try:
        dataset = load_dataset(name, data_dir)
    except DatasetNotFound as exc:
        return f"not found: {exc}"
    classes = f"{len(dataset.classes)} classes" if dataset.labelled else "unlabelled"
    return f"{dataset.source}; {classes}; licence: {dataset.licence}"


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """Load dataset `name` (a registry name or ``folder:PATH``)."""
    check_name(name)
    if name.startswith(FOLDER_PREFIX):
        return folder.load(Path(name[len(FOLDER_PREFIX) :]))
    return DATASETS[name](data_dir)


__all__ = [
    "DATASETS", "DATA_DIR_ENV", "DEFAULT_SEED", "SPLITS", "Dataset", "DatasetNotFound", "ImageRecord",
    "assign_splits", "check_name", "describe", "load_dataset", "stratified_subset", "write_split_manifest",
]  # fmt: skip
