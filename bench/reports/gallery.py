"""A gallery for the report: the same crops, original and decoded by each codec at a similar rate.

Built from the crops the sweep stored (`bench.crops`): the report needs
neither the images nor the codecs.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench.files import write_bytes
from bench.crops import ORIGINAL, WHOLE

GALLERY_BPP = 1.0


def _enlarged_png(png: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        factor = 3 if max(image.size) <= WHOLE else 2  # small tiles ×3 (nearest neighbour) to be visible, crops ×2
        big = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


def gallery(frame: pd.DataFrame, crops: pd.DataFrame, dataset: str, plot_dir: Path, order: list[str]) -> dict:
    """Per gallery image: the original, and each codec (in `order`) at the quality whose rate is closest to `GALLERY_BPP`."""
    stored = crops[crops["dataset"] == dataset]
    if stored.empty:
        return {"reason": "the sweep stored no crops (a run written before crops were stored: sweep it again)", "rows": []}
    ok = frame[(frame["dataset"] == dataset) & frame["error"].isna()].set_index(["image", "codec", "quality"])
    rows = []
    for image_id, of_image in stored.groupby("image", sort=True):
        original = of_image[of_image["codec"] == ORIGINAL]
        if original.empty:
            continue
        measured = ok.loc[image_id] if image_id in ok.index.get_level_values(0) else None
        shape = measured.iloc[0][["width", "height"]] if measured is not None else None
        size = f" ({int(shape['width'])}×{int(shape['height'])})" if shape is not None else ""
        tiles = [_tile(original["png"].iloc[0], f"original{size}", (dataset, image_id, "original"), plot_dir)]
        decoded = of_image[of_image["codec"] != ORIGINAL]
        for codec in [name for name in order if name in set(decoded["codec"])]:
            versions = decoded[decoded["codec"] == codec]
            rates = np.array([_value(measured, codec, q, "bpp") for q in versions["quality"]])
            if not np.isfinite(rates).any():
                continue
            closest = int(np.nanargmin(np.abs(rates - GALLERY_BPP)))  # this image's own rate, not the mean's
            best = versions.iloc[closest]
            psnr = _value(measured, codec, best["quality"], "psnr")
            caption = f"{codec} q={best['quality']:g}: {rates[closest]:.2f} bpp, {psnr:.1f} dB"
            tiles.append(_tile(best["png"], caption, (dataset, image_id, codec), plot_dir))
        rows.append({"image": image_id, "tiles": tiles})
    return {"reason": "" if rows else "no stored crops of originals", "rows": rows}


def _value(measured: pd.DataFrame | None, codec: str, quality: float, column: str) -> float:
    try:
        return float(measured.loc[(codec, quality), column])
    except (KeyError, TypeError, AttributeError):
        return float("nan")


def _tile(png: bytes, caption: str, key: tuple[str, str, str], plot_dir: Path) -> dict:
    png = _enlarged_png(bytes(png))
    # by hash of (dataset, image, codec): "a b.png" and "a-b.png" would share any readable slug
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
    path = plot_dir / f"gallery-{digest}.png"
    write_bytes(path, png)
    return {
        "caption": caption,
        "path": path.relative_to(plot_dir.parent).as_posix(),
        "data_uri": "data:image/png;base64," + base64.b64encode(png).decode(),
    }
