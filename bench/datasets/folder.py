"""Any folder of images, given as ``folder:PATH``.

Images directly in PATH are unlabelled; images in subfolders are labelled by
their first-level subfolder (the ImageFolder convention).
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import Dataset, DatasetNotFound, ImageRecord, image_id, list_images


def load(path: Path) -> Dataset:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFound(f"folder:{path}: not a directory")
    records = []
    for image in list_images(folder):
        relative = image_id(image, folder)
        label = relative.split("/")[0] if "/" in relative else None
        records.append(ImageRecord(relative, image, label))
    if not records:
        raise DatasetNotFound(f"folder:{path}: no images found")
    return Dataset(f"folder:{path}", folder, f"{folder}, {len(records)} images", "as given by the user", tuple(records),
                   "folder")  # fmt: skip
