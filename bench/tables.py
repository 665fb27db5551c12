"""Tidy result tables derived from a run's database.

`results` is one row per dataset × image × codec × quality; `aggregate`
is one row per dataset × codec × quality; `bench.bd.bd_table` one row per
dataset × codec. All are written next to the database as CSV and Parquet by
`write_tables`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.bd import DEFAULT_ANCHOR, bd_table
from bench.codecs import CODECS
from bench.files import atomic_write
from bench.metrics import PSNR_CAP_DB
from bench.store import DB_NAME, ResultStore
from bench.tasks import scores

GROUP = ["dataset", "codec", "quality"]


def results(run_dir: Path) -> pd.DataFrame:
    """Every stored row of the run in `run_dir` (tidy: one row per image × codec × quality)."""
    with ResultStore(Path(run_dir) / DB_NAME) as store:
        frame = store.frame()
    frame["family"] = frame["codec"].map(lambda name: CODECS[name].family if name in CODECS else "unknown")
    return frame


def _mean_ci95(values: pd.Series) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval (NaN for n < 2)."""
    clean = values.dropna()
    n = len(clean)
    if n == 0:
        return np.nan, np.nan
    mean = float(clean.mean())
    if n < 2:
        return mean, np.nan
    return mean, float(stats.t.ppf(0.975, n - 1) * clean.std(ddof=1) / np.sqrt(n))


def _summarise(group: pd.DataFrame) -> pd.Series:
    ok = group[group["error"].isna()]
    psnr = ok["psnr"].clip(upper=PSNR_CAP_DB)  # identical images (inf) count as PSNR_CAP_DB
    out = {
        "n_images": len(ok),
        "n_errors": int(group["error"].notna().sum()),
        "n_lossless": int(np.isinf(ok["psnr"]).sum()),
        "bpp": ok["bpp"].mean(),
        "bpp_payload": ok["bpp_payload"].mean(),
    }
    for name, values in (("psnr", psnr), ("ssim", ok["ssim"]), ("ms_ssim", ok["ms_ssim"])):
        out[name], out[f"{name}_ci95"] = _mean_ci95(values)
    out.update(_downstream(ok))
    out["encode_ms"] = 1e3 * ok["encode_s"].mean()
    out["decode_ms"] = 1e3 * ok["decode_s"].mean()
    versions = group["codec_version"].dropna().unique()
    out["codec_version"] = "; ".join(sorted(versions))
    return pd.Series(out)


def _downstream(ok: pd.DataFrame) -> dict:
    """Accuracy, weighted F1 and RDAI over the test-split images that were classified (NaN otherwise).

    Only test images count: the classifier was trained on the train split
    and selected on val. RDAI uses the same images' mean bpp and PSNR.
    """
    test = ok[(ok["split"] == "test") & ok["predicted"].notna()] if "predicted" in ok else ok.iloc[:0]
    if test.empty:
        return {"n_test": 0, "accuracy": np.nan, "f1_weighted": np.nan, "rdai": np.nan}
    f1 = scores.f1_weighted(test["label"], test["predicted"])
    psnr = float(test["psnr"].clip(upper=PSNR_CAP_DB).mean())
    return {
        "n_test": len(test),
        "accuracy": scores.accuracy(list(test["label"]), list(test["predicted"])),
        "f1_weighted": f1,
        "rdai": scores.rdai(float(test["bpp"].mean()), psnr, f1),
    }


def original_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the classifier's accuracy on the original (uncompressed) test images."""
    if "predicted_original" not in frame:
        return pd.DataFrame(columns=["dataset", "n_test", "accuracy", "f1_weighted"])
    test = frame[(frame["split"] == "test") & frame["predicted_original"].notna()].drop_duplicates(["dataset", "image"])
    rows = [
        {"dataset": name, "n_test": len(group), "accuracy": scores.accuracy(list(group["label"]), list(group["predicted_original"])),
         "f1_weighted": scores.f1_weighted(group["label"], group["predicted_original"])}
        for name, group in test.groupby("dataset", sort=False)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "n_test", "accuracy", "f1_weighted"])


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × codec × quality: means with 95% CIs, counts, times.

    PSNR means cap infinite values (lossless images) at `PSNR_CAP_DB` so that
    they stay finite; ``n_lossless`` counts them. Codecs come in registry
    order, qualities from the coarsest to the finest setting.
    """
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "n_images", "n_errors"])
    summary = frame.groupby(GROUP, sort=False).apply(_summarise, include_groups=False).reset_index()
    order = {name: i for i, name in enumerate(CODECS)}
    summary["_codec_order"] = summary["codec"].map(lambda name: order.get(name, len(order)))
    summary["_quality_order"] = summary.apply(lambda row: _quality_rank(row["codec"], row["quality"]), axis=1)
    summary = summary.sort_values(["dataset", "_codec_order", "_quality_order"]).drop(
        columns=["_codec_order", "_quality_order"]
    )
    summary["family"] = summary["codec"].map(lambda name: CODECS[name].family if name in CODECS else "unknown")
    for column in ("n_images", "n_errors", "n_lossless", "n_test"):
        summary[column] = summary[column].astype(int)
    return summary.reset_index(drop=True)


def _quality_rank(codec: str, quality: float) -> float:
    """Position of `quality` on the codec's coarse-to-fine axis."""
    sweep = CODECS[codec].qualities if codec in CODECS else ()
    if len(sweep) > 1 and sweep[0] > sweep[-1]:  # knobs like QP or distance: lower is finer
        return -quality
    return quality


def write_tables(run_dir: Path, anchor: str = DEFAULT_ANCHOR) -> dict[str, Path]:
    """Write results, aggregate and BD tables as CSV and Parquet into `run_dir`; their paths."""
    run_dir = Path(run_dir)
    frame = results(run_dir)
    summary = aggregate(frame)
    tables = {"results": frame, "aggregate": summary, "bd": bd_table(summary, anchor)}
    paths = {}
    for name, table in tables.items():
        for path in (run_dir / f"{name}.csv", run_dir / f"{name}.parquet"):
            with atomic_write(path) as tmp:
                if path.suffix == ".csv":
                    table.to_csv(tmp, index=False)
                else:
                    table.to_parquet(tmp, index=False)
            paths[path.name] = path
    return paths
