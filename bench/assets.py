"""Files the suite fetches, verifies and loads: datasets, checkpoints, the classifier.

One neutral place, used by codecs, datasets, classifier and training alike:
downloads (resumable, with a progress bar), torch files loaded only after
their sha256 is checked and only as data (``weights_only``), and the guard
that keeps commands from overwriting a committed asset.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.files import sha256_of


ASSETS_ENV = "BENCH_ASSETS"


def _asset_root() -> Path:
    """$BENCH_ASSETS, else the checkout this package runs from, else the copy a wheel carries (``bench/_assets``)."""
    if os.environ.get(ASSETS_ENV):
        return Path(os.environ[ASSETS_ENV]).expanduser()
    package = Path(__file__).resolve().parent
    return package / "_assets" if (package / "_assets").is_dir() else package.parent


IN_CHECKOUT = not (Path(__file__).resolve().parent / "_assets").is_dir()
"""Whether this package runs from a repository checkout (editable install or source tree) rather than a wheel."""


ASSET_ROOT = _asset_root()
"""The folder holding the committed assets: ``codecs/`` (checkpoints, classifier), ``datasets/`` (sample,
manifests), ``reports/baseline/``: the repository's top level in a checkout, ``bench/_assets`` in a wheel."""


class DownloadError(RuntimeError):
    """A download or an archive is unusable; the message says which and why."""


class AssetError(ValueError):
    """A file the suite needs is missing, altered or unsafe; the message names the file and the problem."""


class CommittedAsset(ValueError):
    """A command would overwrite a file committed with the suite without --force."""


def default_cache() -> Path:
    """Where dataset downloads go without --data-dir/$BENCH_DATA_DIR: the user cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rs-codec-bench" / "datasets"



def fetch_url(url: str, path: Path) -> None:
    """Download `url` to `path` with a progress bar, continuing a partial ``.part`` file where the server allows it.

    Raises:
        DownloadError: the server cannot be reached or the transfer broke; the message says where to put the
            file by hand.
    """
    from tqdm import tqdm

    partial = path.with_name(path.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = done and getattr(response, "status", 200) == 206
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(partial, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=0, unit="B", unit_scale=True, desc=path.name, leave=False
            ) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot fetch {url} ({reason}); without network, download it elsewhere and put it "
                            f"at {path}") from None  # fmt: skip
    partial.replace(path)


def load_torch(path: Path, sha256: str) -> dict:
    """The contents of the torch file at `path` after checking it against `sha256` (a full digest or a prefix).

    Loaded with ``weights_only=True``: a file cannot run code. A missing file, a
    wrong hash, a truncated file or anything but a dict is an `AssetError`.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: file not found")
    if not sha256:
        raise AssetError(f"{path}: no sha256 to verify it against")
    found = sha256_of(path)
    if not found.startswith(sha256):
        raise AssetError(f"{path}: sha256 mismatch: expected {sha256}…, found {found}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or a pickle that wants to run code
        raise AssetError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise AssetError(f"{path}: expected a dict, found {type(state).__name__}")
    return state


def refuse_replacing_other(path: Path, what: str, suffix: str, is_one: Callable[[Path], bool]) -> None:
    """AssetError unless `path` is a `suffix` file that is new or already `what` (`is_one`): an ``--out`` naming a
    run's results.sqlite or any other file must not replace it."""
    path = Path(path)
    if path.suffix != suffix:
        raise AssetError(f"--out {path}: {what} is written to a {suffix} file")
    try:
        same_kind = path.is_file() and is_one(path)
    except (OSError, ValueError, RecursionError):  # unreadable, not even text, or nested too deep
        same_kind = False
    if path.exists() and not same_kind:
        raise AssetError(f"--out {path}: exists and is not {what}; remove it or choose another path")


COMMITTED_FOLDERS = ("codecs", "datasets", "reports")
"""The folders of `ASSET_ROOT` that hold committed assets."""


def refuse_committed_folder(path: Path, advice: str, *, force: bool = False) -> None:
    """`CommittedAsset` when the output folder `path` is, or is inside, a committed asset folder and `force` is not
    given: a command writing there would replace committed files or mix its own among them. `advice` ends the
    message (what to do instead)."""
    resolved = Path(path).resolve()
    for name in COMMITTED_FOLDERS:
        folder = (ASSET_ROOT / name).resolve()
        if resolved.is_relative_to(folder) and not force:
            raise CommittedAsset(f"--out {path}: inside the committed {name}/ folder; {advice}")


def refuse_committed(path: Path, committed: Path, what: str, force: bool) -> None:
    """`CommittedAsset` when `path` is the committed file `committed` and `force` is not given."""
    if Path(path).resolve() == Path(committed).resolve() and Path(committed).exists() and not force:
        raise CommittedAsset(f"{path} is {what}; add --force to replace it")
