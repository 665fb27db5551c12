"""Kodak Lossless True Color Image Suite: 24 unlabelled 768×512 photographs.

The reference set of image-codec papers; looked for as ``ROOT/kodak/*.png``
under the user's data root. Not shipped with the repository.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import Dataset, DatasetNotFound, ImageRecord, data_dir, image_id, list_images

LICENCE = "released by Eastman Kodak for unrestricted use"


def load(root: Path | None = None) -> Dataset:
    base = data_dir(root)
    folder = base / "kodak" if base is not None else None
    if folder is None or not folder.is_dir():
        raise DatasetNotFound(
            f"kodak: no kodak/ folder under {base or 'the data dir'}; pass --data-dir ROOT "
            "(or set BENCH_DATA_DIR) with ROOT/kodak/kodim01.png …"
        )
    records = tuple(ImageRecord(image_id(p, folder), p, None) for p in list_images(folder))
    if not records:
        raise DatasetNotFound(f"kodak: no images in {folder}")
    return Dataset("kodak", folder, f"{folder}, {len(records)} images", LICENCE, records)
