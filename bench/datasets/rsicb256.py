"""RSI-CB256 (Li et al. 2017): 256×256 aerial scenes, 35 classes in a two-level folder layout.

Looked for as ``ROOT/rsi-cb256/<category>/<class>/…`` (also ``RSI-CB256/``),
where the category is one of the six first-level groups (construction land,
cultivated land, …); the label is the second-level class folder.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import Dataset, DatasetNotFound, first_folder, ImageRecord, data_dir, image_id, list_images, readable

LICENCE = "for research use, as stated by the authors (github.com/lehaifeng/RSI-CB)"
_LAYOUTS = ("rsi-cb256", "RSI-CB256", "rsi-cb256/RSI-CB256")


def load(root: Path | None = None) -> Dataset:
    base = data_dir(root)
    folder = first_folder(base, _LAYOUTS)
    if folder is None:
        raise DatasetNotFound(
            f"rsi-cb256: no rsi-cb256/ folder under {base or 'the data dir'}; download it from "
            "github.com/lehaifeng/RSI-CB and unpack it as ROOT/rsi-cb256/<category>/<class>/…"
        )
    records = []
    for category in sorted(p for p in folder.iterdir() if p.is_dir()):
        for class_dir in sorted(p for p in category.iterdir() if p.is_dir()):
            records += [
                ImageRecord(image_id(path, folder), path, readable(class_dir.name)) for path in list_images(class_dir)
            ]
    if not records:
        raise DatasetNotFound(f"rsi-cb256: no images in {folder}/<category>/<class>/")
    return Dataset("rsi-cb256", folder, f"{folder}, {len(records)} images", LICENCE, tuple(records))
