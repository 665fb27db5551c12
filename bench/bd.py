"""Bjøntegaard-delta metrics of every codec against an anchor, from aggregate tables.

Computed with the `bjontegaard` package using piecewise cubic (PCHIP)
interpolation, as JVET's common test conditions do, and only over the range
where the two curves overlap; a codec whose curve does not overlap the
anchor's (or shares less than `MIN_OVERLAP` of it) gets NaN, reported as "no
overlap", never an extrapolated number.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

DEFAULT_ANCHOR = "jpeg"
MIN_OVERLAP = 0.2
"""Curves sharing less than this fraction of their quality (or rate) range get NaN ("no overlap"):
a delta averaged over a sliver of the curves says little."""
METHOD = "pchip"
WINNER_RATES = (0.5, 1.0, 2.0)
"""bpp at which the report names the best codec (low, medium, high rate)."""


def _monotone(rate: np.ndarray, metric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those where both rate and metric strictly increase.

    Rate control can return the same size for two settings (JPEG 2000's
    lowest targets on small tiles), and interpolation needs strictly
    increasing abscissae.
    """
    order = np.argsort(rate, kind="stable")
    kept_rate, kept_metric = [], []
    for r, m in zip(rate[order], metric[order]):
        if not (np.isfinite(r) and np.isfinite(m)) or r <= 0:
            continue
        if kept_rate and (r <= kept_rate[-1] or m <= kept_metric[-1]):
            continue
        kept_rate.append(r)
        kept_metric.append(m)
    return np.array(kept_rate), np.array(kept_metric)


def overlap(anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], along: int) -> float:
    """Length of the common interval of the two curves along rate (0) or metric (1), relative to their union."""
    a, t = anchor[along], test[along]
    if along == 0:
        a, t = np.log(a), np.log(t)
    common = min(a.max(), t.max()) - max(a.min(), t.min())
    union = max(a.max(), t.max()) - min(a.min(), t.min())
    return max(common, 0.0) / union if union > 0 else 0.0


def bd_pair(anchor_rate, anchor_metric, test_rate, test_metric) -> dict:
    """BD-rate (%) at equal quality and BD-metric (Δ quality) at equal rate; NaN without overlap."""
    import bjontegaard

    anchor = _monotone(np.asarray(anchor_rate, float), np.asarray(anchor_metric, float))
    test = _monotone(np.asarray(test_rate, float), np.asarray(test_metric, float))
    out = {"bd_rate": np.nan, "bd_metric": np.nan, "overlap": 0.0}
    if len(anchor[0]) < 2 or len(test[0]) < 2:
        return out
    out["overlap"] = overlap(anchor, test, along=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported in the table instead
        kwargs = dict(method=METHOD, require_matching_points=False, min_overlap=0)
        if out["overlap"] >= MIN_OVERLAP:
            out["bd_rate"] = float(bjontegaard.bd_rate(*anchor, *test, **kwargs))
        if overlap(anchor, test, along=0) >= MIN_OVERLAP:
            out["bd_metric"] = float(bjontegaard.bd_psnr(*anchor, *test, **kwargs))
    return out


def bd_table(summary: pd.DataFrame, anchor: str = DEFAULT_ANCHOR, rate: str = "bpp") -> pd.DataFrame:
    """One row per dataset × codec: BD-rate/BD-PSNR and BD-rate/BD-SSIM against `anchor`.

    Columns: ``bd_rate_psnr`` (% rate change at equal PSNR, negative = fewer
    bits), ``bd_psnr`` (dB at equal rate), ``bd_rate_ssim`` (% at equal SSIM),
    ``bd_ssim`` (Δ SSIM at equal rate), ``bd_accuracy`` (Δ top-1 accuracy at
    equal rate, when downstream accuracy was measured), ``overlap_psnr``
    (fraction of the PSNR range the curves share). NaN where the curves do not
    overlap. Accuracy is not monotone in rate, so its curve keeps only the
    points where both rate and accuracy increase.
    """
    rows = []
    for dataset, per_dataset in summary.groupby("dataset", sort=False):
        reference = per_dataset[per_dataset["codec"] == anchor]
        if reference.empty:
            continue
        for codec, curve in per_dataset.groupby("codec", sort=False):
            if codec == anchor:
                continue
            psnr = bd_pair(reference[rate], reference["psnr"], curve[rate], curve["psnr"])
            ssim = bd_pair(reference[rate], reference["ssim"], curve[rate], curve["ssim"])
            accuracy = (
                bd_pair(reference[rate], reference["accuracy"], curve[rate], curve["accuracy"])
                if "accuracy" in curve and curve["accuracy"].notna().any() else {"bd_metric": np.nan}
            )  # fmt: skip
            rows.append({
                "dataset": dataset, "codec": codec, "anchor": anchor,
                "bd_rate_psnr": psnr["bd_rate"], "bd_psnr": psnr["bd_metric"],
                "bd_rate_ssim": ssim["bd_rate"], "bd_ssim": ssim["bd_metric"],
                "bd_accuracy": accuracy["bd_metric"], "overlap_psnr": psnr["overlap"],
            })  # fmt: skip
    return pd.DataFrame(rows, columns=[
        "dataset", "codec", "anchor", "bd_rate_psnr", "bd_psnr", "bd_rate_ssim", "bd_ssim", "bd_accuracy",
        "overlap_psnr",
    ])  # fmt: skip


def winners(summary: pd.DataFrame, rates: tuple[float, ...] = WINNER_RATES, metric: str = "psnr") -> pd.DataFrame:
    """Per dataset and target rate, every codec whose curve reaches it, best first.

    `metric` at the target is interpolated linearly in log-rate between the
    codec's two neighbouring points; codecs whose sweep does not span the
    target are left out rather than extrapolated.
    """
    rows = []
    for dataset, per_dataset in summary.groupby("dataset", sort=False):
        for target in rates:
            for codec, curve in per_dataset.groupby("codec", sort=False):
                r, m = _monotone(curve["bpp"].to_numpy(float), curve[metric].to_numpy(float))
                if len(r) >= 2 and r[0] <= target <= r[-1]:
                    value = float(np.interp(np.log(target), np.log(r), m))
                    rows.append({"dataset": dataset, "bpp": target, "codec": codec, metric: value})
    table = pd.DataFrame(rows, columns=["dataset", "bpp", "codec", metric])
    return table.sort_values(["dataset", "bpp", metric], ascending=[True, True, False]).reset_index(drop=True)
