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
fit the architecture is a `CheckpointError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from bench.files import sha256_of

COMMITTED_DIR = Path(__file__).resolve().parents[2] / "codecs"
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


class CheckpointError(ValueError):
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
        card = json.loads(card_path.read_text())
        path = card_path.with_suffix(".pt")
        found[int(card["quality"])] = Checkpoint(arch, int(card["quality"]), path, card["sha256"], source, card)
    return found


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


def weights_dir() -> Path | None:
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def resolve(arch: str) -> dict[int, Checkpoint]:
    """Every usable quality of `arch`; the user's weights directory wins over the repository's checkpoints.

    In the weights directory: checkpoints with cards as ``python -m bench train --out DIR`` writes them
    (``DIR/<arch>/<arch>-q<k>.pt``), then CompressAI's official files; then the committed ones.
    """
    user = weights_dir()
    if user is None:
        return committed(arch)
    return {**committed(arch), **official(arch, user), **committed(arch, user, "weights-dir")}


def load_state(checkpoint: Checkpoint) -> dict:
    """The verified contents of `checkpoint` (a dict of tensors and plain values)."""
    import torch

    path = checkpoint.path
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    found = sha256_of(path)
    if not found.startswith(checkpoint.sha256):
        raise CheckpointError(f"{path}: sha256 mismatch: expected {checkpoint.sha256}…, found {found}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or a pickle that wants to run code
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(state).__name__}")
    return state


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
    from bench.datasets.download import fetch_url

    urls = urls if urls is not None else official_urls(arch)
    missing = [q for q in qualities if q not in urls]
    if missing:
        raise ValueError(f"{arch}: no official checkpoint for quality {missing} (have {sorted(urls)})")
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
