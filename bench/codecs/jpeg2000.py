"""JPEG 2000 (ITU-T T.800) through glymur and OpenJPEG, rate-controlled.

Irreversible 9/7 wavelet, multi-component transform (RGB → YCbCr) on, one
quality layer whose size OpenJPEG's rate control fits to a target: the
quality knob is that target in bits per pixel (the encoder's compression
ratio is ``24 / target``). Rate control cannot go below the size of the
headers, so the lowest targets land at the same size on small tiles.

Rate accounting: ``bytes`` is the raw codestream (``.j2k``, no JP2 box
container). ``header_bytes`` is the main header (SIZ, COD, QCD, COM …), the
tile-part headers and the EOC marker, i.e. everything except the packet data
that follows each SOD marker.

glymur loads OpenJPEG when it is first imported, from a ``glymurrc`` file
or the system linker path (Debian: ``libopenjp2-7``). When neither has one,
`_import_glymur` points it at the copy that Pillow's wheel bundles.
"""

from __future__ import annotations

import ctypes.util
import functools
import itertools
import math
import os
import sys
import pathlib
import tempfile

import numpy as np

from bench.codecs.base import Codec, CodecUnavailable, Image

_MIN_OPENJPEG = (2, 4)  # glymur writes only with OpenJPEG ≥ 2.4
_counter = itertools.count()


@functools.cache
def _import_glymur():
    if ctypes.util.find_library("openjp2") is None and "glymur" not in sys.modules:
        bundled = _pillow_openjpeg()
        if bundled is not None:
            # glymur reads `$XDG_CONFIG_HOME/glymur/glymurrc` once, while its
            # import loads the library; the variable is restored right after.
            with tempfile.TemporaryDirectory() as config:
                rc = pathlib.Path(config, "glymur", "glymurrc")
                rc.parent.mkdir()
                rc.write_text(f"[library]\nopenjp2: {bundled}\n")
                saved = os.environ.get("XDG_CONFIG_HOME")
                os.environ["XDG_CONFIG_HOME"] = config
                try:
                    import glymur  # noqa: F401
                finally:
                    if saved is None:
                        del os.environ["XDG_CONFIG_HOME"]
                    else:
                        os.environ["XDG_CONFIG_HOME"] = saved
    import glymur

    found = glymur.version.openjpeg_version_tuple
    if tuple(found[:2]) < _MIN_OPENJPEG:
        raise CodecUnavailable(
            f"glymur found OpenJPEG {glymur.version.openjpeg_version or 'none'}, needs ≥ 2.4"
        )
    return glymur


def _pillow_openjpeg() -> pathlib.Path | None:
    try:
        import PIL
    except ImportError:
        return None
    libs = pathlib.Path(PIL.__file__).resolve().parent.parent / "pillow.libs"
    return next(iter(sorted(libs.glob("libopenjp2*.so*"))), None)


def library_version() -> str:
    glymur = _import_glymur()
    return f"glymur {glymur.__version__} (OpenJPEG {glymur.version.openjpeg_version})"


@functools.cache
def _workdir() -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix="bench-j2k-"))


def _scratch_path() -> pathlib.Path:
    """A fresh file name: glymur reads a file that already exists instead of writing it."""
    return _workdir() / f"{os.getpid()}-{next(_counter)}.j2k"


def encode(image: Image, quality: float) -> bytes:
    glymur = _import_glymur()
    height, width = image.shape[:2]
    # OpenJPEG needs each resolution level to keep at least one pixel.
    numres = min(6, int(math.log2(min(height, width))) + 1)
    path = _scratch_path()
    try:
        glymur.Jp2k(
            path,
            data=np.ascontiguousarray(image),
            cratios=[24.0 / float(quality)],
            irreversible=True,
            mct=True,
            numres=numres,
        )
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def decode(data: bytes) -> Image:
    glymur = _import_glymur()
    path = _scratch_path()
    try:
        path.write_bytes(data)
        image = glymur.Jp2k(path)[:]
    finally:
        path.unlink(missing_ok=True)
    return np.asarray(image)


def header_size(data: bytes) -> int:
    """Bytes of the codestream outside the packet data of its tile-parts."""
    if data[:2] != b"\xff\x4f":
        raise ValueError("not a JPEG 2000 codestream (no SOC marker)")
    payload, pos = 0, 2
    while pos + 4 <= len(data):
        marker = int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xFFD9:  # EOC
            break
        if marker == 0xFF90:  # SOT: Psot is the tile-part's length from SOT on
            psot = int.from_bytes(data[pos + 6 : pos + 10], "big") or len(data) - pos
            sod = data.find(b"\xff\x93", pos, pos + psot)
            if sod < 0:
                raise ValueError(f"tile-part at byte {pos} has no SOD marker")
            payload += pos + psot - (sod + 2)
            pos += psot
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return len(data) - payload


jpeg2000 = Codec(
    name="jpeg2000",
    family="classical",
    description="JPEG 2000, 9/7 wavelet, MCT on, rate-controlled (glymur/OpenJPEG)",
    quality_name="target bits per pixel (higher = better)",
    qualities=(0.25, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    quality_range=(0.01, 24.0),
    integer_quality=False,
    encode=encode,
    decode=decode,
    header_size=header_size,
    rate_note=(
        "bytes: the raw J2K codestream (no JP2 container); header_bytes: main header, "
        "tile-part headers and EOC (everything but packet data)."
    ),
    library_version=library_version,
    install_hint="pip install glymur, plus OpenJPEG ≥ 2.4 (apt-get install libopenjp2-7, or Pillow's bundled copy)",
)
