"""EuroSAT RGB (Helber et al. 2019): 64×64 Sentinel-2 tiles in 10 land-cover classes.

Looked for under the user's data root (`--data-dir` / $BENCH_DATA_DIR) as
``ROOT/eurosat/<Class>/…`` or in the official archives' folder names
(``EuroSAT_RGB/``, ``2750/``, either directly under ROOT or under
``ROOT/eurosat/``); otherwise the stratified sample shipped in
``datasets/eurosat-sample/`` is used.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import SHIPPED_DIR, Dataset, DatasetNotFound, data_dir, records_from_class_folders

CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
LICENCE = "MIT (Helber et al., github.com/phelber/EuroSAT)"
SAMPLE_DIR = SHIPPED_DIR / "eurosat-sample"
_LAYOUTS = ("eurosat", "EuroSAT_RGB", "2750", "eurosat/EuroSAT_RGB", "eurosat/2750", "EuroSAT", "EuroSAT/2750")


def find(root: Path) -> Path | None:
    """The folder under `root` that holds EuroSAT's class folders, or None."""
    for layout in _LAYOUTS:
        candidate = root / layout
        if candidate.is_dir() and any((candidate / name).is_dir() for name in CLASSES):
            return candidate
    return None


def load(root: Path | None = None) -> Dataset:
    """EuroSAT from the data root when it is there, else the shipped sample."""
    base = data_dir(root)
    found = find(base) if base is not None else None
    kind = "full"
    if found is not None:
        source = f"full dataset at {found}"
    elif SAMPLE_DIR.is_dir():
        found, source, kind = SAMPLE_DIR, "shipped sample (datasets/eurosat-sample)", "sample"
    else:
        raise DatasetNotFound(
            f"eurosat: no EuroSAT class folders under {base or 'no data dir'} and no shipped sample at {SAMPLE_DIR}"
        )
    records = records_from_class_folders(found)
    if not records:
        raise DatasetNotFound(f"eurosat: no images in {found}")
    return Dataset("eurosat", found, f"{source}, {len(records)} images", LICENCE, records, kind)
