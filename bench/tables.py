"""Tidy result tables derived from a run's database.

`results` is one row per dataset × image × codec × quality; `aggregate`
is one row per dataset × codec × quality; `bench.bd.bd_table` one row per
dataset × codec. All are written next to the database as CSV and Parquet by
`write_tables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.bd import DEFAULT_ANCHOR, DEFAULT_METHOD
from bench.files import atomic_write
from bench.metrics import METRICS, PSNR_CAP_DB
from bench.stats import mean_ci95, wilson_interval
from bench.store import DB_NAME, ResultStore
from bench.tasks import scores

if TYPE_CHECKING:
    from bench.run import Run

GROUP = ["dataset", "codec", "quality"]


def results(run_dir: Path) -> pd.DataFrame:
    """Every stored row of the run in `run_dir` (tidy: one row per image × codec × quality)."""
    with ResultStore(Path(run_dir) / DB_NAME, read_only=True) as store:
        frame, invocations = store.frame(), store.runs()
    return with_family(frame, codec_info(invocations))


def codec_info(invocations: list[dict]) -> dict[str, dict]:
    """What the run stored about each codec (`bench.codecs.Codec.describe`), in the order the sweeps named them."""
    return {name: info for run in invocations for name, info in run.get("codec_info", {}).items()}


def with_family(frame: pd.DataFrame, info: dict[str, dict]) -> pd.DataFrame:
    """`frame` with each codec's family as the run stored it ("unknown" for a codec it did not describe)."""
    frame["family"] = frame["codec"].map(lambda name: info.get(name, {}).get("family", "unknown"))
    return frame


MIN_SCORED = 100
"""Fewer unseen labelled images than this behind an accuracy get a warning: its interval is too wide to rank codecs."""


def _numeric(values: pd.Series) -> pd.Series:
    # a column in which every row is an error comes back from SQLite as all-None objects
    return pd.to_numeric(values, errors="coerce").astype(float)


def _summarise(group: pd.DataFrame) -> pd.Series:
    ok = group[group["error"].isna()]
    out = {
        "n_images": len(ok),
        "n_errors": int(group["error"].notna().sum()),
        "n_lossless": int(np.isinf(_numeric(ok["psnr"])).sum()),
        "bpp": _numeric(ok["bpp"]).mean(),
        "bpp_payload": _numeric(ok["bpp_payload"]).mean(),
    }
    for metric in METRICS.values():
        values = _numeric(ok[metric.name])
        if metric.cap is not None:  # identical images (PSNR +inf) count as the cap, so means stay finite
            values = values.clip(upper=metric.cap)
        out[metric.name], out[f"{metric.name}_ci95"] = mean_ci95(values)
    out.update(_downstream(ok))
    out["encode_ms"] = 1e3 * _numeric(ok["encode_s"]).mean()
    out["decode_ms"] = 1e3 * _numeric(ok["decode_s"]).mean()
    versions = group["codec_version"].dropna().unique()
    out["codec_version"] = "; ".join(sorted(versions))
    return pd.Series(out)


def scored(ok: pd.DataFrame, predicted: str = "predicted") -> pd.DataFrame:
    """Rows whose accuracy counts: classified, labelled, and not seen by any committed model."""
    return ok[scores.scored_mask(ok, predicted)]


def _downstream(ok: pd.DataFrame) -> dict:
    """Per protocol (`scores.PROTOCOLS`): accuracy (with its Wilson interval), weighted F1 and RDAI over the unseen
    classified images (NaN otherwise), in columns named with the protocol's suffix.

    Unseen: no committed model trained or was selected on the image (test
    split, unlisted images, any `folder:` dataset). RDAI uses the same images'
    mean bpp and PSNR.
    """
    out = {}
    for protocol in scores.PROTOCOLS:
        rows = scored(ok, protocol.predicted)
        if rows.empty:
            values = {"n_scored": 0, "accuracy": np.nan, "accuracy_low": np.nan, "accuracy_high": np.nan,
                      "f1_weighted": np.nan, "rdai": np.nan}  # fmt: skip
        else:
            classified = _classification(list(rows["label"]), list(rows[protocol.predicted]))
            psnr = float(_numeric(rows["psnr"]).clip(upper=PSNR_CAP_DB).mean())
            rdai = scores.rdai(float(_numeric(rows["bpp"]).mean()), psnr, classified["f1_weighted"])
            values = {"n_scored": len(rows), **classified, "rdai": rdai}
        out.update(protocol_columns(values, protocol))
    return out


def protocol_columns(values: dict, protocol: scores.Protocol) -> dict:
    """``accuracy_low`` → ``accuracy_adapted_low``: a protocol's score names (the fixed protocol's stay as they are)."""
    def renamed(name: str) -> str:
        stem, _, bound = name.rpartition("_") if name.endswith(("_low", "_high")) else (name, "", "")
        return stem + protocol.suffix + (f"_{bound}" if bound else "")

    return {renamed(name): value for name, value in values.items()}


def _classification(labels: list[str], predicted: list[str]) -> dict:
    """Accuracy with its 95% Wilson interval, and weighted F1."""
    accuracy = scores.accuracy(labels, predicted)
    low, high = wilson_interval(round(accuracy * len(labels)), len(labels))
    return {"accuracy": accuracy, "accuracy_low": low, "accuracy_high": high,
            "f1_weighted": scores.f1_weighted(labels, predicted)}  # fmt: skip


def original_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the classifier's accuracy on the unseen original (uncompressed) images."""
    columns = ["dataset", "n_scored", "accuracy", "accuracy_low", "accuracy_high", "f1_weighted"]
    originals = scored(frame, "predicted_original").drop_duplicates(["dataset", "image"])
    rows = []
    for name, group in originals.groupby("dataset", sort=False):
        classified = _classification(list(group["label"]), list(group["predicted_original"]))
        rows.append({"dataset": name, "n_scored": len(group), **classified})
    return pd.DataFrame(rows, columns=columns)


ACCURACY_RATES = (0.25, 0.5, 1.0, 2.0)
"""Rates (bpp) at which reports compare downstream accuracy codec by codec."""


def at_rates(summary: pd.DataFrame, columns: list[str], rates: tuple[float, ...] = ACCURACY_RATES,
             rate: str = "bpp") -> pd.DataFrame:  # fmt: skip
    """Each codec's `columns` at each of `rates`: one row per dataset × codec × target rate.

    Linear in log rate between the two measured points around the target (points sorted by rate, equal rates
    averaged); NaN where the codec's sweep does not reach the target, never extrapolated. Unlike BD and
    `bench.bd.winners`, no point is dropped for scoring below a cheaper one: accuracy is noisy, and the value at a
    rate is what was measured around it.
    """
    rows = []
    for (dataset, codec), points in summary.groupby(["dataset", "codec"], sort=False):
        points = points[points[rate] > 0].groupby(rate)[columns].mean().sort_index()
        log_rate = np.log(points.index.to_numpy(float))
        for target in rates:
            row = {"dataset": dataset, "codec": codec, rate: target}
            for column in columns:
                known = points[column].notna().to_numpy()
                x, y = log_rate[known], points[column].to_numpy(float)[known]
                inside = len(x) >= 2 and x[0] <= np.log(target) <= x[-1]
                row[column] = float(np.interp(np.log(target), x, y)) if inside else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "codec", rate, *columns])


def small_samples(summary: pd.DataFrame) -> list[str]:
    """One warning per dataset whose accuracies rest on fewer than `MIN_SCORED` unseen labelled images."""
    warnings = []
    for dataset, group in summary.groupby("dataset", sort=False):
        scored = group.loc[group["n_scored"] > 0, "n_scored"]
        if len(scored) and scored.min() < MIN_SCORED:
            warnings.append(f"{dataset}: accuracy rests on {int(scored.min())} unseen labelled image(s) "
                            f"(< {MIN_SCORED}); its 95% interval is too wide to rank codecs")  # fmt: skip
    return warnings


def left_out(frame: pd.DataFrame, *, include_seen: bool = False) -> list[str]:
    """One warning per dataset whose rows the means leave out wholesale (`counted`): every image seen, or rows that
    predate the record of seen images (databases of an older bench, where it is unknown)."""
    if include_seen or "seen" not in frame:
        return []
    warnings = []
    for dataset, rows in frame.groupby("dataset", sort=False):
        unknown = int(rows["seen"].isna().sum())
        if unknown:
            warnings.append(f"{dataset}: {unknown} row(s) predate the record of which images a committed model "
                            "trained or was selected on, so means and scores leave them out; resuming the run with "
                            "`run` records it, or add --include-seen")  # fmt: skip
        elif rows["seen"].eq(1).all():
            warnings.append(f"{dataset}: every image is one a committed model trained or was selected on, so no "
                            "mean or score is given; measure --split test, or add --include-seen")  # fmt: skip
    return warnings


def counted(frame: pd.DataFrame, *, include_seen: bool = False) -> pd.DataFrame:
    """The rows means are taken over: images no committed model trained or was selected on, unless `include_seen`."""
    return frame if include_seen else frame[scores.unseen(frame)]


def aggregate(frame: pd.DataFrame, info: dict[str, dict] | None = None, *, include_seen: bool = False) -> pd.DataFrame:
    """One row per dataset × codec × quality: means with 95% CIs, counts, times, downstream scores.

    Only images no committed model trained or was selected on count (every
    codec alike), unless `include_seen`. PSNR means cap infinite values
    (lossless images) at `PSNR_CAP_DB` so that they stay finite;
    ``n_lossless`` counts them. Codecs come in the order of `info` (what the
    run stored about them, see `codec_info`), qualities from the coarsest to
    the finest setting.
    """
    info = info or {}
    frame = counted(frame, include_seen=include_seen)
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "n_images", "n_errors", "n_scored", "family"])
    summary = frame.groupby(GROUP, sort=False).apply(_summarise, include_groups=False).reset_index()
    order = {name: i for i, name in enumerate(info)}
    summary["_codec_order"] = summary["codec"].map(lambda name: order.get(name, len(order)))
    lower_is_finer = summary["codec"].map(lambda name: _lower_is_finer(name, info, summary))
    summary["_quality_order"] = summary["quality"].where(~lower_is_finer, -summary["quality"])
    summary = summary.sort_values(["dataset", "_codec_order", "codec", "_quality_order"]).drop(
        columns=["_codec_order", "_quality_order"]
    )
    families = frame.drop_duplicates("codec").set_index("codec")["family"] if "family" in frame else {}
    summary["family"] = summary["codec"].map(lambda name: families.get(name, "unknown"))
    for column in ("n_images", "n_errors", "n_lossless", *(f"n_scored{p.suffix}" for p in scores.PROTOCOLS)):
        summary[column] = summary[column].astype(int)
    return summary.reset_index(drop=True)


def _lower_is_finer(codec: str, info: dict[str, dict], summary: pd.DataFrame) -> bool:
    """Whether a lower quality value means a finer setting: as the run stored it, else (runs stored before it
    said) as its rows show, the rate falling as the value rises."""
    if "finer" in info.get(codec, {}):
        return info[codec]["finer"] == "lower"
    curve = summary[summary["codec"] == codec].sort_values("quality")
    return len(curve) > 1 and curve["bpp"].iloc[-1] < curve["bpp"].iloc[0]


def write_tables(run: Run, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, *,
                 out: Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Write results, aggregate and BD tables as CSV and Parquet into `out` (default: the run directory); their paths.

    A database without rows writes nothing: tables from an earlier state are
    never replaced by empty ones.
    """
    if run.frame.empty:
        return {}
    tables = {"results": run.frame, "aggregate": run.summary, "bd": run.bd(anchor, method)}
    paths = {}
    for name, table in tables.items():
        for path in (Path(out or run.directory) / f"{name}{suffix}" for suffix in (".csv", ".parquet")):
            with atomic_write(path) as tmp:
                if path.suffix == ".csv":
                    table.to_csv(tmp, index=False)
                else:
                    table.to_parquet(tmp, index=False)
            paths[path.name] = path
    return paths
