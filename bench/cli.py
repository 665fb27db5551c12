"""Command line: ``python -m bench {run,codecs,datasets,report}``.

Exit codes: 0 success, 1 failure, 2 usage error (unknown name, missing data),
3 the run directory is in use by another sweep.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.codecs import CODECS
from bench.store import DB_NAME
from bench.datasets import DATA_DIR_ENV, DATASETS, DEFAULT_SEED, SPLITS, DatasetNotFound, check_name, load_dataset

EXIT_USAGE, EXIT_LOCKED = 2, 3
MAX_ERRORS_PRINTED = 20


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_qualities(specs: Sequence[str], codecs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``--qualities 10,50`` (every selected codec) or ``--qualities jpeg=10,50`` (one codec)."""
    chosen: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        target, _, values = spec.rpartition("=")
        names = [target] if target else list(codecs)
        if target and target not in codecs:
            raise UsageError(f"--qualities {spec}: codec {target!r} is not among --codecs ({', '.join(codecs)})")
        try:
            parsed = tuple(float(v) for v in _names(values))
        except ValueError:
            raise UsageError(f"--qualities {spec}: expected numbers separated by commas") from None
        if not parsed:
            raise UsageError(f"--qualities {spec}: no values")
        chosen.update(dict.fromkeys(names, parsed))
    return chosen


def _check_codecs(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}; valid: {', '.join(CODECS)}")


def _check_datasets(names: Sequence[str]) -> None:
    for name in names:
        try:
            check_name(name)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None


def cmd_run(args: argparse.Namespace) -> int:
    from bench.reports import write_reports
    from bench.runner import RunLocked, SweepConfig, sweep
    from bench.tables import write_tables

    datasets, codecs = _names(args.datasets), _names(args.codecs)
    _check_datasets(datasets)
    _check_codecs(codecs)
    out = Path(args.out or Path("runs") / "+".join(d.replace("/", "_").replace(":", "_") for d in datasets))
    config = SweepConfig(
        datasets=datasets, codecs=codecs, out=out, qualities=parse_qualities(args.qualities, codecs),
        split=args.split, limit=args.limit, seed=args.seed, jobs=args.jobs, data_dir=args.data_dir,
        progress=not args.no_progress,
    )  # fmt: skip
    try:
        summary = sweep(config)
    except DatasetNotFound as exc:
        raise UsageError(str(exc)) from None
    except RunLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    for name, source in summary.datasets.items():
        print(f"dataset {name}: {source}")
    for name, reason in summary.unavailable.items():
        print(f"skipped codec {name}: {reason}")
    print(
        f"{summary.rows_written} rows written, {summary.rows_already_done} already done, "
        f"{summary.errors.total()} failed rows, {summary.seconds:.1f} s"
    )
    for error, count in summary.errors.most_common(MAX_ERRORS_PRINTED):
        print(f"  failed ({count} rows): {error}")
    if len(summary.errors) > MAX_ERRORS_PRINTED:
        print(f"  … {len(summary.errors) - MAX_ERRORS_PRINTED} more kinds of failure in the report's Failures section")
    paths = write_tables(out)
    if not args.no_report:
        paths.update(write_reports(out))
    print(f"results in {out}/: {DB_NAME}, " + ", ".join(p.name for p in paths.values()))
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    for codec in CODECS.values():
        state = codec.version if codec.available else f"UNAVAILABLE: {codec.unavailable_reason}"
        print(f"{codec.name:<10} {codec.family:<9} {state}")
        print(f"{'':<10} {codec.description}")
        print(f"{'':<10} sweep ({codec.quality_name}): {', '.join(f'{q:g}' for q in codec.qualities)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    for name in DATASETS:
        try:
            dataset = load_dataset(name, args.data_dir)
        except DatasetNotFound as exc:
            print(f"{name:<8} not found: {exc}")
            continue
        classes = f"{len(dataset.classes)} classes" if dataset.labelled else "unlabelled"
        print(f"{name:<8} {dataset.source}; {classes}; licence: {dataset.licence}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.reports import write_reports
    from bench.tables import write_tables

    run = Path(args.run)
    if not (run / DB_NAME).is_file():
        raise UsageError(f"{run}: no {DB_NAME} here; give the --out directory of a run")
    paths = {**write_tables(run), **write_reports(run)}
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_help = f"root holding one folder per dataset (default: ${DATA_DIR_ENV}; EuroSAT falls back to the shipped sample)"

    run = commands.add_parser("run", help="sweep codecs × qualities over datasets (resumes an earlier run)")
    run.add_argument("--datasets", default="eurosat", help=f"comma list of {', '.join(DATASETS)}, folder:PATH")
    run.add_argument("--codecs", default=",".join(CODECS), help="comma list (default: all); see `codecs`")
    run.add_argument("--qualities", action="append", default=[], metavar="[CODEC=]Q,Q,…",
                     help="override the default sweep, for every codec or one (repeatable)")  # fmt: skip
    run.add_argument("--split", default="all", choices=["all", *SPLITS], help="which split to evaluate (default all)")
    run.add_argument("--limit", type=int, help="stratified subset of N images per dataset")
    run.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of splits and subsets")
    run.add_argument("--jobs", type=int, default=0, help="worker processes (default: all cores)")
    run.add_argument("--out", help="run directory (default: runs/<datasets>); an existing one is resumed")
    run.add_argument("--data-dir", type=Path, help=data_help)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="write tables only, not report.md/html")
    run.set_defaults(handler=cmd_run)

    codecs = commands.add_parser("codecs", help="list codecs, availability, versions and default sweeps")
    codecs.set_defaults(handler=cmd_codecs)

    datasets = commands.add_parser("datasets", help="list datasets, where they were found, counts, licences")
    datasets.add_argument("--data-dir", type=Path, help=data_help)
    datasets.set_defaults(handler=cmd_datasets)

    report = commands.add_parser("report", help="regenerate tables and reports of a run from its database")
    report.add_argument("run", help="run directory (the --out of `run`)")
    report.set_defaults(handler=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE



