"""Dataset registry: name → loader. ``folder:PATH`` loads any folder of images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.datasets import eurosat, folder, kodak, patternnet, rsicb256
from bench.datasets.base import (
    DATA_DIR_ENV,
    DEFAULT_SEED,
    SPLITS,
    Dataset,
    DatasetNotFound,
    ImageRecord,
    assign_splits,
    stratified_subset,
)

DATASETS: dict[str, Callable[[Path | None], Dataset]] = {
    "eurosat": eurosat.load,
    "kodak": kodak.load,
    "rsi-cb256": rsicb256.load,
    "patternnet": patternnet.load,
}
FOLDER_PREFIX = "folder:"


def check_name(name: str) -> None:
    """Raise KeyError listing the valid names when `name` is not a dataset."""
    if name not in DATASETS and not name.startswith(FOLDER_PREFIX):
        raise KeyError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}, {FOLDER_PREFIX}PATH")


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """Load dataset `name` (a registry name or ``folder:PATH``)."""
    check_name(name)
    if name.startswith(FOLDER_PREFIX):
        return folder.load(Path(name[len(FOLDER_PREFIX) :]))
    return DATASETS[name](data_dir)


__all__ = [
    "DATASETS", "DATA_DIR_ENV", "DEFAULT_SEED", "SPLITS", "Dataset", "DatasetNotFound", "ImageRecord",
    "assign_splits", "check_name", "load_dataset", "stratified_subset",
]  # fmt: skip
