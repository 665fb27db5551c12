"""Finding, verifying and loading learned-codec checkpoints.

Sources, per architecture and quality (a later one replaces an earlier one):

1. checkpoints committed in the repository's ``codecs/<arch>/`` folder, each a
   ``<arch>-q<k>.pt`` with its card ``<arch>-q<k>.json`` (architecture, λ,
   data and split, steps, seed, validation bpp/PSNR, sha256, command);
2. official CompressAI checkpoints in a user directory (``--weights-dir`` or
   $BENCH_WEIGHTS_DIR), recognised by CompressAI's file names
   (``bmshj2018-hyperprior-3-6d87be32.pth.tar``) and verified by the sha256
   prefix in the name;
3. checkpoints with cards in that directory, as ``python -m bench train --out DIR``
   writes them.

The user's directory wins: a quality found there replaces the committed one.

Every file is loaded with ``torch.load(weights_only=True)``: a checkpoint
cannot run code. A wrong hash, a truncated file or a state dict that does not
fit the architecture is a `CheckpointError` naming the file (`bench.assets`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from bench.assets import ASSET_ROOT, AssetError, fetch_url, load_torch
from bench.files import sha256_of
from bench.names import UnknownName

COMMITTED_DIR = ASSET_ROOT / "codecs"
WEIGHTS_DIR_ENV = "BENCH_WEIGHTS_DIR"

# CompressAI's file-name prefixes of its official MSE-trained checkpoints.
OFFICIAL_PREFIXES = {
    "bmshj2018-factorized": "bmshj2018-factorized-prior",
    "bmshj2018-hyperprior": "bmshj2018-hyperprior",
    "mbt2018-mean": "mbt2018-mean",
    "mbt2018": "mbt2018",
    "cheng2020-anchor": "cheng2020_anchor",
    "cheng2020-attn": "cheng2020_attn",
}


class CheckpointError(AssetError):
    """A checkpoint file is unusable; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint file: which architecture and quality it is, and how to verify it."""

    arch: str
    quality: int
    path: Path
    sha256: str  # full digest (committed cards) or the prefix in an official file name
    source: str  # "committed" or "official"
    card: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)



def committed(arch: str, root: Path | None = None, source: str = "committed") -> dict[int, Checkpoint]:
    """Checkpoints of `arch` with cards, as `train` writes them, in the repository (or under `root`), by quality."""
    found = {}
    for card_path in sorted(((root or COMMITTED_DIR) / arch).glob(f"{arch}-q*.json")):
        checkpoint = _from_card(card_path, source)
        found[checkpoint.quality] = checkpoint
    return found


def _from_card(card_path: Path, source: str) -> Checkpoint:
    try:
        card = json.loads(card_path.read_text())
        return Checkpoint(card["arch"], int(card["quality"]), card_path.with_suffix(".pt"), card["sha256"], source, card)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{card_path}: not a checkpoint card ({type(exc).__name__}: {exc})") from None


def official(arch: str, weights_dir: Path | None) -> dict[int, Checkpoint]:
    """Official CompressAI checkpoints of `arch` in `weights_dir`, by quality."""
    prefix = OFFICIAL_PREFIXES.get(arch)
    if weights_dir is None or prefix is None or not weights_dir.is_dir():
        return {}
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-([0-9a-f]{{8}})\.pth(\.tar)?$")
    found = {}
    for path in sorted(weights_dir.iterdir()):
        if match := pattern.match(path.name):
            quality = int(match.group(1))
            found[quality] = Checkpoint(arch, quality, path, match.group(2), "official")
    return found


def weights_dir_from_env() -> Path | None:
    """The weights directory named by $BENCH_WEIGHTS_DIR (read by the command line only, then passed explicitly)."""
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def resolve(arch: str, weights_dir: Path | None = None) -> dict[int, Checkpoint]:
    """Every usable quality of `arch`; the user's `weights_dir` wins over the repository's checkpoints.

    In `weights_dir`: checkpoints with cards as ``python -m bench train --out DIR`` writes them
    (``DIR/<arch>/<arch>-q<k>.pt``), then CompressAI's official files; then the committed ones.
    """
    if weights_dir is None:
        return committed(arch)
    return {**committed(arch), **official(arch, weights_dir), **committed(arch, weights_dir, "weights-dir")}


def load_state(checkpoint: Checkpoint) -> dict:
    """The verified contents of `checkpoint` (a dict of tensors and plain values)."""
    try:
        return load_torch(checkpoint.path, checkpoint.sha256)
    except AssetError as exc:
        raise CheckpointError(str(exc)) from None


def from_card(path: Path, source: str = "committed") -> Checkpoint:
    """The checkpoint at `path` as its card (``path.with_suffix(".json")``) describes it; CheckpointError without one."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.is_file():
        raise CheckpointError(f"{path}: no card {card_path.name} beside it (its sha256 verifies the file)")
    return _from_card(card_path, source)


def official_urls(arch: str) -> dict[int, str]:
    """CompressAI's URLs of the official MSE-trained checkpoints of `arch`, by quality."""
    from bench.codecs.compressai_compat import import_compressai

    import_compressai()
    from compressai.zoo.image import model_urls

    return dict(model_urls.get(arch, {}).get("mse", {}))


def download_official(arch: str, qualities: list[int], target: Path, urls: dict[int, str] | None = None) -> list[Path]:
    """Download official checkpoints into `target`, each verified by the sha256 prefix in its name.

    For users with internet; never called by the tests against the network.
    A file already present with the right hash is kept; a download resumes a
    partial file and is deleted when its hash is wrong.
    """
    urls = urls if urls is not None else official_urls(arch)
    missing = [q for q in qualities if q not in urls]
    if missing:
        raise UnknownName(f"{arch}: no official checkpoint for quality {missing} (have {sorted(urls)})")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for quality in qualities:
        name = urls[quality].rsplit("/", 1)[-1]
        expected = re.search(r"-([0-9a-f]{8})\.pth", name).group(1)
        path = target / name
        if path.is_file() and sha256_of(path).startswith(expected):
            written.append(path)
            continue
        fetch_url(urls[quality], path)
        found = sha256_of(path)
        if not found.startswith(expected):
            path.unlink()
            raise CheckpointError(f"{urls[quality]}: sha256 mismatch: expected {expected}…, found {found}")
        written.append(path)
    return written


def restore_weights(model, state_dict: dict) -> None:
    """Load a checkpoint's state dict into `model`: floats back to float32, constant buffers from `model`.

    Non-learned float buffers (likelihood lower bounds, GDN pedestals: values
    like 1e-9 that float16 would flush to zero) are kept from the freshly
    built model; checkpoints store learned parameters in float16.
    """
    parameters = {name for name, _ in model.named_parameters()}
    fresh = model.state_dict()
    weights = {}
    for name, value in state_dict.items():
        if value.is_floating_point() and name not in parameters and name in fresh:
            weights[name] = fresh[name]
        else:
            weights[name] = value.float() if value.is_floating_point() else value
    model.load_state_dict(weights)


SOURCE_REASONS = {"committed": "committed", "official": "official file in the weights dir (replaces committed)",
           "weights-dir": "trained, in the weights dir (replaces committed)"}  # fmt: skip
"""Why a quality resolves to its file, as `bench weights` says it."""


def listing(archs: list[str], weights_dir: Path | None = None) -> list[str]:
    """One line per architecture and quality: the file it resolves to, why, its hash and its card's numbers."""
    width = max(map(len, archs))
    lines = []
    for arch in archs:
        found = resolve(arch, weights_dir)
        if not found:
            lines.append(f"{arch:<{width}} no checkpoints")
        for quality, checkpoint in sorted(found.items()):
            card = checkpoint.card
            numbers = (f" λ={card['lmbda']} val {card.get('val_bpp', float('nan')):.3f} bpp / "
                       f"{card.get('val_psnr', float('nan')):.2f} dB") if card else ""  # fmt: skip
            lines.append(f"{arch:<{width}} q{quality} {checkpoint.path} ({SOURCE_REASONS[checkpoint.source]}; "
                         f"sha256 {checkpoint.sha256[:12]}){numbers}")  # fmt: skip
    return lines


def default_download_dir(weights_dir: Path | None) -> Path:
    """Where `bench weights download` writes: the given weights dir, else the user cache beside the datasets'."""
    from bench.assets import default_cache

    return weights_dir or default_cache().parent / "weights"
