"""Dataset records, seeded stratified splits and stratified subsets."""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bench.assets import ASSET_ROOT, default_cache
from bench.files import sha256_of
from bench.images import IMAGE_SUFFIXES

SHIPPED_DIR = ASSET_ROOT / "datasets"
"""The repository's `datasets/` folder: shipped samples and manifests."""

DATA_DIR_ENV = "BENCH_DATA_DIR"
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
DEFAULT_SEED = 0


class DatasetNotFound(LookupError):
    """A dataset's images are not where they were looked for; the message says where."""


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset: `id` is its path relative to the dataset root."""

    id: str
    path: Path
    label: str | None
    split: str = ""
    seen: bool = False  # trained or selected on by a committed model (see `seen_by_models`)
    sha256: str | None = None  # of the file's bytes, set by the sweep's plan: rows are keyed on content too


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A set of images found on disk, with where they came from."""

    name: str
    root: Path
    source: str
    licence: str
    records: tuple[ImageRecord, ...]
    kind: str = "full"  # "full" (found under the data root), "sample" (shipped with the suite) or "folder"

    def identity(self) -> dict:
        """What a run stores to say which images it measured: structured, for the gate and reports to compare."""
        manifest = manifest_path(self.name, MODELS_SEED)
        return {"kind": self.kind, "root": str(self.root), "images": len(self.records),
                "manifest_sha256": sha256_of(manifest) if manifest.is_file() else None}  # fmt: skip

    @property
    def labelled(self) -> bool:
        return all(r.label is not None for r in self.records)

    @property
    def classes(self) -> list[str]:
        return sorted({r.label for r in self.records if r.label is not None})

    def select(self, split: str = "all", limit: int | None = None, seed: int = DEFAULT_SEED) -> list[ImageRecord]:
        """Records of `split` ("train", "val", "test" or "all"), each tagged with its split.

        The split comes from the committed manifest ``datasets/manifests/<name>-seed<seed>.csv``
        when there is one (so every user evaluates on the same test images;
        images it does not list get the split "unlisted" and are only in
        "all"), otherwise from `assign_splits`. With `limit`, a stratified
        subset of that many images (classes in proportion), the same for the
        same seed.
        """
        if split != "all" and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: all, {', '.join(SPLITS)}")
        manifest = manifest_path(self.name, seed)
        if manifest.is_file():
            listed = read_manifest(manifest)
            assigned = [dataclasses.replace(r, split=listed.get(r.id, "unlisted")) for r in self.records]
        else:
            assigned = assign_splits(self.records, seed)
        seen = seen_by_models(self.name)
        chosen = [dataclasses.replace(r, seen=r.id in seen) for r in assigned if split == "all" or r.split == split]
        if limit is not None:
            chosen = stratified_subset(chosen, limit, seed)
        return sorted(chosen, key=lambda r: r.id)


MODELS_SEED = DEFAULT_SEED
"""The split seed of every committed model: trained on that manifest's train split, selected on its val split."""


@functools.lru_cache(maxsize=8)
def seen_by_models(name: str) -> frozenset[str]:
    """Ids of `name`'s images that a committed model trained or was selected on (empty without a manifest).

    Independent of a run's own `--seed`: a fresh split at another seed puts
    some of these images in its "test" split, and they stay seen.
    """
    path = manifest_path(name, MODELS_SEED)
    if not path.is_file():
        return frozenset()
    return frozenset(id_ for id_, split in read_manifest(path).items() if split in ("train", "val"))


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's data root: `explicit`, else $BENCH_DATA_DIR, else the download cache if it exists, else None."""
    value = explicit or os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    return default_cache() if default_cache().is_dir() else None


def first_folder(base: Path | None, layouts: Sequence[str]) -> Path | None:
    """The first of `base`/`layout` that is a directory (the layouts a dataset's archives unpack to), or None."""
    if base is None:
        return None
    return next((base / layout for layout in layouts if (base / layout).is_dir()), None)


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def readable(name: str) -> str:
    """`name` as valid text: bytes that are not UTF-8 (which Python keeps as surrogates) written as ``\\xe9``, and
    backslashes doubled so that no two names meet. Ids and labels go into SQLite, CSV and HTML, which take only valid
    text; a record keeps its real path."""
    return name.replace("\\", "\\\\").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def image_id(path: Path, root: Path) -> str:
    """The id of the image at `path` in a dataset rooted at `root`: its relative POSIX path, `readable`."""
    return readable(path.relative_to(root).as_posix())


def records_from_class_folders(root: Path) -> tuple[ImageRecord, ...]:
    """Records of every image in `root/<Class>/…`, labelled by class folder."""
    records = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in list_images(folder):
            records.append(ImageRecord(image_id(path, root), path, readable(folder.name)))
    return tuple(records)


def manifest_path(name: str, seed: int) -> Path:
    return SHIPPED_DIR / "manifests" / f"{name}-seed{seed}.csv"


MANIFEST_HEADER = "id,label,split"
"""The first line of a split manifest."""


def write_manifest(records: Sequence[ImageRecord], path: Path) -> None:
    """Write records (id, label, split) as CSV, sorted by id."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_HEADER.split(","))
        for record in sorted(records, key=lambda r: r.id):
            writer.writerow([record.id, record.label or "", record.split])


def read_manifest(path: Path) -> dict[str, str]:
    """id → split of a manifest CSV; ids must be relative paths inside the dataset root."""
    import csv

    splits = {}
    with open(path, newline="") as handle:
        reader = csv.reader(handle)  # plain rows and string checks: a full manifest has 27,000, read every sweep
        header = next(reader, None)
        if header != ["id", "label", "split"]:
            raise ValueError(f"{path}: expected the columns id,label,split, found {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != 3:
                raise ValueError(f"{path}:{line}: expected 3 columns, found {len(row)}")
            id_, _, split = row
            if id_.startswith("/") or ".." in id_.split("/"):
                raise ValueError(f"{path}:{line}: id {id_!r} points outside the dataset root")
            if split not in SPLITS:
                raise ValueError(f"{path}:{line}: unknown split {split!r} for {id_}")
            splits[id_] = split
    return splits


def _rng(seed: int, label: str | None) -> np.random.Generator:
    # One generator per class, so adding a class never reshuffles the others.
    return np.random.default_rng([seed, zlib.crc32(str(label).encode())])


def _by_label(records: Iterable[ImageRecord]) -> dict[str | None, list[ImageRecord]]:
    groups: dict[str | None, list[ImageRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.id):
        groups[record.label].append(record)
    return groups


def assign_splits(records: Sequence[ImageRecord], seed: int = DEFAULT_SEED) -> list[ImageRecord]:
    """Tag every record with a train/val/test split, stratified by label.

    Within each class the records (sorted by id) are shuffled by a generator
    seeded from (`seed`, class), then cut 70/10/20, rounding val and test
    to the nearest image. Unlabelled records form one group.
    """
    tagged = []
    for label, group in _by_label(records).items():
        order = _rng(seed, label).permutation(len(group))
        n_test = round(SPLIT_FRACTIONS["test"] * len(group))
        n_val = round(SPLIT_FRACTIONS["val"] * len(group))
        for rank, index in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            tagged.append(dataclasses.replace(group[index], split=split))
    return tagged


def stratified_subset(records: Sequence[ImageRecord], limit: int, seed: int = DEFAULT_SEED) -> list[ImageRecord]:
    """`limit` records with classes in proportion (largest remainder), seeded."""
    if limit < 0:
        raise ValueError("limit must be ≥ 0")
    groups = _by_label(records)
    total = sum(len(g) for g in groups.values())
    if limit >= total:
        return list(records)
    labels = sorted(groups, key=str)
    exact = {label: limit * len(groups[label]) / total for label in labels}
    quota = {label: int(exact[label]) for label in labels}
    by_remainder = sorted(labels, key=lambda label: (-(exact[label] - quota[label]), str(label)))
    for label in by_remainder[: limit - sum(quota.values())]:
        quota[label] += 1
    chosen = []
    for label in labels:
        order = _rng(seed + 1, label).permutation(len(groups[label]))
        chosen.extend(groups[label][i] for i in order[: quota[label]])
    return chosen
