"""Bjøntegaard-delta metrics of every codec against an anchor, in both rate views, from aggregate tables.

Computed with the `bjontegaard` package, piecewise cubic (PCHIP, as the
HEVC/VVC common test conditions; Akima on request), each delta over the
common interval of its own axis:

- BD-rate (% rate at equal quality) integrates log-rate over the quality
  interval the two curves share;
- BD-quality (Δ quality at equal rate) integrates quality over the shared
  log-rate interval.

The two are independent: a learned curve that lies inside JPEG's PSNR range
but at a tenth of its rate has a BD-rate and no BD-PSNR. A delta is refused
(NaN, with the reason in its note) only when its common interval is empty or
shorter than a stated minimum (`MIN_QUALITY_SPAN` of the quality axis,
`MIN_LOG_RATE_SPAN` of log-rate), never extrapolated. The table reports the
common interval as a fraction of the tested curve's own range, and how many
points were dropped to make each curve monotone.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from bench import pchip
from bench.metrics import METRICS
from bench.stats import mean_ci95
from bench.tasks.scores import PROTOCOLS, scored_mask

DEFAULT_ANCHOR = "jpeg"
METHODS = ("pchip", "akima")
DEFAULT_METHOD = "pchip"
RATES = ("bpp", "bpp_payload")
"""The two rate views: whole file (headline) and payload (headers a tile-based system agrees once left out)."""
MIN_QUALITY_SPAN = {**{m.name: m.bd_min_span for m in METRICS.values() if m.bd_axis},
                    **{f"accuracy{p.suffix}": 0.01 for p in PROTOCOLS}}
"""Shortest common quality interval a BD-rate is computed over, per quality axis (dB for PSNR)."""
MIN_LOG_RATE_SPAN = math.log(1.1)
"""Shortest common rate interval a BD-quality is computed over: the highest common rate ≥ 1.1 × the lowest."""
WINNER_RATES = (0.5, 1.0, 2.0)
"""bpp at which the report names the best codec (low, medium, high rate)."""


def monotone(rate: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Points sorted by rate, keeping only those where both rate and quality strictly increase; and how many went.

    Rate control can return the same size for two settings (JPEG 2000's
    lowest targets on small tiles), accuracy is noisy, and interpolation needs
    strictly increasing abscissae. Non-finite points are dropped too.
    """
    order = np.argsort(rate, kind="stable")
    kept_rate, kept_quality = [], []
    for r, q in zip(rate[order], quality[order]):
        if not (np.isfinite(r) and np.isfinite(q)) or r <= 0:
            continue
        if kept_rate and (r <= kept_rate[-1] or q <= kept_quality[-1]):
            continue
        kept_rate.append(r)
        kept_quality.append(q)
    dropped = int(np.sum(np.isfinite(rate) & np.isfinite(quality))) - len(kept_rate)
    return np.array(kept_rate), np.array(kept_quality), dropped


def _common(anchor: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """Length of the common interval of two point sets, and that length as a fraction of `test`'s own range."""
    length = min(anchor.max(), test.max()) - max(anchor.min(), test.min())
    own = test.max() - test.min()
    return length, (max(length, 0.0) / own if own > 0 else 0.0)


def _refusal(span: float, minimum: float, axis: str, show) -> str:
    """Why a delta over a common interval of length `span` is refused; "" when it is not."""
    if span <= 0:
        return f"no common {axis} interval"
    if span < minimum:
        return f"common {axis} interval {show(span)} < {show(minimum)}"
    return ""


def bd_pair(anchor_rate, anchor_quality, test_rate, test_quality, *, min_quality_span: float,
            method: str = DEFAULT_METHOD) -> dict:  # fmt: skip
    """BD-rate (%, negative = fewer bits) and BD-quality (Δ at equal rate) of `test` against `anchor`.

    Returns ``bd_rate_pct``, ``bd_quality``, ``note_rate``/``note_quality``
    (why a value is NaN, else ""), ``coverage_quality``/``coverage_rate``
    (common interval / the test curve's own range) and ``dropped`` (points
    removed from either curve to make it monotone).
    """
    import bjontegaard

    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; valid: {', '.join(METHODS)}")
    a_rate, a_quality, a_dropped = monotone(np.asarray(anchor_rate, float), np.asarray(anchor_quality, float))
    t_rate, t_quality, t_dropped = monotone(np.asarray(test_rate, float), np.asarray(test_quality, float))
    out = {"bd_rate_pct": math.nan, "bd_quality": math.nan, "note_rate": "", "note_quality": "",
           "coverage_quality": 0.0, "coverage_rate": 0.0, "dropped": a_dropped + t_dropped}  # fmt: skip
    if len(a_rate) < 2 or len(t_rate) < 2:
        which = "anchor" if len(a_rate) < 2 else "codec"
        found = (a_rate, a_dropped) if which == "anchor" else (t_rate, t_dropped)
        reason = "has fewer than 2 monotone points" if len(found[0]) + found[1] else "has no values in this view"
        out["note_rate"] = out["note_quality"] = f"{which} curve {reason}"
        return out
    quality_span, out["coverage_quality"] = _common(a_quality, t_quality)
    rate_span, out["coverage_rate"] = _common(np.log(a_rate), np.log(t_rate))
    out["note_rate"] = _refusal(quality_span, min_quality_span, "quality", "{:.3g}".format)
    out["note_quality"] = _refusal(rate_span, MIN_LOG_RATE_SPAN, "rate", lambda span: f"×{math.exp(span):.3g}")
    kwargs = dict(method=method, require_matching_points=False, min_overlap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coverage is reported in the table instead
        if not out["note_rate"]:
            out["bd_rate_pct"] = float(bjontegaard.bd_rate(a_rate, a_quality, t_rate, t_quality, **kwargs))
        if not out["note_quality"]:
            out["bd_quality"] = float(bjontegaard.bd_psnr(a_rate, a_quality, t_rate, t_quality, **kwargs))
    return out


BD_COLUMNS = ["dataset", "codec", "anchor", "rate", "quality_axis", "bd_rate_pct", "bd_quality", "coverage_quality",
              "coverage_rate", "dropped", "note_rate", "note_quality"]  # fmt: skip


def bd_table(summary: pd.DataFrame, anchor: str = DEFAULT_ANCHOR, *, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Tidy BD table: one row per dataset × codec × rate view × quality axis, against `anchor`.

    Quality axes: every registered metric with ``bd_axis`` that the run
    measured, and ``accuracy`` where downstream accuracy was measured (not
    monotone in rate: its curve keeps the points where both increase).
    """
    rows = []
    for dataset, per_dataset in summary.groupby("dataset", sort=False):
        reference = per_dataset[per_dataset["codec"] == anchor]
        if reference.empty:
            continue
        axes = [axis for axis in MIN_QUALITY_SPAN if axis in per_dataset and per_dataset[axis].notna().any()]
        a = complete(reference)
        for codec, curve in per_dataset.groupby("codec", sort=False):
            if codec == anchor:
                continue
            t = complete(curve)
            kept, failed = {"anchor": a, "codec": t}, {"anchor": len(reference) - len(a), "codec": len(curve) - len(t)}
            for rate in RATES:
                for axis in axes:
                    delta = bd_pair(a[rate], a[axis], t[rate], t[axis], min_quality_span=MIN_QUALITY_SPAN[axis],
                                    method=method)  # fmt: skip
                    rows.append({"dataset": dataset, "codec": codec, "anchor": anchor, "rate": rate,
                                 "quality_axis": axis, **_with_failed_points(delta, failed, kept)})  # fmt: skip
    return pd.DataFrame(rows, columns=BD_COLUMNS)


def complete(curve: pd.DataFrame) -> pd.DataFrame:
    """The points of `curve` measured on every image: where some images failed, a point's means cover only the
    images the codec could code (often the easy ones), so they compare with no other curve's (BD, verdicts)."""
    return curve[curve["n_errors"].fillna(0) == 0] if "n_errors" in curve else curve  # references have no count


def _with_failed_points(delta: dict, failed: dict[str, int], kept: dict[str, pd.DataFrame]) -> dict:
    """`delta` counting the points left out for failed images among its dropped ones; a value refused because too
    few points are left says that images failed."""
    delta = {**delta, "dropped": delta["dropped"] + sum(failed.values())}
    for which, count in failed.items():
        if count and len(kept[which]) < 2:
            why = f"{which} curve: {count} of its {count + len(kept[which])} points have failed images (left out)"
            delta["note_rate"] = delta["note_quality"] = why
    return delta


def headline_rows(bd: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """The BD rows of PSNR on whole-file bpp, indexed by codec: the verdict a reader (and the gate) quotes."""
    rows = bd[(bd["rate"] == "bpp") & (bd["quality_axis"] == "psnr")]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    return rows.set_index("codec")


def headline(bd: pd.DataFrame, dataset: str | None = None) -> pd.Series:
    """PSNR BD-rates (%) on whole-file bpp, by codec."""
    return headline_rows(bd, dataset)["bd_rate_pct"]


def strongest_classical(bd: pd.DataFrame, summary: pd.DataFrame, dataset: str, rate: str = "bpp") -> str | None:
    """The classical codec of `dataset` with the lowest PSNR BD-rate against the anchor in `rate` (or the anchor)."""
    classical = set(summary.loc[(summary["dataset"] == dataset) & (summary["family"] == "classical"), "codec"])
    rows = bd[(bd["dataset"] == dataset) & (bd["rate"] == rate) & (bd["quality_axis"] == "psnr")
              & bd["codec"].isin(classical) & bd["bd_rate_pct"].notna()]  # fmt: skip
    if not rows.empty and rows["bd_rate_pct"].min() < 0:
        return str(rows.loc[rows["bd_rate_pct"].idxmin(), "codec"])
    anchors = bd.loc[bd["dataset"] == dataset, "anchor"]
    return str(anchors.iloc[0]) if len(anchors) else None


def _at_rate(rate: np.ndarray, quality: np.ndarray, target: float) -> float | None:
    """`quality` at `target`, linear in log-rate between the curve's two neighbouring points; None outside the curve."""
    r, q, _ = monotone(rate, quality)
    if len(r) >= 2 and r[0] <= target <= r[-1]:
        return float(np.interp(np.log(target), np.log(r), q))
    return None


def _capped(values: pd.Series, axis: str) -> pd.Series:
    """`values` with +inf (identical images) replaced by the metric's cap, as the means count it."""
    metric = METRICS.get(axis)
    return values.clip(upper=metric.cap) if metric is not None and metric.cap is not None else values


def winners(summary: pd.DataFrame, rates: tuple[float, ...] = WINNER_RATES, metric: str = "psnr",
            rate: str = "bpp") -> pd.DataFrame:  # fmt: skip
    """Per dataset and target rate, every codec whose curve reaches it, best first.

    `metric` at the target is interpolated linearly in log-rate between the
    codec's two neighbouring points; codecs whose sweep does not span the
    target are left out rather than extrapolated, and points where some
    images failed are left out (`complete`).
    """
    rows = []
    for dataset, per_dataset in summary.groupby("dataset", sort=False):
        for target in rates:
            for codec, curve in complete(per_dataset).groupby("codec", sort=False):
                value = _at_rate(curve[rate].to_numpy(float), curve[metric].to_numpy(float), target)
                if value is not None:
                    rows.append({"dataset": dataset, "rate": rate, "bpp": target, "codec": codec, metric: value})
    table = pd.DataFrame(rows, columns=["dataset", "rate", "bpp", "codec", metric])
    return table.sort_values(["dataset", "bpp", metric], ascending=[True, True, False]).reset_index(drop=True)


def per_image_at(frame: pd.DataFrame, codec: str, target: float, rate: str = "bpp", metric: str = "psnr") -> pd.Series:
    """`metric` of each image at `target` rate for `codec`, interpolated in log-rate along that image's own curve.

    Images whose own curve does not span the target are left out (no extrapolation).
    """
    rows = frame[(frame["codec"] == codec) & frame["error"].isna()][["image", rate, metric]].dropna()
    values = {}
    for image, curve in rows.groupby("image", sort=False):
        value = _at_rate(curve[rate].to_numpy(float), _capped(curve[metric], metric).to_numpy(float), target)
        if value is not None:
            values[image] = value
    return pd.Series(values, dtype=float)


def paired_lead(frame: pd.DataFrame, winner: str, runner_up: str, target: float, rate: str = "bpp") -> dict:
    """How sure the lead of `winner` over `runner_up` at `target` is, image by image (paired).

    Returns the images compared, the share where the winner is ahead, the mean
    PSNR difference and its 95% Student-t interval; ``distinguishable`` is
    False when that interval contains 0.
    """
    ahead = (per_image_at(frame, winner, target, rate) - per_image_at(frame, runner_up, target, rate)).dropna()
    n = len(ahead)
    if n < 2:
        return {"n": n, "win_share": math.nan, "mean_db": math.nan, "low_db": math.nan, "high_db": math.nan,
                "distinguishable": False}  # fmt: skip
    mean, half = mean_ci95(ahead)
    return {"n": n, "win_share": float((ahead > 0).mean()), "mean_db": mean, "low_db": mean - half,
            "high_db": mean + half, "distinguishable": not (mean - half <= 0 <= mean + half)}  # fmt: skip


DEFAULT_RESAMPLES = 300
"""Bootstrap resamples behind each BD interval: ~0.3 s per reference codec for ten codecs (SCALING.md)."""
MAX_RESAMPLES = 100_000
"""More buys no visible precision in a 95% interval, and memory grows with it (~0.5 GB at this many)."""


MIN_PER_STRATUM = 5
"""Stratify resamples by class only when every class has this many images: one image per class would resample to itself."""


def _resample_counts(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """How often each image is drawn in each resample (resamples × images), stratified by label where it can be."""
    rng = np.random.default_rng(seed)
    if np.unique(labels, return_counts=True)[1].min() < MIN_PER_STRATUM:
        labels = np.zeros(len(labels))
    counts = np.zeros((resamples, len(labels)))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        drawn = members[rng.integers(len(members), size=(resamples, len(members)))]
        np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1)
    return counts


def _resampled_means(rows: pd.DataFrame, images: pd.Index, counts: np.ndarray, columns: list[str]) -> dict:
    """Per quality of one codec: the mean of each column in every resample (resamples × qualities each)."""
    means = {}
    for column in columns:
        table = rows.pivot_table(index="image", columns="quality", values=column, aggfunc="first", dropna=False)
        values = table.reindex(images).to_numpy(float)
        present = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[column] = (counts @ np.where(present, values, 0.0)) / (counts @ present)
    return means


def _monotone_rows(rate: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`monotone` on every row at once: rows sorted by rate, and the mask of the points each row keeps."""
    order = np.argsort(np.where(np.isfinite(rate), rate, np.inf), axis=1, kind="stable")
    rate, quality = np.take_along_axis(rate, order, 1), np.take_along_axis(quality, order, 1)
    keep = np.zeros(rate.shape, bool)
    last_rate = np.full(len(rate), -np.inf)
    last_quality = np.full(len(rate), -np.inf)
    for j in range(rate.shape[1]):
        r, q = rate[:, j], quality[:, j]
        keep[:, j] = np.isfinite(r) & np.isfinite(q) & (r > 0) & (r > last_rate) & (q > last_quality)
        last_rate, last_quality = np.where(keep[:, j], r, last_rate), np.where(keep[:, j], q, last_quality)
    return rate, quality, keep


def _row_integrals(x: np.ndarray, y: np.ndarray, keep: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """∫ low..high of each row's PCHIP through its kept points (NaN where the bounds are NaN), rows grouped by count."""
    out = np.full(len(x), np.nan)
    kept = keep.sum(axis=1)
    for count in np.unique(kept[np.isfinite(low) & np.isfinite(high)]):
        rows = np.flatnonzero((kept == count) & np.isfinite(low) & np.isfinite(high))
        if count >= 2:  # boolean indexing keeps each row's points in order
            shape = (len(rows), int(count))
            out[rows] = pchip.integral(x[rows][keep[rows]].reshape(shape), y[rows][keep[rows]].reshape(shape),
                                       low[rows], high[rows])  # fmt: skip
    return out


def _common_rows(anchor: np.ndarray, test: np.ndarray, keep_anchor: np.ndarray, keep_test: np.ndarray,
                 minimum: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per row: the common interval of two kept point sets; NaN where it is shorter than `minimum` or a curve has < 2 points."""
    low = np.maximum(np.where(keep_anchor, anchor, np.inf).min(1), np.where(keep_test, test, np.inf).min(1))
    high = np.minimum(np.where(keep_anchor, anchor, -np.inf).max(1), np.where(keep_test, test, -np.inf).max(1))
    usable = (keep_anchor.sum(1) >= 2) & (keep_test.sum(1) >= 2) & (high - low >= minimum) & (high > low)
    return np.where(usable, low, np.nan), np.where(usable, high, np.nan)


def resampled_bd(anchor_rate: np.ndarray, anchor_quality: np.ndarray, test_rate: np.ndarray,
                 test_quality: np.ndarray, *, min_quality_span: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """PCHIP BD-rate (%) and BD-quality of every row's test curve against the same row's anchor curve.

    Rows are resamples (resamples × qualities); each is made monotone and
    refused (NaN) as `bd_pair` would, and integrated over its own common
    interval: the quality interval for BD-rate, the log-rate one for BD-quality.
    """
    a_rate, a_quality, a_keep = _monotone_rows(anchor_rate, anchor_quality)
    t_rate, t_quality, t_keep = _monotone_rows(test_rate, test_quality)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_log, t_log = np.log(a_rate), np.log(t_rate)
    low, high = _common_rows(a_quality, t_quality, a_keep, t_keep, max(min_quality_span, 1e-12))
    log_ratio = (_row_integrals(t_quality, t_log, t_keep, low, high)
                 - _row_integrals(a_quality, a_log, a_keep, low, high)) / (high - low)  # fmt: skip
    low, high = _common_rows(a_log, t_log, a_keep, t_keep, MIN_LOG_RATE_SPAN)
    quality = (_row_integrals(t_log, t_quality, t_keep, low, high)
               - _row_integrals(a_log, a_quality, a_keep, low, high)) / (high - low)  # fmt: skip
    return 100 * np.expm1(log_ratio), quality


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval, when at least 90% of the resamples gave a value (else NaN, NaN)."""
    finite = values[np.isfinite(values)]
    if len(finite) < 0.9 * len(values) or not len(finite):
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


INTERVAL_COLUMNS = ["bd_rate_low", "bd_rate_high", "bd_quality_low", "bd_quality_high"]


def bootstrap_bd(frame: pd.DataFrame, anchor: str, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 method: str = DEFAULT_METHOD) -> pd.DataFrame:  # fmt: skip
    """95% percentile intervals of every BD delta against `anchor`: both rate views, every quality axis.

    `frame` holds the per-image rows the means were taken over (errors left
    out). Images are resampled (per class where labelled, see
    `_resample_counts`); each resample recomputes both curves' per-quality
    means and their BD-rate and BD-quality over each one's common interval,
    all resamples at once (`resampled_bd`; Akima, which has no batched form
    here, one resample at a time). Accuracy resamples each image's
    correctness on the images it is scored on. An interval is given when at
    least 90% of the resamples have a value (NaN otherwise).
    """
    columns = ["dataset", "codec", "rate", "quality_axis", *INTERVAL_COLUMNS]
    point = ["dataset", "codec", "quality"]
    failed = frame.loc[frame["error"].notna(), point].drop_duplicates()  # points left out of BD (`complete`)
    ok = frame[frame["error"].isna()]
    ok = ok[~pd.MultiIndex.from_frame(ok[point]).isin(pd.MultiIndex.from_frame(failed))].copy()
    for protocol in PROTOCOLS:  # each image's correctness, on the rows an accuracy counts
        if protocol.predicted in ok and ok[protocol.predicted].notna().any():
            correct = (ok[protocol.predicted] == ok["label"]).astype(float)
            ok[f"accuracy{protocol.suffix}"] = correct.where(scored_mask(ok, protocol.predicted))
    axes = [axis for axis in MIN_QUALITY_SPAN if axis in ok and ok[axis].notna().any()]
    rates = [rate for rate in RATES if rate in ok]
    for axis in axes:
        ok[axis] = _capped(pd.to_numeric(ok[axis], errors="coerce"), axis)
    out = []
    for dataset, rows in ok.groupby("dataset", sort=False):
        if anchor not in set(rows["codec"]):
            continue
        images = pd.Index(sorted(rows["image"].unique()))
        labels = rows.drop_duplicates("image").set_index("image")["label"].reindex(images).fillna("").to_numpy()
        counts = _resample_counts(labels, resamples, seed)
        curves = {codec: _resampled_means(group, images, counts, [*rates, *axes])
                  for codec, group in rows.groupby("codec", sort=False)}  # fmt: skip
        reference = curves[anchor]
        for codec, curve in curves.items():
            if codec == anchor:
                continue
            for rate in rates:
                for axis in axes:
                    arrays = reference[rate], reference[axis], curve[rate], curve[axis]
                    if method == "pchip":
                        bd_rate, bd_quality = resampled_bd(*arrays, min_quality_span=MIN_QUALITY_SPAN[axis])
                    else:
                        deltas = [bd_pair(*(a[b] for a in arrays), min_quality_span=MIN_QUALITY_SPAN[axis],
                                          method=method) for b in range(resamples)]  # fmt: skip
                        bd_rate = np.array([d["bd_rate_pct"] for d in deltas])
                        bd_quality = np.array([d["bd_quality"] for d in deltas])
                    out.append({"dataset": dataset, "codec": codec, "rate": rate, "quality_axis": axis,
                                **dict(zip(INTERVAL_COLUMNS, (*_interval(bd_rate), *_interval(bd_quality))))})  # fmt: skip
    return pd.DataFrame(out, columns=columns)


PER_IMAGE_MIN_SIDE = 256
"""Datasets whose images are at least this large get per-image BD-rates: each image's own curve is meaningful."""


def per_image_bd(frame: pd.DataFrame, anchor: str, *, rate: str = "bpp", axis: str = "psnr",
                 method: str = DEFAULT_METHOD) -> pd.DataFrame:  # fmt: skip
    """BD-rate of each codec against `anchor` on each image's own curves (where they share a quality interval)."""
    ok = frame[frame["error"].isna()]
    rows = []
    for (dataset, image), of_image in ok.groupby(["dataset", "image"], sort=False):
        reference = of_image[of_image["codec"] == anchor]
        if len(reference) < 2:
            continue
        for codec, curve in of_image.groupby("codec", sort=False):
            if codec == anchor:
                continue
            delta = bd_pair(reference[rate], _capped(reference[axis], axis), curve[rate], _capped(curve[axis], axis),
                            min_quality_span=MIN_QUALITY_SPAN[axis], method=method)  # fmt: skip
            if not math.isnan(delta["bd_rate_pct"]):
                rows.append({"dataset": dataset, "codec": codec, "image": image, "rate": rate,
                             "bd_rate_pct": delta["bd_rate_pct"]})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "codec", "image", "rate", "bd_rate_pct"])
