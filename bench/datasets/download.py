"""Downloading datasets for users: official sources, sha256 checked before use, safe extraction.

Never run by the tests against the network: they call `fetch` with local
``file://`` URLs. A download is resumable (HTTP range requests continue a
``.part`` file), its sha256 is checked before anything is extracted, and
extraction refuses any member that would land outside the target folder
(absolute paths, ``..``, links).
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
import zipfile
from pathlib import Path

from bench.assets import DownloadError, default_cache, fetch_url
from bench.datasets.base import SHIPPED_DIR
from bench.files import sha256_of

__all__ = ["MANUAL", "SOURCES", "DownloadError", "Source", "default_cache", "download", "extract", "fetch"]


@dataclasses.dataclass(frozen=True)
class Source:
    """One file to fetch: where from, its sha256, and where it goes under the data root.

    Archives (``.zip``, ``.tar*``) are extracted into `target` (a folder);
    other files are stored as `target` (a file path).
    """

    url: str
    sha256: str
    target: str
    note: str = ""


def _kodak() -> list[Source]:
    # The 24 PNGs at the commit that ../shared/datasets/SOURCES.md documents; the hashes are those files'.
    base = (
        "https://raw.githubusercontent.com/ayushabrol13/Asymmetric-Learned-Image-Compression-with-Multi-Scale-"
        "Residual-Block/03ea80b9e91bbe2bebf51e81a9e74c84af2af802/kodak"
    )
    sums = (SHIPPED_DIR / "checksums" / "kodak.sha256").read_text().split("\n")
    return [Source(f"{base}/{name}", digest, f"kodak/{name}") for digest, name in (line.split() for line in sums if line)]


SOURCES = {
    "eurosat": lambda: [Source(
        "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip",
        "b4f5b234ecb7d7ff9c6cddb046543b4717c53fd6e9815be6c0e80cc614f51b90",
        "eurosat",
        "EuroSAT RGB, Zenodo record 7711810 (sha256 as published alongside that record by its users)",
    )],
    "patternnet": lambda: [Source(
        "https://hf.co/datasets/torchgeo/PatternNet/resolve/2dbd901b00e301967a5c5146b25454f5d3455ad0/PatternNet.zip",
        "456dd031950b0429518b8ec7d30a5c4b3f6456261ee1dd573a3eee43efb29958",
        "patternnet",
        "PatternNet, TorchGeo's pinned mirror of the authors' archive",
    )],
    "kodak": _kodak,
}  # fmt: skip
MANUAL = {"rsi-cb256": "RSI-CB256 is distributed through cloud drives only: github.com/lehaifeng/RSI-CB"}


def _check_members(names: list[tuple[str, bool]], target: Path) -> None:
    root = target.resolve()
    for name, is_link in names:
        destination = (root / name).resolve()
        if is_link or Path(name).is_absolute() or not destination.is_relative_to(root):
            raise DownloadError(f"archive member {name!r} would be written outside {target}: refused")


def extract(archive: Path, target: Path) -> None:
    """Extract `archive` into `target`, refusing members that escape it."""
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [(i.filename, (i.external_attr >> 16) & 0o170000 == 0o120000) for i in bundle.infolist()]
            _check_members(members, target)
            bundle.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            _check_members([(m.name, m.issym() or m.islnk()) for m in bundle.getmembers()], target)
            bundle.extractall(target, filter="data")
    else:
        raise DownloadError(f"{archive}: neither a zip nor a tar archive")


def fetch(source: Source, root: Path) -> Path:
    """Fetch one source into `root`: verified, then extracted or stored; the resulting path."""
    archive_like = source.url.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz"))
    downloads = root / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    file = downloads / source.url.rsplit("/", 1)[-1]
    if not (file.is_file() and sha256_of(file) == source.sha256):
        fetch_url(source.url, file)
        found = sha256_of(file)
        if found != source.sha256:
            file.unlink()
            raise DownloadError(f"{source.url}: sha256 mismatch: expected {source.sha256}, found {found}")
    destination = root / source.target
    if archive_like:
        extract(file, destination)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, destination)
    return destination


def download(name: str, root: Path) -> list[Path]:
    """Fetch every source of dataset `name` into the data root `root`."""
    if name in MANUAL:
        raise DownloadError(f"{name}: no automatic download; {MANUAL[name]}")
    if name not in SOURCES:
        raise DownloadError(f"{name}: unknown; downloadable: {', '.join(SOURCES)}")
    return [fetch(source, root) for source in SOURCES[name]()]
