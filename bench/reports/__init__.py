"""Reports of a run: RD plots (`plots`), the gallery (`gallery`) and Markdown/HTML documents (`render`)."""

from __future__ import annotations

from pathlib import Path

from bench.assets import AssetError, refuse_committed_folder
from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD, DEFAULT_RESAMPLES
from bench.reports.render import write_reports

__all__ = ["output_directory", "publish", "write_reports"]


class NoRows(ValueError):
    """The run's database holds no rows: nothing is written (tables of an earlier state are kept)."""


def publish(directory: Path, *, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, include_seen: bool = False,
            bootstrap: int = DEFAULT_RESAMPLES, report: bool = True, progress: bool = False,
            references: tuple[str, ...] = (), out: Path | None = None,
            force: bool = False) -> tuple[dict[str, Path], list[str]]:  # fmt: skip
    """Write a run's tables (and reports, unless not `report`); the paths, and the warnings a reader must see.

    Everything comes from the run's database (and the `references` curves, see `bench.references`): no dataset,
    codec or plug-in is needed. They go into the run directory, or into `out` (see `output_directory`). With
    `progress`, a bar on stderr counts the stages (reading, tables with BD intervals, reports with their plots).
    """
    from tqdm import tqdm

    from bench.run import Run
    from bench.tables import left_out, small_samples, write_tables

    with tqdm(total=3 if report else 2, desc="report", unit="stage", disable=not progress, leave=False) as bar:
        run = Run(Path(directory), include_seen=include_seen, bootstrap=bootstrap, references=tuple(references))
        if run.frame.empty:
            raise NoRows(f"{Path(directory)}: the database holds no rows; no tables or reports written")
        run.check_anchor(anchor)
        out = output_directory(Path(directory), out, force=force)
        bar.set_postfix_str("tables, BD and bootstrap intervals")
        bar.update()
        paths = write_tables(run, anchor, method, out=out)
        bar.update()
        if report:
            bar.set_postfix_str("plots, gallery, report.md/html")
            paths.update(write_reports(run, anchor, method, out=out))
            bar.update()
    return paths, left_out(run.frame, include_seen=include_seen) + small_samples(run.summary)


def output_directory(run_dir: Path, out: Path | None, *, force: bool = False) -> Path:
    """Where a run's tables and reports go: the run directory, or `out` (created) for a run directory that is
    read-only, or to keep reports of several anchors side by side.

    AssetError when `out` is a file or another run's directory (its tables would describe this run); CommittedAsset
    when it is in a committed asset folder (reports/, …) and `force` is not given.
    """
    from bench.store import DB_NAME

    if out is None or Path(out).resolve() == run_dir.resolve():
        return run_dir
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AssetError(f"--out {out}: exists and is not a directory")
    if (out / DB_NAME).exists():
        raise AssetError(f"--out {out}: is another run's directory (it holds {DB_NAME}); choose an empty or new one")
    refuse_committed_folder(out, "add --force to write there anyway", force=force)
    out.mkdir(parents=True, exist_ok=True)
    return out
