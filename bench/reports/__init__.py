"""Reports of a run: RD plots (`plots`), the gallery (`gallery`) and Markdown/HTML documents (`render`)."""

from __future__ import annotations

from pathlib import Path

from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD, DEFAULT_RESAMPLES
from bench.reports.render import write_reports

__all__ = ["publish", "write_reports"]


class NoRows(ValueError):
    """The run's database holds no rows: nothing is written (tables of an earlier state are kept)."""


def publish(directory: Path, *, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, include_seen: bool = False,
            bootstrap: int = DEFAULT_RESAMPLES, report: bool = True) -> tuple[dict[str, Path], list[str]]:  # fmt: skip
    """Write a run's tables (and reports, unless not `report`); the paths, and the warnings a reader must see.

    Everything comes from the run's database: no dataset, codec or plug-in is needed.
    """
    from bench.run import Run
    from bench.tables import small_samples, write_tables

    run = Run(Path(directory), include_seen=include_seen, bootstrap=bootstrap)
    if run.frame.empty:
        raise NoRows(f"{Path(directory)}: the database holds no rows; no tables or reports written")
    paths = write_tables(run, anchor, method)
    if report:
        paths.update(write_reports(run, anchor, method))
    return paths, small_samples(run.summary)
