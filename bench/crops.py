"""Gallery crops: small PNGs of a few originals and of every decoded version, stored with the run.

The sweep picks the gallery images (`choose`) and stores each one's crop, and
the crop of each decoded version, in the database; the report shows them
without the dataset, the codecs or their libraries.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

CROP, CROP_ORIGINAL = "crop_png", "crop_png_original"
"""Row fields of gallery images: the PNG crop of the decoded image, and (on one row per image and task) of the
original. The store puts them in its ``crops`` table (codec `ORIGINAL` for the original), never in ``results``."""
ORIGINAL = ""
IMAGES_PER_DATASET = 3
SIDE = 128
"""Crops of large images are the centre SIDE × SIDE pixels; tiles up to `WHOLE` pixels are shown whole."""
WHOLE = 96


def choose(records: Sequence, count: int = IMAGES_PER_DATASET) -> frozenset[str]:
    """Ids of the gallery images: the first image (by id) of each of the first `count` classes, or the first images."""
    first_of_label: dict = {}
    for record in sorted(records, key=lambda r: r.id):
        first_of_label.setdefault(record.label if record.label is not None else record.id, record.id)
    return frozenset(list(first_of_label.values())[:count])


def crop_png(image: np.ndarray) -> bytes:
    """The PNG of `image`'s crop: the centre `SIDE`×`SIDE` of a large image, a small tile whole."""
    from PIL import Image

    height, width = image.shape[:2]
    if max(height, width) > WHOLE:
        top, left = max(0, (height - SIDE) // 2), max(0, (width - SIDE) // 2)
        image = image[top : top + SIDE, left : left + SIDE]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()
