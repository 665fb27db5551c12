"""Command line: ``python -m bench COMMAND`` (see `bench.arguments` for every option).

Each handler turns parsed arguments into one call of the module that owns the
work and prints its outcome. Exit codes: 0 success, 1 failure (regression,
failed download), 2 usage error (unknown name, missing data), 3 the run
directory is in use by another sweep, 4 internal error, 128+N stopped by signal N.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.arguments import EXIT_USAGE, build_parser
from bench.bd import DEFAULT_ANCHOR
from bench.files import file_part
from bench.names import did_you_mean
from bench.store import DB_NAME

EXIT_LOCKED, EXIT_INTERNAL = 3, 4
TRACEBACK_ENV = "BENCH_TRACEBACK"  # set to 1 to see the traceback of an internal error


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


def cmd_run(args: argparse.Namespace) -> int:
    from bench import references
    from bench.codecs import get_codec
    from bench.runner import RunLocked, SweepConfig, SweepSummary, resolve_qualities, run_lock, sweep
    from bench.workers import Interrupted, signals_as_interrupts

    get_codec(args.anchor)  # UnknownName before anything runs, as is a bad --reference:
    references.load_all(args.reference)
    if args.anchor not in args.codecs and args.anchor != DEFAULT_ANCHOR:  # else no tables after the sweep
        raise UsageError(f"--anchor {args.anchor}: not among --codecs, so the BD tables would have nothing to "
                         "compare against; add it to --codecs (rows it already has are not measured again)")
    out = args.out or Path("runs") / "+".join(map(file_part, args.datasets))
    config = SweepConfig(
        datasets=args.datasets, codecs=args.codecs, out=out, qualities=resolve_qualities(args.qualities, args.codecs, args.weights_dir),
        split=args.split, limit=args.limit, seed=args.seed, jobs=args.jobs, data_dir=args.data_dir,
        progress=not args.no_progress, seconds_per_pair=args.time_limit, scheduler=args.scheduler,
        classify=not args.no_classify, max_pixels=args.max_pixels, retry_failed=not args.keep_failed,
        command=args.command_line,
        plugins=tuple(args.plugin), weights_dir=args.weights_dir, device=args.device, protocol=args.protocol,
        adapt_steps=args.adapt_steps,
    )  # fmt: skip
    stage = "measuring"

    def publish(summary: SweepSummary) -> None:  # under the sweep's lock
        nonlocal stage
        stage = "tables"
        print("\n".join(summary.lines(verbose=args.verbose)))
        if args.anchor not in args.codecs:
            print(f"note: the BD tables compare against --anchor {args.anchor} (the default), which is not among "
                  "--codecs: they are empty unless this run directory holds its rows")  # fmt: skip
        paths = _publish(out, args, report=not args.no_report)
        print(f"results in {out}/: {DB_NAME}, " + ", ".join(p.name for p in paths.values()))
        stage = "done"

    try:
        with signals_as_interrupts():
            sweep(config, then=publish)
            return 0
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except Interrupted as exc:
        if exc.signum == getattr(signal, "SIGHUP", None):
            _leave_the_terminal()
        stored = (Path(out) / DB_NAME).exists()
        if stage == "measuring" and stored:  # the rows stored so far get their tables, unless a second signal stops it
            with contextlib.suppress(Interrupted, RunLocked), signals_as_interrupts(), run_lock(out):
                stage = "done" if _publish(out, args, report=not args.no_report) else "no rows"
        if not stored or stage == "no rows":
            what = "no row was finished"
        elif stage == "done":
            what = f"every finished row is stored in {out / DB_NAME} and the tables cover them"
        else:
            what = f"every finished row is stored in {out / DB_NAME} (its tables: python -m bench report {out})"
        print(f"interrupted by {exc}: {what}; run the same command again to resume", file=sys.stderr)
        return 128 + exc.signum


def _leave_the_terminal() -> None:
    """Point standard output and error at /dev/null where they are a terminal: after a hangup it is gone, and every
    write to it fails (EIO), which would stop the tables from being written. Pipes and files keep their output."""
    null = os.stat(os.devnull)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            found = os.fstat(fd)
            if stat.S_ISCHR(found.st_mode) and not os.path.samestat(found, null):
                os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


def cmd_codecs(args: argparse.Namespace) -> int:
    from bench.codecs import listing

    print("\n".join(listing()))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from bench import datasets

    if args.action == "download":
        from bench.datasets.download import MANUAL, SOURCES, default_cache, download

        if args.name not in {**SOURCES, **MANUAL}:
            raise UsageError(f"datasets download {args.name!r}: not downloadable{did_you_mean(args.name, SOURCES)}; "
                             f"downloadable: {', '.join(SOURCES)}")  # fmt: skip

        for path in download(args.name, args.data_dir or datasets.base.data_dir() or default_cache()):
            print(f"ok {path}")
    elif args.action == "manifest":
        path, dataset = datasets.write_split_manifest(args.name, args.data_dir, args.seed, args.out, force=args.force)
        print(f"wrote {path} ({len(dataset.records)} images of {dataset.source})")
    else:
        width = max(map(len, datasets.DATASETS))
        for name in datasets.DATASETS:
            print(f"{name:<{width}} {datasets.describe(name, args.data_dir)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bench.codecs.learned import ARCHITECTURES
    from bench.train import TrainConfig, train

    if args.arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {args.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    try:
        config = ARCHITECTURES[args.arch].config(args.channels, args.latent_channels, args.stages)
    except ValueError as exc:
        raise UsageError(f"--stages: {args.arch}: {exc}") from None
    settings = TrainConfig(
        arch=args.arch, lmbda=args.lmbda, quality=args.quality, dataset=args.dataset, data_dir=args.data_dir,
        config=config, split_seed=args.split_seed,
        seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr, val_every=args.val_every,
        init=args.init, out=args.out, force=args.force, work=args.work, threads=args.threads,
        device=args.device, lambda_class=args.lambda_class, lambda_rec=args.lambda_rec,
        lambda_bpp=args.lambda_bpp,
    )  # fmt: skip
    path = train(settings)
    print(f"wrote {path} and {path.with_suffix('.json')}; use it with --weights-dir {args.out}")
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    from bench.config import ConfigError
    from bench.tasks import classifier

    if args.action == "views":
        path = args.out / f"{args.dataset}.pt"
        if not path.with_suffix(".json").is_file():
            raise ConfigError(f"--out: no classifier card {path.with_suffix('.json')}")
        card = classifier.select_views(path, args.data_dir, force=args.force)
        print(f"{path.with_suffix('.json')}: views {card['views']}; test accuracy {card['test_accuracy']}")
        return 0
    path = classifier.train(args.dataset, args.data_dir, out=args.out / f"{args.dataset}.pt", network=args.network,
                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            split_seed=args.split_seed, copies=args.copies, threads=args.threads, cache=args.cache,
                            force=args.force)  # fmt: skip
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_latent(args: argparse.Namespace) -> int:
    from bench.tasks import latent

    for result in latent.evaluate_into_run(args.out, args.arch, args.qualities, args.dataset, args.data_dir,
                                           args.epochs, args.seed, args.train_limit, args.weights_dir):  # fmt: skip
        print(result)
    print(f"stored in {args.out / DB_NAME}; `python -m bench report {args.out}` shows them")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from bench.codecs import checkpoints
    from bench.codecs.learned import ARCHITECTURES

    if args.action == "list":
        print("\n".join(checkpoints.listing(list(ARCHITECTURES), args.weights_dir)))
        return 0
    if args.arch not in checkpoints.OFFICIAL_PREFIXES:
        raise UsageError(f"no official checkpoints for {args.arch!r}; valid: {', '.join(checkpoints.OFFICIAL_PREFIXES)}")
    target = checkpoints.default_download_dir(args.weights_dir)
    qualities = args.qualities or sorted(checkpoints.official_urls(args.arch))
    for path in checkpoints.download_official(args.arch, qualities, target):
        print(f"ok {path}")
    print(f"use them with --weights-dir {target} (or ${checkpoints.WEIGHTS_DIR_ENV})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.runner import RunLocked, run_lock

    try:
        with run_lock(args.run, unless_read_only=True):  # not while a run writes rows or tables there
            paths = _publish(args.run, args, out=args.out, force=args.force)
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except OSError as exc:
        if args.out is None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise UsageError(f"{args.run}: cannot write its tables there ({exc.strerror}); "
                             "write them elsewhere with --out DIR") from None  # fmt: skip
        raise
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.export import export
    from bench.run import Run

    directory = args.run
    written = export(Run(directory), args.format, args.out or directory / "export" / args.format, args.anchor)
    if not written:
        raise UsageError(f"{directory}: no codec has a measured point to export (every row failed, or none is stored)")
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from bench.gate import write_baseline
    from bench.run import Run

    print(f"wrote {write_baseline(Run(args.run), args.out, args.anchor, force=args.force)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.run import Run

    lines, regressions = gate.check(Run(args.run), args.baseline, gate.parse_tolerances(args.tolerance),
                                    verbose=args.verbose)  # fmt: skip
    print("\n".join(lines))
    return 1 if regressions else 0


def _publish(directory: Path, args: argparse.Namespace, report: bool = True, out: Path | None = None,
             force: bool = False) -> dict[str, Path]:  # fmt: skip
    """Tables (and reports) of a run, in `out` or the run directory; the warnings a reader must see go to the
    terminal too."""
    from bench.reports import NoRows, publish

    try:
        paths, warnings = publish(directory, anchor=args.anchor, method=args.bd_method, include_seen=args.include_seen,
                                  bootstrap=args.bootstrap, report=report, progress=not args.no_progress,
                                  references=args.reference, out=out, force=force)  # fmt: skip
    except NoRows as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return {}
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return paths


HANDLERS = {"run": cmd_run, "codecs": cmd_codecs, "datasets": cmd_datasets, "train": cmd_train,
            "classifier": cmd_classifier, "latent": cmd_latent, "weights": cmd_weights, "report": cmd_report,
            "export": cmd_export, "baseline": cmd_baseline, "check": cmd_check}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (0 ok, 1 regression or failed download, 2 usage, 3 locked, 4 internal)."""
    from bench import plugins
    from bench.assets import AssetError, CommittedAsset, DownloadError
    from bench.datasets import DatasetNotFound
    from bench.gate import GateUsageError
    from bench.references import ReferenceError
    from bench.runner import ConfigError
    from bench.names import UnknownName
    from bench.store import UnusableDatabase

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed argument argparse has already reported in one line
        return int(exc.code or 0)
    args.command_line = shlex.join(["python", "-m", "bench", *argv])  # what to type to run it again
    try:
        plugins.load(getattr(args, "plugin", []))
        return HANDLERS[args.command](args)
    except (UsageError, ConfigError, UnknownName, DatasetNotFound, CommittedAsset, AssetError, GateUsageError,
            UnusableDatabase, ReferenceError, plugins.PluginError) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            where = getattr(args, "out", None) or getattr(args, "run", None) or "the output folder"
            print(f"error: disk full while writing {where} ({exc.filename or 'a file'}); every row stored before is "
                  "kept: free space and run the same command again", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        if exc.filename is None or os.environ.get(TRACEBACK_ENV):
            return _internal_error(exc)
        # a path the user gave (or one under it) that cannot be read or written: not a bug of bench. filename2 is
        # the target of a rename (`bench.files.atomic_write` writes a temporary file first)
        print(f"error: {exc.filename2 or exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C outside a sweep (a sweep stops itself with its own line): `report`, imports
        print("interrupted by SIGINT: every file written before is complete (each is written whole or not at all); "
              "run the same command again", file=sys.stderr)  # fmt: skip
        return 128 + signal.SIGINT
    except Exception as exc:  # a bug of the suite: say so in one line, never with the exit code of a regression
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    if os.environ.get(TRACEBACK_ENV):
        raise exc
    print(f"internal error: {type(exc).__name__}: {exc} (a bug in bench; {TRACEBACK_ENV}=1 shows where)",
          file=sys.stderr)  # fmt: skip
    return EXIT_INTERNAL
