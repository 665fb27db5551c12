"""Reports of a run: RD plots (`plots`), the gallery (`gallery`) and Markdown/HTML documents (`render`)."""

from __future__ import annotations

from pathlib import Path

from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD, DEFAULT_RESAMPLES
from bench.reports.render import write_reports

__all__ = ["publish", "write_reports"]


class NoRows(ValueError):
    """The run's database holds no rows: nothing is written (tables of an earlier state are kept)."""


def publish(directory: Path, *, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, include_seen: bool = False,
            bootstrap: int = DEFAULT_RESAMPLES, report: bool = True, progress: bool = False,
            references: tuple[str, ...] = ()) -> tuple[dict[str, Path], list[str]]:  # fmt: skip
    """Write a run's tables (and reports, unless not `report`); the paths, and the warnings a reader must see.

    Everything comes from the run's database (and the `references` curves, see `bench.references`): no dataset,
    codec or plug-in is needed. With `progress`, a bar
    on stderr counts the stages (reading, tables with BD intervals, reports with their plots).
    """
    from tqdm import tqdm

    from bench.run import Run
    from bench.tables import small_samples, write_tables

    with tqdm(total=3 if report else 2, desc="report", unit="stage", disable=not progress, leave=False) as bar:
        run = Run(Path(directory), include_seen=include_seen, bootstrap=bootstrap, references=tuple(references))
        if run.frame.empty:
            raise NoRows(f"{Path(directory)}: the database holds no rows; no tables or reports written")
        run.check_anchor(anchor)
        bar.set_postfix_str("tables, BD and bootstrap intervals")
        bar.update()
        paths = write_tables(run, anchor, method)
        bar.update()
        if report:
            bar.set_postfix_str("plots, gallery, report.md/html")
            paths.update(write_reports(run, anchor, method))
            bar.update()
    return paths, small_samples(run.summary)
