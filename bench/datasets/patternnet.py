"""PatternNet (Zhou et al. 2018): 256×256 aerial scenes, 38 classes of 800 images.

Looked for as ``ROOT/patternnet/images/<class>/…`` (the archive's own
``PatternNet/images/`` is recognised too).
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import Dataset, DatasetNotFound, first_folder, data_dir, records_from_class_folders

LICENCE = "for research use, as stated by the authors (sites.google.com/view/zhouwx/dataset)"
_LAYOUTS = ("patternnet/images", "PatternNet/images", "patternnet/PatternNet/images")


def load(root: Path | None = None) -> Dataset:
    base = data_dir(root)
    folder = first_folder(base, _LAYOUTS)
    if folder is None:
        raise DatasetNotFound(
            f"patternnet: no patternnet/images/ folder under {base or 'the data dir'}; "
            "run `python -m bench datasets download patternnet` or unpack PatternNet.zip there"
        )
    records = records_from_class_folders(folder)
    if not records:
        raise DatasetNotFound(f"patternnet: no images in {folder}/<class>/")
    return Dataset("patternnet", folder, f"{folder}, {len(records)} images", LICENCE, records)
