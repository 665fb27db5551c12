"""A gallery for the report: the same crops, original and decoded by each codec at a similar rate."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench import metrics
from bench.codecs import CODECS
from bench.datasets import DatasetNotFound, load_dataset
from bench.files import atomic_write
from bench.images import ImageReadError, read_rgb

GALLERY_BPP = 1.0
MAX_IMAGES = 3
CROP = 128


def _crop(image: np.ndarray) -> np.ndarray:
    """The centre `CROP`×`CROP` of a large image; small tiles whole, enlarged ×3 (nearest) to be visible."""
    height, width = image.shape[:2]
    if max(height, width) <= 96:
        return image.repeat(3, axis=0).repeat(3, axis=1)
    top, left = max(0, (height - CROP) // 2), max(0, (width - CROP) // 2)
    return image[top : top + CROP, left : left + CROP].repeat(2, axis=0).repeat(2, axis=1)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def gallery(frame: pd.DataFrame, dataset: str, data_dir: str | None, plot_dir: Path) -> dict:
    """Tiles (original, and per codec at the quality where that image's rate is closest to `GALLERY_BPP`)."""
    try:
        records = {r.id: r for r in load_dataset(dataset, Path(data_dir) if data_dir else None).records}
    except DatasetNotFound as exc:
        return {"reason": f"images not available when the report was written: {exc}", "rows": []}
    ok = frame[(frame["dataset"] == dataset) & frame["error"].isna()]
    chosen = ok.sort_values("image").drop_duplicates("label" if ok["label"].notna().any() else "image")
    rows = []
    for image_id in chosen["image"].head(MAX_IMAGES):
        if image_id not in records:
            continue
        try:
            original, _ = read_rgb(records[image_id].path)
        except ImageReadError:
            continue
        tiles = [_tile(original, f"original ({original.shape[1]}×{original.shape[0]})", image_id, "original", plot_dir)]
        of_image = ok[ok["image"] == image_id]
        for codec_name in [name for name in CODECS if name in set(of_image["codec"])]:
            codec = CODECS[codec_name]
            rows_of_image = of_image[of_image["codec"] == codec_name]
            if not codec.available:
                continue
            # this image's own rate at each quality: the gallery compares pictures at the same bpp
            quality = float(rows_of_image.loc[(rows_of_image["bpp"] - GALLERY_BPP).abs().idxmin(), "quality"])
            data = codec.encode(original, quality)
            decoded = codec.decode(data)
            caption = f"{codec_name} q={quality:g}: {metrics.bpp(len(data), original.shape):.2f} bpp, {metrics.psnr(original, decoded):.1f} dB"
            tiles.append(_tile(decoded, caption, image_id, codec_name, plot_dir))
        rows.append({"image": image_id, "tiles": tiles})
    return {"reason": "" if rows else "no readable images", "rows": rows}


def _tile(image: np.ndarray, caption: str, image_id: str, name: str, plot_dir: Path) -> dict:
    png = _png(_crop(image))
    # by hash: "a b.png" and "a-b.png" would share any readable slug
    digest = hashlib.sha256(f"{image_id}\0{name}".encode()).hexdigest()[:16]
    path = plot_dir / f"gallery-{digest}.png"
    with atomic_write(path) as tmp:
        tmp.write_bytes(png)
    return {
        "caption": caption,
        "path": path.relative_to(plot_dir.parent).as_posix(),
        "data_uri": "data:image/png;base64," + base64.b64encode(png).decode(),
    }
