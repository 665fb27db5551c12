"""What the command line accepts: every subcommand's options, with their types, defaults and help.

Parsing only: values are checked for form here (numbers, ranges, lists) and
for meaning by the module that owns them (`bench.config.check_config`, the
codec and dataset registries). `bench.cli` runs the chosen command.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD, DEFAULT_RESAMPLES, MAX_RESAMPLES, METHODS
from bench.codecs import CODECS
from bench.codecs.checkpoints import WEIGHTS_DIR_ENV, weights_dir_from_env
from bench.codecs.learned import ARCHITECTURES, DEVICES
from bench.config import ADAPT_STEPS, PROTOCOL_CHOICES
from bench.datasets import DATA_DIR_ENV, DATASETS, DEFAULT_SEED, SPLITS
from bench.images import DEFAULT_MAX_PIXELS
from bench.tasks.classifier import DEFAULT_NETWORK, NETWORKS

EXIT_USAGE = 2
DESCRIPTION = ("Benchmark image codecs on remote-sensing imagery: rate, distortion and land-cover accuracy, "
               "learned and classical codecs under one protocol.")  # fmt: skip


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and defaults shown in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def number(kind: type, *, minimum: float, inclusive: bool = True, maximum: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite `kind` ≥ `minimum` (> when not `inclusive`) and ≤ `maximum`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {'≥' if inclusive else '>'} {minimum:g}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be ≤ {maximum:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def names(text: str) -> list[str]:
    """A non-empty comma list: ``"jpeg, webp,"`` → ``["jpeg", "webp"]``."""
    listed = [name.strip() for name in text.split(",") if name.strip()]
    if not listed:
        raise argparse.ArgumentTypeError(f"{text!r}: an empty list")
    return listed


def path(text: str) -> Path:
    """A non-empty path (an empty one would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def codec_file(text: str) -> str:
    """A ``.toml`` codec file (any other name would be imported as a plug-in module)."""
    if Path(text).suffix != ".toml":
        raise argparse.ArgumentTypeError(f"{text!r}: a codec file is a .toml file (see bench/codecs/external.py)")
    return text


SEED = number(int, minimum=0)  # NumPy's generators take no negative seed
POSITIVE = number(int, minimum=1)


def whole_numbers(text: str) -> list[int]:
    """``"1,3"`` → ``[1, 3]``."""
    try:
        return [int(value) for value in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas") from None


def quality_spec(text: str) -> tuple[str | None, tuple[float, ...]]:
    """``10,50`` (every codec) or ``jpeg=10,50`` (one codec) → (codec or None, values)."""
    target, _, values = text.rpartition("=")
    if "=" in target or "," in target:
        raise argparse.ArgumentTypeError(f"{text!r}: one codec per --qualities (repeat the option for another)")
    try:
        parsed = tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None
    if not parsed:
        raise argparse.ArgumentTypeError(f"{text!r}: no values")
    return (target or None), parsed


def _plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE.py",
                        help="import a plug-in that registers codecs (repeatable; entry points load by themselves)")
    parser.add_argument("--codec-file", action="append", dest="plugin", metavar="FILE.toml", type=codec_file,
                        help="codecs defined by external encoder/decoder commands (repeatable; see bench/codecs/external.py)")


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anchor", default=DEFAULT_ANCHOR, help="codec the BD tables compare against")
    parser.add_argument("--bd-method", choices=METHODS, default=DEFAULT_METHOD,
                        help="interpolation of BD deltas (pchip: the HEVC/VVC common test conditions)")
    parser.add_argument("--bootstrap", type=number(int, minimum=0, maximum=MAX_RESAMPLES), default=DEFAULT_RESAMPLES, metavar="N",
                        help="image resamples behind each BD value's 95%% interval (0: none)")
    parser.add_argument("--include-seen", action="store_true",
                        help="keep images a committed model trained or was selected on in means and scores")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--reference", action="append", default=[], metavar="[DATASET=]FILE.json",
                        help="a published curve in CompressAI's results format, drawn dotted in the RD plots and "
                             "compared in the BD tables (repeatable; without DATASET=, every dataset of the run)")


def _run(commands, data_help: str) -> None:
    run = commands.add_parser("run", help="sweep codecs × qualities over datasets (resumes an earlier run)")
    _plugin_options(run)
    run.add_argument("--datasets", type=names, default="eurosat", help=f"comma list of {', '.join(DATASETS)}, folder:PATH")
    run.add_argument("--codecs", type=names, default=",".join(CODECS), help="comma list (default: all); see `codecs`")
    run.add_argument("--qualities", type=quality_spec, action="append", default=[], metavar="[CODEC=]Q,Q,…",
                     help="override the default sweep, for every codec or one (repeatable)")
    run.add_argument("--split", default="all", choices=["all", *SPLITS], help="which split to evaluate")
    run.add_argument("--limit", type=number(int, minimum=1), help="stratified subset of N images per dataset")
    run.add_argument("--seed", type=SEED, default=DEFAULT_SEED, help="seed of splits and subsets")
    run.add_argument("--jobs", type=number(int, minimum=0), default=0, help="worker processes (0: one per core)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run the tasks on this Dask cluster instead of the local pool (pip install .[dask])")
    run.add_argument("--time-limit", type=number(float, minimum=0, inclusive=False), default=120.0, metavar="SECONDS",
                     help="per encode+decode; a codec still running after it is killed and recorded")
    run.add_argument("--out", type=path, help="run directory (default: runs/<datasets>); an existing one is resumed")
    run.add_argument("--data-dir", type=path, help=data_help)
    run.add_argument("--weights-dir", type=path, default=weights_dir_from_env(),
                     help=f"your checkpoints (bench train --out) or official CompressAI ones; they replace committed "
                          f"ones of equal quality (default ${WEIGHTS_DIR_ENV})")  # fmt: skip
    run.add_argument("--device", choices=DEVICES, default="cpu",
                     help="where learned codecs run their transforms (cuda: a GPU); quantisation, hyperprior and "
                          "entropy coding stay on the CPU, so streams decode the same anywhere")  # fmt: skip
    run.add_argument("--max-pixels", type=number(int, minimum=1), default=DEFAULT_MAX_PIXELS,
                     help="pixel budget per image, checked from its header; larger images become error rows")
    run.add_argument("--keep-failed", action="store_true",
                     help="on a resume, keep failed rows as they are instead of measuring them again (a codec that "
                          "hangs costs --time-limit per row each time)")  # fmt: skip
    run.add_argument("-v", "--verbose", action="store_true", help="say why each skipped codec is unavailable")
    run.add_argument("--no-report", action="store_true", help="write tables only, not report.md/html")
    run.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="fixed",
                     help="downstream protocols: fixed (one reference classifier); adapted or both add the classifier "
                          "fine-tuned on each codec's own decoded tiles, cross-fitted (bench/tasks/adapt.py)")
    run.add_argument("--adapt-steps", type=number(int, minimum=1), default=ADAPT_STEPS, help="fine-tuning steps of each "
                     "adapted classifier (batch 64)")
    run.add_argument("--no-classify", action="store_true",
                     help="skip downstream accuracy (on by default for labelled datasets with a classifier)")
    _report_options(run)


def _train(commands, data_help: str) -> None:
    trainer = commands.add_parser("train", help="train a learned codec checkpoint (resumable) and write its card")
    trainer.add_argument("--arch", required=True, help="cvae, bmshj2018-factorized, bmshj2018-hyperprior, …")
    trainer.add_argument("--lmbda", type=number(float, minimum=0, inclusive=False), required=True, help="λ of the loss λ·255²·MSE + bpp")
    trainer.add_argument("--quality", type=number(int, minimum=0, maximum=255), required=True, help="quality index the checkpoint is stored under")
    trainer.add_argument("--dataset", default="eurosat")
    trainer.add_argument("--data-dir", type=path, help=data_help)
    trainer.add_argument("--channels", type=POSITIVE, default=64, help="N: channels of the transforms")
    trainer.add_argument("--latent-channels", type=POSITIVE, default=96, help="M: latent channels")
    trainer.add_argument("--stages", type=number(int, minimum=1, maximum=8), help="cvae: stride-2 stages per transform (default 4: 16× down-sampling)")
    trainer.add_argument("--steps", type=POSITIVE, default=10_000)
    trainer.add_argument("--batch-size", type=POSITIVE, default=16)
    trainer.add_argument("--lr", type=number(float, minimum=0, inclusive=False), default=1e-4)
    trainer.add_argument("--seed", type=SEED, default=0, help="seed of initialisation and batches")
    trainer.add_argument("--split-seed", type=SEED, default=DEFAULT_SEED, help="seed of the train/val/test split")
    trainer.add_argument("--val-every", type=POSITIVE, default=500, help="validate and save a resumable state every N steps")
    trainer.add_argument("--init", type=path, help="start from this checkpoint, verified by its card (fine-tune to another λ)")
    trainer.add_argument("--out", type=path, default=Path("runs/codecs"),
                         help="checkpoint folder: writes <out>/<arch>/<arch>-q<k>.pt and its card; use it as --weights-dir")
    trainer.add_argument("--force", action="store_true", help="allow replacing a committed checkpoint in codecs/")
    trainer.add_argument("--work", type=path, default=Path("runs/train"), help="resumable training state")
    trainer.add_argument("--threads", type=number(int, minimum=0), default=0, help="torch threads (0: torch's choice)")
    trainer.add_argument("--device", choices=DEVICES, default="cpu",
                         help="where the network trains; checkpoints and entropy tables are always built on the CPU")
    trainer.add_argument("--lambda-class", type=number(float, minimum=0), default=0.0,
                         help="task-aware: weight of a classification term; loss = λrec·MSE + λbpp·bpp + λclass·CE")
    trainer.add_argument("--lambda-rec", type=number(float, minimum=0), default=10.0, help="task-aware: λrec (seed's best 10)")
    trainer.add_argument("--lambda-bpp", type=number(float, minimum=0), default=0.075, help="task-aware: λbpp (seed's best 0.075)")


def _classifier(commands, data_help: str) -> None:
    classifier = commands.add_parser("classifier", help="train the reference land-cover classifier of a dataset")
    classifier.add_argument("action", choices=["train", "views"],
                            help="train: train (or resume) one; views: choose a trained one's test-time views on val "
                                 "(train does this at its end) and write them into its card")
    classifier.add_argument("--dataset", default="eurosat")
    classifier.add_argument("--data-dir", type=path, help=data_help)
    classifier.add_argument("--out", type=path, default=Path("runs/classifier"),
                            help="folder for <dataset>.pt and its card (codecs/classifier is the committed one)")
    classifier.add_argument("--force", action="store_true", help="allow replacing the committed classifier")
    classifier.add_argument("--network", choices=sorted(NETWORKS), default=DEFAULT_NETWORK)
    classifier.add_argument("--epochs", type=POSITIVE, default=30)
    classifier.add_argument("--batch-size", type=POSITIVE, default=128)
    classifier.add_argument("--lr", type=number(float, minimum=0, inclusive=False), default=0.1)
    classifier.add_argument("--copies", type=POSITIVE, default=2, help="re-encoded copies of each train tile")
    classifier.add_argument("--cache", type=path, help="folder for the re-encoded copies (default: --out)")
    classifier.add_argument("--seed", type=SEED, default=0)
    classifier.add_argument("--split-seed", type=SEED, default=DEFAULT_SEED)
    classifier.add_argument("--threads", type=number(int, minimum=0), default=0)


def _small_commands(commands, data_help: str) -> None:
    _plugin_options(commands.add_parser("codecs", help="list codecs, availability, versions and default sweeps"))

    datasets = commands.add_parser("datasets", help="list datasets (where found, counts, licences); download one; "
                                                    "write a split manifest")  # fmt: skip
    datasets.add_argument("action", nargs="?", default="list", choices=["list", "download", "manifest"])
    datasets.add_argument("name", nargs="?", default="eurosat", help="dataset for download/manifest")
    datasets.add_argument("--data-dir", type=path, help=data_help)
    datasets.add_argument("--seed", type=SEED, default=DEFAULT_SEED, help="split seed of the manifest")
    datasets.add_argument("--out", type=path, help="manifest path (default runs/manifests/<name>-seed<seed>.csv)")
    datasets.add_argument("--force", action="store_true", help="allow replacing a committed manifest in datasets/")

    latent = commands.add_parser("latent", help="classification from learned-codec latents vs pixels, t-SNE")
    latent.add_argument("--arch", default="cvae", choices=ARCHITECTURES)
    latent.add_argument("--qualities", type=whole_numbers, default="3", help="comma list of checkpoint qualities")
    latent.add_argument("--dataset", default="eurosat")
    latent.add_argument("--data-dir", type=path, help=data_help)
    latent.add_argument("--epochs", type=POSITIVE, default=15)
    latent.add_argument("--seed", type=SEED, default=DEFAULT_SEED)
    latent.add_argument("--train-limit", type=POSITIVE, help="stratified subset of the train split")
    latent.add_argument("--out", type=path, default=Path("runs/eurosat"), help="run directory whose report shows them")
    latent.add_argument("--weights-dir", type=path, default=weights_dir_from_env(), help="as for `run`")

    weights = commands.add_parser("weights", help="list learned-codec checkpoints, or download official ones")
    weights.add_argument("action", nargs="?", default="list", choices=["list", "download"])
    weights.add_argument("--arch", default="bmshj2018-hyperprior", help="architecture to download")
    weights.add_argument("--qualities", type=whole_numbers, help="comma list of quality indices to download (default: all)")
    weights.add_argument("--weights-dir", type=path, default=weights_dir_from_env(),
                         help=f"your or official checkpoints (default ${WEIGHTS_DIR_ENV}; downloads: the user cache)")

    baseline = commands.add_parser("baseline", help="write (or update) the quality baseline of a run")
    baseline.add_argument("run", type=path, help="run directory")
    baseline.add_argument("--out", type=path, help="baseline file (default reports/baseline/<dataset>-<sample|full>.json)")
    baseline.add_argument("--anchor", default=DEFAULT_ANCHOR)
    baseline.add_argument("--force", action="store_true", help="allow replacing a committed baseline")

    check = commands.add_parser("check", help="compare a run with its baseline: exit 0 ok, 1 regression, 2 usage error")
    check.add_argument("run", type=path, help="run directory")
    check.add_argument("--baseline", type=path, help="baseline file (default: the committed one matching the run)")
    check.add_argument("--tolerance", action="append", default=[], metavar="METRIC=AMOUNT",
                       help="bpp (relative), psnr (dB), ssim, bd_rate_psnr (percentage points); repeatable")
    check.add_argument("--verbose", action="store_true", help="show every checked value, not only the failing ones")

    exporter = commands.add_parser("export", help="write a run's curves in another tool's format (CompressAI's)")
    exporter.add_argument("run", type=path, help="run directory (the --out of `run`)")
    exporter.add_argument("--format", choices=["compressai"], default="compressai")
    exporter.add_argument("--out", type=path, help="folder (default RUN/export/FORMAT)")
    exporter.add_argument("--anchor", default=DEFAULT_ANCHOR, help="codec the exported BD deltas compare against")

    report = commands.add_parser("report", help="regenerate tables and reports of a run from its database")
    _plugin_options(report)
    report.add_argument("run", type=path, help="run directory (the --out of `run`)")
    _report_options(report)
    report.add_argument("--out", type=path, metavar="DIR",
                        help="write tables and reports here instead of the run directory (a read-only run, or "
                             "reports against several anchors side by side)")  # fmt: skip
    report.add_argument("--force", action="store_true", help="replace a committed report under reports/")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m bench``; the chosen subcommand is ``args.command``."""
    parser = Parser(prog="python -m bench", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    data_help = f"root holding one folder per dataset (default: ${DATA_DIR_ENV}; EuroSAT falls back to the shipped sample)"
    for add in (_run, _train, _classifier, _small_commands):
        add(commands, data_help)
    return parser
