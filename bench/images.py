"""Reading images from disk as RGB uint8 arrays, the one path every dataset uses."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"})


_EXIF_ORIENTATION = 0x0112


class ImageReadError(ValueError):
    """An image file cannot be read; the message names the file and the problem."""


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Read `path` as an H×W×3 uint8 RGB array.

    Returns the array and a note saying what was converted ("" when the file
    was already 8-bit RGB): EXIF orientation applied, grayscale/palette/CMYK
    converted to RGB, alpha dropped, 16-bit samples scaled to 8 bits.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    notes = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
                image = ImageOps.exif_transpose(opened) if orientation != 1 else opened.copy()
                if orientation != 1:
                    notes.append(f"EXIF orientation {orientation} applied")
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: cannot decode ({exc})") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.uint32)
        scale = 65535 if wide.max(initial=0) > 255 or image.mode.startswith("I;16") else 255
        gray = np.rint(wide.astype(np.float64) * 255.0 / scale).astype(np.uint8)
        notes.append(f"{image.mode} scaled to 8 bits, gray replicated to RGB")
        return np.repeat(gray[..., None], 3, axis=2), "; ".join(notes)
    if image.mode != "RGB":
        notes.append(f"mode {image.mode} converted to RGB" + (" (alpha dropped)" if "A" in image.mode else ""))
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageReadError(f"{path}: unexpected decoded shape {array.shape}")
    return array, "; ".join(notes)
