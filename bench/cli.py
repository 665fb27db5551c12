"""Command line: ``python -m bench {run,codecs,datasets,train,classifier,latent,weights,report,baseline,check}``.

Exit codes: 0 success, 1 failure, 2 usage error (unknown name, missing data),
3 the run directory is in use by another sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.bd import DEFAULT_ANCHOR, DEFAULT_RESAMPLES, DEFAULT_METHOD as DEFAULT_BD_METHOD, METHODS as BD_METHODS
from bench.codecs import CODECS
from bench.images import DEFAULT_MAX_PIXELS
from bench.store import DB_NAME
from bench.tasks.classifier import DEFAULT_NETWORK, NETWORKS
from bench.datasets import DATA_DIR_ENV, DATASETS, DEFAULT_SEED, SPLITS, DatasetNotFound, check_name, load_dataset

EXIT_USAGE, EXIT_LOCKED, EXIT_INTERNAL = 2, 3, 4
TRACEBACK_ENV = "BENCH_TRACEBACK"  # set to 1 to see the traceback of an internal error
MAX_ERRORS_PRINTED = 20


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and defaults shown in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def _number(kind: type, *, minimum: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite `kind` ≥ `minimum` (> when not `inclusive`)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {'≥' if inclusive else '>'} {minimum:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _did_you_mean(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_qualities(specs: Sequence[str], codecs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``--qualities 10,50`` (every selected codec) and/or ``--qualities jpeg=10,50`` (one codec, once each).

    A codec's own spec wins over the general one whatever their order; every
    value is checked against the codec's valid qualities before anything runs.
    """
    general: tuple[float, ...] | None = None
    own: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        target, _, values = spec.rpartition("=")
        if target and target not in codecs:
            raise UsageError(f"--qualities {spec}: codec {target!r} is not among --codecs ({', '.join(codecs)})")
        try:
            parsed = tuple(float(v) for v in _names(values))
        except ValueError:
            raise UsageError(f"--qualities {spec}: expected numbers separated by commas") from None
        if not parsed:
            raise UsageError(f"--qualities {spec}: no values")
        if (target in own) if target else (general is not None):
            raise UsageError(f"--qualities {spec}: {'codec ' + target if target else 'the general list'} given twice")
        if target:
            own[target] = parsed
        else:
            general = parsed
    chosen = {name: own.get(name, general) for name in codecs if own.get(name, general) is not None}
    for name, values in chosen.items():
        try:
            chosen[name] = tuple(CODECS[name].check_quality(value) for value in values)
        except ValueError as exc:
            raise UsageError(f"--qualities: {exc}") from None
    return chosen


def _check_codecs(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}{_did_you_mean(unknown[0], list(CODECS))}; "
                         f"valid: {', '.join(CODECS)}")  # fmt: skip


def _check_datasets(names: Sequence[str]) -> None:
    for name in names:
        try:
            check_name(name)
        except KeyError:
            raise UsageError(f"unknown dataset {name!r}{_did_you_mean(name, list(DATASETS))}; valid: "
                             f"{', '.join(DATASETS)}, folder:PATH") from None  # fmt: skip


def _check_run_arguments(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: paths that must exist or must not be files, the anchor's name."""
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a run directory")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such directory (leave the flag out to use the shipped sample)")
    if args.anchor not in CODECS:
        raise UsageError(f"--anchor {args.anchor!r}: unknown codec{_did_you_mean(args.anchor, list(CODECS))}")


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the sweep."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM become `Interrupted`: the sweep stops its workers and keeps what it stored."""

    def handler(signum, _frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import RunLocked, RunMismatch, SweepConfig, sweep

    if args.weights_dir:
        from bench.codecs import checkpoints, refresh_learned

        os.environ[checkpoints.WEIGHTS_DIR_ENV] = str(args.weights_dir)  # inherited by the workers
        refresh_learned()
    datasets, codecs = _names(args.datasets), _names(args.codecs)
    _check_datasets(datasets)
    _check_codecs(codecs)
    _check_run_arguments(args)
    out = Path(args.out or Path("runs") / "+".join(d.replace("/", "_").replace(":", "_") for d in datasets))
    config = SweepConfig(
        datasets=datasets, codecs=codecs, out=out, qualities=parse_qualities(args.qualities, codecs),
        split=args.split, limit=args.limit, seed=args.seed, jobs=args.jobs, data_dir=args.data_dir,
        progress=not args.no_progress, seconds_per_pair=args.time_limit, scheduler=args.scheduler,
        classify=not args.no_classify, max_pixels=args.max_pixels, command=args.command_line,
        plugins=tuple(args.plugin),
    )  # fmt: skip
    try:
        with _signals_as_interrupts():
            summary = sweep(config)
    except (DatasetNotFound, RunMismatch) as exc:
        raise UsageError(str(exc)) from None
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except Interrupted as exc:
        _write_outputs(out, args, report=not args.no_report)
        print(f"interrupted by {exc}: every finished row is stored in {out / DB_NAME} and the tables cover them; "
              "run the same command again to resume", file=sys.stderr)  # fmt: skip
        return 128 + exc.signum
    for name, source in summary.datasets.items():
        print(f"dataset {name}: {source}")
    if summary.unavailable and args.verbose:
        for name, reason in summary.unavailable.items():
            print(f"skipped codec {name}: {reason}")
    elif summary.unavailable:
        print(f"skipped {len(summary.unavailable)} unavailable codec(s): {', '.join(summary.unavailable)} "
              "(why: -v or `python -m bench codecs`)")  # fmt: skip
    print(
        f"{summary.rows_written} rows written, {summary.rows_already_done} already done, "
        f"{summary.errors.total()} failed rows, {summary.seconds:.1f} s"
        + (f"; {summary.rows_forgotten} rows of changed images measured again" if summary.rows_forgotten else "")
    )
    for error, count in summary.errors.most_common(MAX_ERRORS_PRINTED):
        print(f"  failed ({count} rows): {error}")
    if len(summary.errors) > MAX_ERRORS_PRINTED:
        print(f"  … {len(summary.errors) - MAX_ERRORS_PRINTED} more kinds of failure in the report's Failures section")
    paths = _write_outputs(out, args, report=not args.no_report)
    print(f"results in {out}/: {DB_NAME}, " + ", ".join(p.name for p in paths.values()))
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    width = max(map(len, CODECS))
    for codec in CODECS.values():
        state = codec.version if codec.available else f"UNAVAILABLE: {codec.unavailable_reason}"
        print(f"{codec.name:<{width}} {codec.family:<9} {state}")
        print(f"{'':<{width}} {codec.description}")
        print(f"{'':<{width}} sweep ({codec.quality_name}): {', '.join(f'{q:g}' for q in codec.qualities)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.action == "download":
        from bench.datasets.download import MANUAL, SOURCES, DownloadError, default_cache, download

        if args.name not in SOURCES and args.name not in MANUAL:
            raise UsageError(f"datasets download {args.name!r}: not downloadable{_did_you_mean(args.name, list(SOURCES))}; "
                             f"downloadable: {', '.join(SOURCES)}")  # fmt: skip
        root = args.data_dir or data_dir_from_env() or default_cache()
        try:
            for path in download(args.name, root):
                print(f"ok {path}")
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.action == "manifest":
        from bench.datasets import assign_splits
        from bench.datasets.base import manifest_path, write_manifest

        dataset = _load_or_usage_error(args.name, args.data_dir)
        committed = manifest_path(dataset.name, args.seed)
        path = args.out or Path("runs") / "manifests" / committed.name
        _refuse_committed(path, committed, "the committed split every committed model used", args.force)
        write_manifest(assign_splits(dataset.records, args.seed), path)
        print(f"wrote {path} ({len(dataset.records)} images of {dataset.source})")
        return 0
    width = max(map(len, DATASETS))
    for name in DATASETS:
        try:
            dataset = load_dataset(name, args.data_dir)
        except DatasetNotFound as exc:
            print(f"{name:<{width}} not found: {exc}")
            continue
        classes = f"{len(dataset.classes)} classes" if dataset.labelled else "unlabelled"
        print(f"{name:<{width}} {dataset.source}; {classes}; licence: {dataset.licence}")
    return 0


def data_dir_from_env() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def _load_or_usage_error(name: str, data_dir: Path | None):
    _check_datasets([name])
    try:
        return load_dataset(name, data_dir)
    except DatasetNotFound as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    run = _run_dir(args.run)
    paths = _write_outputs(run, args)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bench.codecs import checkpoints
    from bench.codecs.learned import ARCHITECTURES
    from bench.train import TrainConfig, train

    if args.arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {args.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    _check_datasets([args.dataset])
    if args.arch.startswith("cvae"):
        config = {"channels": args.channels, "latent_channels": args.latent_channels}
    elif args.arch.startswith("cheng2020"):
        config = {"N": args.channels}
    else:
        config = {"N": args.channels, "M": args.latent_channels}
    target = args.out / args.arch / f"{args.arch}-q{args.quality}.pt"
    committed = checkpoints.COMMITTED_DIR / args.arch / target.name
    _refuse_committed(target, committed, "a committed checkpoint", args.force)
    settings = TrainConfig(
        arch=args.arch, lmbda=args.lmbda, quality=args.quality, config=config, dataset=args.dataset,
        data_dir=args.data_dir, split_seed=args.split_seed, seed=args.seed, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, val_every=args.val_every, init=args.init, out=args.out,
        work=args.work, threads=args.threads, device=_device(args.device), lambda_class=args.lambda_class,
        lambda_rec=args.lambda_rec,
        lambda_bpp=args.lambda_bpp,
    )  # fmt: skip
    try:
        path = train(settings)
    except DatasetNotFound as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def _device(name: str) -> str:
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    return name


def cmd_weights(args: argparse.Namespace) -> int:
    from bench.codecs import checkpoints
    from bench.codecs.learned import ARCHITECTURES

    if args.action == "download":
        if args.arch not in checkpoints.OFFICIAL_PREFIXES:
            raise UsageError(f"no official checkpoints for {args.arch!r}; valid: {', '.join(checkpoints.OFFICIAL_PREFIXES)}")
        from bench.datasets.download import DownloadError, default_cache

        target = args.weights_dir or checkpoints.weights_dir() or default_cache().parent / "weights"
        qualities = [int(q) for q in _names(args.qualities)] if args.qualities else sorted(checkpoints.official_urls(args.arch))
        try:
            for path in checkpoints.download_official(args.arch, qualities, target):
                print(f"ok {path}")
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"use them with --weights-dir {target} (or ${checkpoints.WEIGHTS_DIR_ENV})")
        return 0
    if args.weights_dir:
        os.environ[checkpoints.WEIGHTS_DIR_ENV] = str(args.weights_dir)
    for arch in ARCHITECTURES:
        found = checkpoints.resolve(arch)
        if not found:
            print(f"{arch:<22} no checkpoints")
        for quality, checkpoint in sorted(found.items()):
            card = checkpoint.card
            extra = f"λ={card['lmbda']} val {card.get('val_bpp', float('nan')):.3f} bpp / {card.get('val_psnr', float('nan')):.2f} dB" if card else ""
            why = {"committed": "committed", "official": "official file in the weights dir (replaces committed)",
                   "weights-dir": "trained, in the weights dir (replaces committed)"}[checkpoint.source]  # fmt: skip
            print(f"{arch:<22} q{quality} {checkpoint.path} ({why}; sha256 {checkpoint.sha256[:12]}) {extra}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.export import export
    from bench.run import Run

    directory = _run_dir(args.run)
    for path in export(Run(directory), args.format, args.out or directory / "export" / args.format):
        print(f"wrote {path}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.run import Run

    run = Run(_run_dir(args.run))
    try:
        path = gate.write_baseline(run, args.out, args.anchor)
    except gate.GateUsageError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.run import Run

    run = Run(_run_dir(args.run))
    try:
        path = Path(args.baseline) if args.baseline else gate.default_baseline(run)
        if not path.is_file():
            raise UsageError(f"no baseline at {path}; write one with `python -m bench baseline {run.directory}`")
        baseline = gate.load_baseline(path)
        diff = gate.compare(run, baseline, gate.parse_tolerances(args.tolerance))
    except gate.GateUsageError as exc:
        raise UsageError(str(exc)) from None
    shown = diff if args.verbose else diff[diff["status"] != "ok"]
    print(f"baseline {path} ({len(diff)} values checked)")
    if not shown.empty:
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for codec, (old, new) in gate.version_changes(run, baseline).items():
        print(f"note: {codec} library changed: {old} → {new}")
    regressions = int((diff["status"] == "REGRESSION").sum())
    print(f"{regressions} regression(s), {int((diff['status'] == 'improved').sum())} improvement(s)")
    return 1 if regressions else 0


def _run_dir(value: str) -> Path:
    run = Path(value)
    if not (run / DB_NAME).is_file():
        raise UsageError(f"{run}: no {DB_NAME} here; give the --out directory of a run")
    return run


def cmd_classifier(args: argparse.Namespace) -> int:
    from bench.tasks import classifier

    _check_datasets([args.dataset])
    out = args.out / f"{args.dataset}.pt"
    committed = classifier.path_for(args.dataset)
    _refuse_committed(out, committed, "the committed reference classifier", args.force)
    try:
        path = classifier.train(args.dataset, args.data_dir, out=out, network=args.network, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, seed=args.seed, split_seed=args.split_seed,
                                copies=args.copies, threads=args.threads, cache=args.cache)  # fmt: skip
    except DatasetNotFound as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_latent(args: argparse.Namespace) -> int:
    import json

    from bench.files import write_text
    from bench.reports.plots import save_png
    from bench.tasks import latent

    run = Path(args.out)
    (run / "plots").mkdir(parents=True, exist_ok=True)
    path = run / "latent.json"
    found = json.loads(path.read_text()) if path.is_file() else []
    for quality in [int(q) for q in _names(args.qualities)]:
        outcome = latent.evaluate_latents(args.arch, quality, args.dataset, args.data_dir, args.epochs, args.seed,
                                          args.train_limit)  # fmt: skip
        result = outcome["result"]
        print(json.dumps(result))
        found = [r for r in found if (r["arch"], r["quality"]) != (args.arch, quality)] + [result]
        title = f"{args.dataset} test latents ŷ of {args.arch} q{quality} ({result['bpp']:.2f} bpp)"
        save_png(latent.tsne_figure(outcome["latents"], outcome["labels"], title),
                 run / "plots" / f"tsne-{args.arch}-q{quality}.png")  # fmt: skip
    write_text(path, json.dumps(found, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


def _add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE.py",
                        help="import a plug-in that registers codecs (repeatable; entry points load by themselves)")
    parser.add_argument("--codec-file", action="append", dest="plugin", metavar="FILE.toml",
                        help="codecs defined by external encoder/decoder commands (repeatable; see bench/codecs/external.py)")


def _refuse_committed(path: Path, committed: Path, what: str, force: bool) -> None:
    """Commands never overwrite a committed asset unless told to."""
    if path.resolve() == committed.resolve() and committed.exists() and not force:
        raise UsageError(f"{path} is {what}; add --force to replace it")


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anchor", default=DEFAULT_ANCHOR, help=f"codec the BD table compares against (default {DEFAULT_ANCHOR})")
    parser.add_argument("--bd-method", choices=BD_METHODS, default=DEFAULT_BD_METHOD,
                        help="interpolation of BD deltas (pchip: the HEVC/VVC common test conditions)")
    parser.add_argument("--bootstrap", type=_number(int, minimum=0), default=DEFAULT_RESAMPLES, metavar="N",
                        help="image resamples behind each BD-rate's 95%% interval (0: none)")
    parser.add_argument("--include-seen", action="store_true",
                        help="keep images a committed model trained or was selected on in means and scores")


def _write_outputs(directory: Path, args: argparse.Namespace, report: bool = True) -> dict[str, Path]:
    """Tables (and reports) of a run, with the warnings a reader must see on the terminal too."""
    from bench.reports import write_reports
    from bench.run import Run
    from bench.tables import small_samples, write_tables

    run = Run(directory, include_seen=args.include_seen, bootstrap=args.bootstrap)
    paths = write_tables(run, args.anchor, args.bd_method)
    if not paths:
        print(f"warning: {directory / DB_NAME} holds no rows: no tables or reports written", file=sys.stderr)
        return paths
    if report:
        paths.update(write_reports(run, args.anchor, args.bd_method))
    for warning in small_samples(run.summary):
        print(f"warning: {warning}", file=sys.stderr)
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_help = f"root holding one folder per dataset (default: ${DATA_DIR_ENV}; EuroSAT falls back to the shipped sample)"

    run = commands.add_parser("run", help="sweep codecs × qualities over datasets (resumes an earlier run)")
    _add_plugin_options(run)
    run.add_argument("--datasets", default="eurosat", help=f"comma list of {', '.join(DATASETS)}, folder:PATH")
    run.add_argument("--codecs", default=",".join(CODECS), help="comma list (default: all); see `codecs`")
    run.add_argument("--qualities", action="append", default=[], metavar="[CODEC=]Q,Q,…",
                     help="override the default sweep, for every codec or one (repeatable)")  # fmt: skip
    run.add_argument("--split", default="all", choices=["all", *SPLITS], help="which split to evaluate (default all)")
    run.add_argument("--limit", type=_number(int, minimum=1), help="stratified subset of N images per dataset")
    run.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of splits and subsets")
    run.add_argument("--jobs", type=_number(int, minimum=0), default=0, help="worker processes (0: one per core)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run the tasks on this Dask cluster instead of the local pool (pip install .[dask])")  # fmt: skip
    run.add_argument("--time-limit", type=_number(float, minimum=0, inclusive=False), default=120.0, metavar="SECONDS",
                     help="per encode+decode; a codec still running after it is killed and recorded (default 120)")  # fmt: skip
    run.add_argument("--out", help="run directory (default: runs/<datasets>); an existing one is resumed")
    run.add_argument("--data-dir", type=Path, help=data_help)
    run.add_argument("--weights-dir", type=Path, help="official CompressAI checkpoints (default $BENCH_WEIGHTS_DIR)")
    run.add_argument("--max-pixels", type=_number(int, minimum=1), default=DEFAULT_MAX_PIXELS,
                     help="pixel budget per image, checked from its header; larger images become error rows")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("-v", "--verbose", action="store_true", help="say why each skipped codec is unavailable")
    run.add_argument("--no-report", action="store_true", help="write tables only, not report.md/html")
    run.add_argument("--no-classify", action="store_true",
                     help="skip downstream accuracy (on by default for labelled datasets with a classifier)")  # fmt: skip
    _add_report_options(run)
    run.set_defaults(handler=cmd_run)

    codecs = commands.add_parser("codecs", help="list codecs, availability, versions and default sweeps")
    _add_plugin_options(codecs)
    codecs.set_defaults(handler=cmd_codecs)

    datasets = commands.add_parser(
        "datasets", help="list datasets (where found, counts, licences); download one; write a split manifest"
    )
    datasets.add_argument("action", nargs="?", default="list", choices=["list", "download", "manifest"])
    datasets.add_argument("name", nargs="?", default="eurosat", help="dataset for download/manifest")
    datasets.add_argument("--data-dir", type=Path, help=data_help)
    datasets.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split seed of the manifest")
    datasets.add_argument("--out", type=Path, help="manifest path (default runs/manifests/<name>-seed<seed>.csv)")
    datasets.add_argument("--force", action="store_true", help="allow replacing a committed manifest in datasets/")
    datasets.set_defaults(handler=cmd_datasets)

    trainer = commands.add_parser("train", help="train a learned codec checkpoint (resumable) and write its card")
    trainer.add_argument("--arch", required=True, help="cvae, bmshj2018-factorized, bmshj2018-hyperprior, …")
    trainer.add_argument("--lmbda", type=float, required=True, help="λ of the loss λ·255²·MSE + bpp")
    trainer.add_argument("--quality", type=int, required=True, help="quality index the checkpoint is stored under")
    trainer.add_argument("--dataset", default="eurosat")
    trainer.add_argument("--data-dir", type=Path, help=data_help)
    trainer.add_argument("--channels", type=int, default=64, help="N: channels of the transforms (default 64)")
    trainer.add_argument("--latent-channels", type=int, default=96, help="M: latent channels (default 96)")
    trainer.add_argument("--steps", type=int, default=10_000)
    trainer.add_argument("--batch-size", type=int, default=16)
    trainer.add_argument("--lr", type=float, default=1e-4)
    trainer.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches")
    trainer.add_argument("--split-seed", type=int, default=DEFAULT_SEED, help="seed of the train/val/test split")
    trainer.add_argument("--val-every", type=int, default=500, help="validate and save a resumable state every N steps")
    trainer.add_argument("--init", type=Path, help="start from this checkpoint (fine-tune to another λ)")
    trainer.add_argument("--out", type=Path, default=Path("runs/codecs"),
                         help="checkpoint folder: writes <out>/<arch>/<arch>-q<k>.pt and its card (default runs/codecs)")
    trainer.add_argument("--force", action="store_true", help="allow replacing a committed checkpoint in codecs/")
    trainer.add_argument("--work", type=Path, default=Path("runs/train"), help="resumable training state")
    trainer.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    trainer.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                         help="where the network trains; checkpoints and entropy tables are always built on the CPU")
    trainer.add_argument("--lambda-class", type=float, default=0.0,
                         help="task-aware: weight of a classification term; loss = λrec·MSE + λbpp·bpp + λclass·CE")
    trainer.add_argument("--lambda-rec", type=float, default=10.0, help="task-aware: λrec (seed's best 10)")
    trainer.add_argument("--lambda-bpp", type=float, default=0.075, help="task-aware: λbpp (seed's best 0.075)")  # fmt: skip
    trainer.set_defaults(handler=cmd_train)

    classifier = commands.add_parser("classifier", help="train the reference land-cover classifier of a dataset")
    classifier.add_argument("action", choices=["train"])
    classifier.add_argument("--dataset", default="eurosat")
    classifier.add_argument("--data-dir", type=Path, help=data_help)
    classifier.add_argument("--out", type=Path, default=Path("runs/classifier"),
                            help="folder for <dataset>.pt and its card (codecs/classifier is the committed one)")
    classifier.add_argument("--force", action="store_true", help="allow replacing the committed classifier")
    classifier.add_argument("--network", choices=sorted(NETWORKS), default=DEFAULT_NETWORK)
    classifier.add_argument("--epochs", type=int, default=30)
    classifier.add_argument("--batch-size", type=int, default=128)
    classifier.add_argument("--lr", type=float, default=0.1)
    classifier.add_argument("--copies", type=int, default=2, help="re-encoded copies of each train tile")
    classifier.add_argument("--cache", type=Path, help="folder for the re-encoded copies (default: --out)")
    classifier.add_argument("--seed", type=int, default=0)
    classifier.add_argument("--split-seed", type=int, default=DEFAULT_SEED)
    classifier.add_argument("--threads", type=int, default=0)
    classifier.set_defaults(handler=cmd_classifier)

    latent_cmd = commands.add_parser("latent", help="classification from learned-codec latents vs pixels, t-SNE")
    latent_cmd.add_argument("--arch", default="cvae")
    latent_cmd.add_argument("--qualities", default="3", help="comma list of checkpoint qualities")
    latent_cmd.add_argument("--dataset", default="eurosat")
    latent_cmd.add_argument("--data-dir", type=Path, help=data_help)
    latent_cmd.add_argument("--epochs", type=int, default=15)
    latent_cmd.add_argument("--seed", type=int, default=DEFAULT_SEED)
    latent_cmd.add_argument("--train-limit", type=int, help="stratified subset of the train split")
    latent_cmd.add_argument("--out", default="runs/eurosat", help="run directory the report is written in")
    latent_cmd.set_defaults(handler=cmd_latent)

    weights = commands.add_parser("weights", help="list learned-codec checkpoints, or download official ones")
    weights.add_argument("action", nargs="?", default="list", choices=["list", "download"])
    weights.add_argument("--arch", default="bmshj2018-hyperprior", help="architecture to download")
    weights.add_argument("--qualities", help="comma list of quality indices to download (default: all)")
    weights.add_argument("--weights-dir", type=Path, help="where official checkpoints live (default $BENCH_WEIGHTS_DIR)")
    weights.set_defaults(handler=cmd_weights)

    baseline = commands.add_parser("baseline", help="write (or update) the quality baseline of a run")
    baseline.add_argument("run", help="run directory")
    baseline.add_argument("--out", type=Path, help="baseline file (default reports/baseline/<dataset>-<sample|full>.json)")
    baseline.add_argument("--anchor", default=DEFAULT_ANCHOR)
    baseline.set_defaults(handler=cmd_baseline)

    check = commands.add_parser("check", help="compare a run with its baseline: exit 0 ok, 1 regression, 2 usage error")
    check.add_argument("run", help="run directory")
    check.add_argument("--baseline", help="baseline file (default: the committed one matching the run)")
    check.add_argument("--tolerance", action="append", default=[], metavar="METRIC=AMOUNT",
                       help="bpp (relative), psnr (dB), ssim, bd_rate_psnr (percentage points); repeatable")  # fmt: skip
    check.add_argument("--verbose", action="store_true", help="show every checked value, not only the failing ones")
    check.set_defaults(handler=cmd_check)

    exporter = commands.add_parser("export", help="write a run's curves in another tool's format (CompressAI's)")
    exporter.add_argument("run", help="run directory (the --out of `run`)")
    exporter.add_argument("--format", choices=["compressai"], default="compressai")
    exporter.add_argument("--out", type=Path, help="folder (default RUN/export/FORMAT)")
    exporter.set_defaults(handler=cmd_export)

    report = commands.add_parser("report", help="regenerate tables and reports of a run from its database")
    _add_plugin_options(report)
    report.add_argument("run", help="run directory (the --out of `run`)")
    _add_report_options(report)
    report.set_defaults(handler=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (0 ok, 1 regression or failed download, 2 usage, 3 locked, 4 internal)."""
    from bench import plugins
    from bench.store import UnusableDatabase

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "bench", *argv])  # what to type to run it again
    try:
        plugins.load(getattr(args, "plugin", []))
        return args.handler(args)
    except (UsageError, UnusableDatabase, plugins.PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            return _internal_error(exc)
        where = getattr(args, "out", None) or getattr(args, "run", None) or "the output folder"
        print(f"error: disk full while writing {where} ({exc.filename or 'a file'}); every row stored before is "
              "kept: free space and run the same command again", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except Exception as exc:  # a bug of the suite: say so in one line, never with the exit code of a regression
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    if os.environ.get(TRACEBACK_ENV):
        raise exc
    print(f"internal error: {type(exc).__name__}: {exc} (a bug in bench; {TRACEBACK_ENV}=1 shows where)",
          file=sys.stderr)  # fmt: skip
    return EXIT_INTERNAL



