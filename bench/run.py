"""One read side: a run directory opened once, serving everything tables, reports and the gate derive from it.

The database is read once for rows and invocations (gallery crops and latent
results only when a report asks); the aggregate and each BD table are computed
once and shared by every consumer of the same view.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pandas as pd

from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD, DEFAULT_RESAMPLES, INTERVAL_COLUMNS, bd_table, bootstrap_bd
from bench import references
from bench.names import UnknownName, did_you_mean
from bench.store import DB_NAME, ResultStore
from bench.tables import aggregate, codec_info, counted, with_family


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory, read-only. `include_seen` keeps seen images in the distortion means (never in accuracy)."""

    directory: Path
    include_seen: bool = False
    bootstrap: int = DEFAULT_RESAMPLES  # resamples behind each BD interval; 0: none
    references: tuple[str, ...] = ()  # published curves, ``[DATASET=]FILE.json`` (`bench.references`)
    _bd: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)  # by (anchor, method)

    @functools.cached_property
    def _stored(self) -> tuple[pd.DataFrame, list[dict]]:
        with ResultStore(Path(self.directory) / DB_NAME, read_only=True) as store:
            frame, invocations = store.frame(), store.runs()
        return with_family(frame, codec_info(invocations)), invocations

    def _read(self, what: str):  # what only reports need (PNG blobs), read when they ask
        with ResultStore(Path(self.directory) / DB_NAME, read_only=True) as store:
            return getattr(store, what)()

    @property
    def codec_info(self) -> dict[str, dict]:
        """What the run stored about each codec (name, family, description, quality knob, rate accounting)."""
        return codec_info(self.invocations)

    @property
    def frame(self) -> pd.DataFrame:
        """Every stored row (tidy: one row per image × codec × quality)."""
        return self._stored[0]

    @functools.cached_property
    def crops(self) -> pd.DataFrame:
        """Gallery crops the sweep stored (see `bench.store.ResultStore.crops`)."""
        return self._read("crops")

    @functools.cached_property
    def latent(self) -> list[dict]:
        """Latent-vs-pixel classification results stored by `bench latent`, each with its t-SNE PNG."""
        return self._read("latent")

    @property
    def invocations(self) -> list[dict]:
        """Metadata of every invocation that wrote to the run, oldest first."""
        return self._stored[1]

    @property
    def latest(self) -> dict:
        return self.invocations[-1] if self.invocations else {}

    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """One row per dataset × codec × quality (see `bench.tables.aggregate`)."""
        return aggregate(self.frame, self.codec_info, include_seen=self.include_seen)

    @functools.cached_property
    def curves(self) -> pd.DataFrame:
        """`summary` and the published reference curves (`bench.references`): what RD plots and BD tables compare."""
        return references.join(self.summary, self.references)

    @property
    def counted(self) -> pd.DataFrame:
        """The rows the means are taken over (see `bench.tables.counted`)."""
        return counted(self.frame, include_seen=self.include_seen)

    def check_anchor(self, anchor: str) -> None:
        """UnknownName when `anchor` is neither measured in the run nor a reference (the default anchor may be absent:
        the run then has no BD tables)."""
        measured = set(self.curves["codec"]) if not self.curves.empty else set()
        if anchor != DEFAULT_ANCHOR and anchor not in measured:
            raise UnknownName(f"--anchor {anchor!r}: not in this run{did_you_mean(anchor, measured)}; "
                              f"measured: {', '.join(sorted(measured))}")  # fmt: skip

    def bd(self, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD) -> pd.DataFrame:
        """The tidy BD table against `anchor`, with a bootstrap interval on every BD-rate and BD-quality.

        Computed once per (anchor, method) for this view of the run.
        """
        if (anchor, method) not in self._bd:
            self._bd[anchor, method] = self._bd_table(anchor, method)
        return self._bd[anchor, method]

    def _bd_table(self, anchor: str, method: str) -> pd.DataFrame:
        table = bd_table(self.curves, anchor, method=method)
        if not self.bootstrap or table.empty:
            return table.assign(**{column: None for column in INTERVAL_COLUMNS})  # None: not computed
        intervals = bootstrap_bd(self.counted, anchor, resamples=self.bootstrap, method=method)
        table = table.merge(intervals, on=["dataset", "codec", "rate", "quality_axis"], how="left")
        external = table["codec"].isin(self.curves.loc[self.curves["family"] == references.FAMILY, "codec"])
        table[INTERVAL_COLUMNS] = table[INTERVAL_COLUMNS].astype(object).where(~external, None)  # no images to resample
        return table
