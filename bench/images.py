"""Reading images from disk as RGB uint8 arrays, the one path every dataset uses."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

# .gif and .apng are listed so that an animated file becomes an error row instead of being silently skipped
# (a still GIF is read as any palette image).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".apng", ".gif", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}
)

# The pixel budget, checked from the header before anything is decoded. 64 Mpx (2**26) admits a 50 Mpx
# satellite scene or camera frame with room to spare, and refuses the small-on-disk bombs that stay under
# Pillow's own limit (89 Mpx warns, 179 Mpx fails: a 9,400² PNG of ~90 KB is 88 Mpx). Measured peak memory of
# read_rgb: ~7.2 bytes/pixel for 8-bit RGB/RGBA/CMYK/P and 32-bit gray (Pillow's 4 bytes/pixel decode + the
# 3 bytes/pixel result, filled in bands), ~4–5 for 8/16-bit gray, ~9 for a 16-bit RGB PNG and ~12 for an
# uncompressed 16-bit RGB TIFF (file bytes + uint16 samples + result): ~460 MB for an 8-bit 64 Mpx image, up to
# ~800 MB for a 16-bit one. What the caller then does with the H×W×3 result (codecs, metrics) costs more per
# pixel than that. A larger scene (a full 10,980² Sentinel-2 tile is 121 Mpx) needs --max-pixels; Pillow's
# hard limit of 2 × Image.MAX_IMAGE_PIXELS (179 Mpx) still applies above that.
DEFAULT_MAX_PIXELS = 64 * 2**20

_EXIF_ORIENTATION = 0x0112
_BAND_PIXELS = 2**18  # pixels per band when filling the result: bounds every temporary to a few MB

# EXIF orientation → the view of the stored array as displayed, and the inverse view (displayed → stored).
# 2: mirror, 3: 180°, 4: flip, 5: transpose, 6: 90° clockwise, 7: transverse, 8: 90° counter-clockwise.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_UNORIENT = {**_ORIENT, 6: _ORIENT[8], 8: _ORIENT[6]}  # all others are their own inverse

_UINT16_MODES = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}
# Mode "I" (32-bit signed storage) with a bit depth that the format implies: Pillow reads 16-bit gray PNG and
# PGM with maxval > 255 (already rescaled to 0..65535) into it in some versions. TIFF says it in its tags.
_MODE_I_BITS = {"PNG": 16, "PPM": 16}
_TIFF_PHOTOMETRIC = {0: "min-is-white", 1: "min-is-black", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK",
                     6: "YCbCr", 8: "CIELab"}


class ImageReadError(ValueError):
    """An image file cannot be read; the message names the file and the problem."""


def read_rgb(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """Read `path` as an H×W×3 uint8 RGB array.

    Returns the array and a note saying what was converted ("" when the file
    was already 8-bit RGB): EXIF orientation applied (or invalid and ignored),
    grayscale/palette/CMYK converted to RGB, alpha dropped, 16/32-bit integer
    samples scaled to 8 bits by their bit depth, float samples scaled or rounded.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image;
            it has more than `max_pixels` pixels (checked from the header,
            before decoding); it has several frames; or its samples have no
            defined mapping to 8 bits (signed integers, unknown bit depth,
            float values outside [0, 255], 16-bit CMYK …).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # our pixel budget below is the check; Pillow's warning would pre-empt it with a vaguer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:  # reads the header only
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"{path}: {width}×{height} = {width * height} pixels exceeds the pixel budget of "
                        f"{max_pixels} (--max-pixels)"
                    )
                _check_frames(path, opened, notes)
                tile = opened.tile[0] if opened.tile else None  # before anything loads the image (and clears it)
                wide = _wide_source(path, opened, tile)
                orientation = _orientation(_exif_orientation(path, opened, wide), notes)
                if wide is None:
                    return _finish(path, _from_pillow(path, opened, tile, orientation, notes), notes)
            # 16-bit multi-channel samples that Pillow would truncate: decoded with the Pillow image closed
            return _finish(path, _from_wide_source(path, wide, orientation, notes), notes)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: {exc} (Pillow's hard limit; pixel budget {max_pixels})") from None
    except MemoryError:
        raise
    except Exception as exc:  # a hostile file can make a decoder raise almost anything: it is that file's error
        raise ImageReadError(f"{path}: cannot decode ({str(exc) or type(exc).__name__})") from None


def _finish(path: Path, array: np.ndarray, notes: list[str]) -> tuple[np.ndarray, str]:
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageReadError(f"{path}: unexpected decoded shape {array.shape}")
    return array, "; ".join(notes)


def _check_frames(path: Path, opened, notes: list[str]) -> None:
    """Refuse animations and multi-page files; only an MPO's primary image and a TIFF's own thumbnails pass.

    An error rather than "frame 1 of n used": a GIF or APNG frame is often a partial delta or a blank first
    frame, and the pages of a TIFF may be unrelated images (bands, a time series): measuring whichever comes
    first would quietly benchmark something the user did not pick. One error row tells them to pick.
    """
    try:
        frames = getattr(opened, "n_frames", 1)
        reduced = 0
        if frames > 1 and opened.format == "TIFF":  # NewSubfileType bit 0: a reduced-resolution copy (thumbnail)
            for index in range(1, frames):
                opened.seek(index)
                reduced += bool(opened.tag_v2.get(254, 0) & 1)
            opened.seek(0)
    except Exception as exc:  # a damaged chain of frames (IFDs): how many images it holds is unknown
        raise ImageReadError(f"{path}: cannot decode the list of frames ({str(exc) or type(exc).__name__})") from None
    if frames <= 1:
        return
    if opened.format == "MPO":  # a camera JPEG with a preview or depth map attached: the first is the photo
        notes.append(f"MPO primary image used, {frames - 1} other image(s) ignored")
        return
    if opened.format == "TIFF":
        if reduced == frames - 1:
            notes.append(f"{reduced} reduced-resolution TIFF page(s) ignored")
            return
        frames -= reduced
    raise ImageReadError(f"{path}: {frames} frames: a codec benchmark measures still images; extract one frame")


def _exif_orientation(path: Path, opened, wide: dict | None):
    """The EXIF orientation value as stored (None when absent), read without decoding where it matters."""
    if wide is not None and wide["codec"] == "png" and "exif" not in opened.info:
        # Pillow finds an eXIf chunk after the image data only by decoding the (here 8-bit truncated) image
        from PIL import Image

        raw = _png_chunk(path.read_bytes(), b"eXIf")
        exif = Image.Exif()
        if raw:
            exif.load(raw)
        return exif.get(_EXIF_ORIENTATION)
    return opened.getexif().get(_EXIF_ORIENTATION)  # a PNG without eXIf before IDAT is loaded here


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    position = 8  # after the signature
    while position + 8 <= len(data):
        length, found = struct.unpack_from(">I4s", data, position)
        if found == kind:
            return data[position + 8 : position + 8 + length]
        if found == b"IEND":
            break
        position += 12 + length
    return None


def _orientation(value, notes: list[str]) -> int | None:
    """The EXIF orientation to apply (2–8), or None; notes what was applied or ignored."""
    if value is None or value == 1:
        return None
    if isinstance(value, int) and 2 <= value <= 8:
        notes.append(f"EXIF orientation {value} applied")
        return value
    notes.append(f"EXIF orientation {value if isinstance(value, int) else repr(value)} invalid, ignored")
    return None


def _result(height: int, width: int, orientation: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The displayed result array and a view of it in stored orientation, which the bands are written to.

    Writing through the inverse view applies the orientation without a second full-size copy.
    """
    if orientation is None:
        result = np.empty((height, width, 3), np.uint8)
        return result, result
    shape = (width, height, 3) if orientation >= 5 else (height, width, 3)
    result = np.empty(shape, np.uint8)
    return result, _UNORIENT[orientation](result)


def _band_rows(width: int) -> int:
    return max(1, _BAND_PIXELS // max(width, 1))


def _scale_uint(values: np.ndarray, maxval: int) -> np.ndarray:
    """Unsigned samples 0..maxval → 0..255, rounded (maxval = 2**bits − 1 is odd: no ties)."""
    wide = np.uint32 if maxval <= 2**16 else np.uint64  # maxval·255 + maxval/2 must not overflow
    scaled = (values.astype(wide) * 255 + maxval // 2) // maxval
    return np.minimum(scaled, 255).astype(np.uint8)


def _float_scaling(path: Path, bands) -> tuple[str, float]:
    """How float samples map to 8 bits, from their range (read in a first pass over `bands`)."""
    low, high = np.inf, -np.inf
    for band in bands:
        if np.isnan(band).any():
            raise ImageReadError(f"{path}: float image with NaN samples: no defined scaling")
        low, high = min(low, float(band.min())), max(high, float(band.max()))
    if 0.0 <= low and high <= 1.0:
        return "values in [0, 1] scaled by 255", 255.0
    if 0.0 <= low and high <= 255.0:
        return "values in [0, 255] rounded", 1.0
    raise ImageReadError(
        f"{path}: float image with values outside [0, 1] and [0, 255]: min {low:g}, max {high:g}: no defined scaling"
    )


def _scale_float(values: np.ndarray, factor: float) -> np.ndarray:
    return np.rint(values.astype(np.float64) * factor).astype(np.uint8)


def _from_pillow(path: Path, opened, tile, orientation: int | None, notes: list[str]) -> np.ndarray:
    """Decode with Pillow and convert band by band into the result (peak ≈ Pillow's image + the result)."""
    mode = opened.mode
    if opened.format == "PPM" and tile is not None and str(tile[0]).startswith("ppm"):
        maxval = tile[3][1] if isinstance(tile[3], tuple) and len(tile[3]) > 1 else 255
        if maxval != 255:  # Pillow's PPM decoder rescales other maxvals itself, rounded
            notes.append(f"PPM maxval {maxval} " + ("rescaled to 16 bits" if mode == "I" else "scaled to 8 bits"))
    opened.load()
    if orientation is not None and opened.getexif().get(_EXIF_ORIENTATION) != orientation:
        orientation = None  # the plugin applied it while loading (Pillow ≥ 11 TIFF) and removed the tag
    width, height = opened.size
    result, stored = _result(height, width, orientation)
    rows = _band_rows(width)

    def bands(raw_dtype=None):
        for top in range(0, height, rows):
            band = opened.crop((0, top, width, min(height, top + rows)))
            yield top, np.frombuffer(band.tobytes(), raw_dtype).reshape(band.height, width)

    if mode in _UINT16_MODES:
        for top, band in bands(_UINT16_MODES[mode]):
            stored[top : top + len(band)] = _scale_uint(band, 65535)[..., None]
        notes.append(f"mode {mode} (16-bit gray) scaled to 8 bits, gray replicated to RGB")
    elif mode == "I":
        bits, signed = _mode_i_depth(path, opened)
        if signed:
            raise ImageReadError(
                f"{path}: mode I with signed {bits}-bit integer samples: no defined scaling to 8 bits"
            )
        for top, band in bands(np.int32):  # unsigned 32-bit samples are stored bit for bit in Pillow's int32
            stored[top : top + len(band)] = _scale_uint(band.view(np.uint32), 2**bits - 1)[..., None]
        notes.append(f"mode I ({bits}-bit unsigned gray) scaled to 8 bits, gray replicated to RGB")
    elif mode == "F":
        how, factor = _float_scaling(path, (band for _, band in bands(np.float32)))
        for top, band in bands(np.float32):
            stored[top : top + len(band)] = _scale_float(band, factor)[..., None]
        notes.append(f"mode F (32-bit float) {how}, gray replicated to RGB")
    elif mode in ("RGB", "L"):
        channels = 3 if mode == "RGB" else 1
        for top in range(0, height, rows):
            band = opened.crop((0, top, width, min(height, top + rows)))
            samples = np.frombuffer(band.tobytes(), np.uint8)
            stored[top : top + band.height] = samples.reshape(band.height, width, channels)
        if mode == "L":
            notes.append("mode L converted to RGB")
    else:
        for top in range(0, height, rows):
            band = opened.crop((0, top, width, min(height, top + rows)))
            try:
                band = band.convert("RGB")
            except ValueError as exc:
                raise ImageReadError(f"{path}: mode {mode} cannot be converted to RGB ({exc})") from None
            stored[top : top + band.height] = np.frombuffer(band.tobytes(), np.uint8).reshape(-1, width, 3)
        notes.append(f"mode {mode} converted to RGB" + (" (alpha dropped)" if mode.upper().endswith("A") else ""))
    return result


def _mode_i_depth(path: Path, opened) -> tuple[int, bool]:
    """(bits, signed) of a mode-I image, from the TIFF tags or the format; an error where nothing says."""
    if opened.format == "TIFF":
        bits = _tiff_tag(opened, 258, (0,))
        sample_format = _tiff_tag(opened, 339, (1,))
        if bits and bits[0] in (16, 32) and sample_format[0] in (1, 2):
            return bits[0], sample_format[0] == 2
    elif opened.format in _MODE_I_BITS:
        return _MODE_I_BITS[opened.format], False
    raise ImageReadError(f"{path}: mode I ({opened.format}) with unknown bit depth: no defined scaling to 8 bits")


def _tiff_tag(opened, tag: int, default: tuple) -> tuple:
    value = opened.tag_v2.get(tag, default)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _wide_source(path: Path, opened, tile) -> dict | None:
    """How to read a multi-channel image with more than 8 bits per sample, which Pillow would truncate.

    None when Pillow's own decode is exact (all 8-bit images, and the 16/32-bit gray and float modes).
    """
    if opened.mode in _UINT16_MODES or opened.mode in ("I", "F"):
        return None
    if opened.format == "PNG":
        rawmode = tile[3] if tile is not None and isinstance(tile[3], str) else ""
        stored_shape = opened.size[::-1]
        return {"codec": "png", "bits": 16, "stored_shape": stored_shape} if rawmode.endswith(";16B") else None
    if opened.format == "TIFF":
        bits = _tiff_tag(opened, 258, (1,))
        if max(bits) <= 8:
            return None
        photometric = _tiff_tag(opened, 262, (None,))[0]
        if photometric != 2 or _tiff_tag(opened, 339, (1,))[0] != 1 or min(bits) != max(bits):
            kind = _TIFF_PHOTOMETRIC.get(photometric, f"photometric {photometric}")
            raise ImageReadError(
                f"{path}: {max(bits)}-bit {kind} TIFF (mode {opened.mode}): "
                "cannot be read without truncating to 8 bits"
            )
        # as stored: Pillow ≥ 11 gives a TIFF's size as displayed (after its orientation), libtiff decodes as stored
        stored_shape = (opened.tag_v2.get(257), opened.tag_v2.get(256))
        planar = _tiff_tag(opened, 284, (1,))[0] == 2
        return {"codec": "tiff", "bits": bits[0], "planar": planar, "stored_shape": stored_shape}
    return None


def _from_wide_source(path: Path, source: dict, orientation: int | None, notes: list[str]) -> np.ndarray:
    """Decode 16-bit (or wider unsigned) samples with imagecodecs and scale them to 8 bits, rounded."""
    import imagecodecs

    data = path.read_bytes()
    if source["codec"] == "png":
        samples = imagecodecs.png_decode(data)
    else:
        samples = imagecodecs.tiff_decode(data, index=0)
        if source["planar"] and samples.ndim == 3:  # samples first
            samples = np.moveaxis(samples, 0, -1)
    del data
    if samples.ndim == 2:
        samples = samples[..., None]
    height, width = source["stored_shape"]
    if samples.shape[:2] != (height, width) or samples.shape[2] not in (1, 2, 3, 4) or samples.dtype.kind != "u":
        raise ImageReadError(f"{path}: unexpected decoded samples {samples.shape} {samples.dtype}")
    gray = samples.shape[2] <= 2
    maxval = 2 ** source["bits"] - 1
    result, stored = _result(height, width, orientation)
    rows = _band_rows(width)
    for top in range(0, height, rows):
        band = samples[top : top + rows, :, :1] if gray else samples[top : top + rows, :, :3]
        stored[top : top + len(band)] = _scale_uint(band, maxval)
    alpha = samples.shape[2] in (2, 4)
    kind = ("gray" if gray else "RGB") + ("+alpha" if alpha else "")
    notes.append(
        f"{source['bits']}-bit {kind} scaled to 8 bits"
        + (" (alpha dropped)" if alpha else "")
        + (", gray replicated to RGB" if gray else "")
    )
    return result
