"""The regression gate: compare a run with a committed baseline of codec quality.

`make_baseline` freezes a run's aggregate points (per codec × quality: bpp,
PSNR, SSIM and, when measured, accuracy) and BD-rates into JSON with the library versions behind them;
`compare` checks a run against it with per-metric tolerances and the
per-point image and error counts, and returns a tidy diff table.
``python -m bench check`` exits 0 when everything holds, 1 on any
regression, 2 on usage errors (missing or malformed baseline, codec absent),
4 on an internal error (never 1: a crash of the gate is not a regression).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd

from bench.assets import ASSET_ROOT, IN_CHECKOUT, refuse_committed, refuse_replacing_other
from bench.bd import DEFAULT_ANCHOR, headline, headline_rows
from bench.metrics import METRICS
from bench.files import file_part, write_text
from bench.run import Run

BASELINE_DIR = ASSET_ROOT / "reports" / "baseline"


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a metric may move the wrong way before it is a regression."""

    amount: float
    relative: bool  # relative to the baseline value (rate) or absolute (quality)
    higher_is_better: bool


TOLERANCES = {
    "bpp": Tolerance(0.005, relative=True, higher_is_better=False),  # +0.5% bytes
    **{m.name: Tolerance(m.tolerance, relative=False, higher_is_better=m.higher_is_better)
       for m in METRICS.values() if m.tolerance > 0},  # each metric's own, from its registry entry
    "accuracy": Tolerance(0.02, relative=False, higher_is_better=True),  # −2 points: one test image of 99 is ~1
    "bd_rate_psnr": Tolerance(0.25, relative=False, higher_is_better=False),  # +0.25 percentage points
}  # fmt: skip


class GateUsageError(ValueError):
    """The comparison cannot be made (no baseline, codec missing from the run…)."""


def run_identity(run: Run) -> dict:
    """Dataset, source kind, split, limit and seed of the latest invocation of a run."""
    if not run.invocations:
        raise GateUsageError(f"{run.directory}: the database records no run")
    info = run.latest
    if len(info["datasets"]) != 1:
        raise GateUsageError(f"{run.directory}: a baseline covers one dataset; this run has {list(info['datasets'])}")
    (dataset,) = info["datasets"]
    identity = info.get("dataset_identities", {}).get(dataset)
    if identity is None:
        raise GateUsageError(f"{run.directory}: written by an older bench without dataset identities; run it again")
    return {
        "dataset": dataset, "source": identity["kind"],
        "split": info["split"], "limit": info["limit"], "seed": info["seed"],
    }  # fmt: skip


def baseline_name(identity: dict) -> str:
    name = f"{identity['dataset']}-{identity['source']}"
    if identity["split"] != "all":
        name += f"-{identity['split']}"
    if identity["limit"]:
        name += f"-limit{identity['limit']}"
    return file_part(name)


def default_baseline(run: Run) -> Path:
    return BASELINE_DIR / f"{baseline_name(run_identity(run))}.json"


def make_baseline(run: Run, anchor: str = DEFAULT_ANCHOR) -> dict:
    """The baseline document of a run: its aggregate points, BD-rates and versions."""
    identity = run_identity(run)
    summary, info = run.summary, run.latest
    columns = ["codec", "quality", "n_images", "n_errors", *[m for m in TOLERANCES if m in summary and summary[m].notna().any()]]
    points = summary[columns].to_dict("records")
    bd = [{"codec": codec, "bd_rate_psnr": value} for codec, value in headline(run.bd(anchor)).items()]
    return {
        **identity, "name": baseline_name(identity), "anchor": anchor, "git_commit": info.get("git_commit"),
        "codec_versions": info.get("codecs", {}), "packages": info.get("packages", {}),
        "points": points, "bd": [row for row in bd if not math.isnan(row["bd_rate_psnr"])],
    }  # fmt: skip


def write_baseline(run: Run, path: Path | None = None, anchor: str = DEFAULT_ANCHOR, *, force: bool = False) -> Path:
    """Write `run`'s baseline to `path` (default: the committed one of its dataset in a checkout); `CommittedAsset`
    when that would replace a committed baseline without `force`."""
    run.check_anchor(anchor)
    summary = run.summary
    failed = sorted(set(summary["codec"]) - set(summary.loc[summary["n_images"] > 0, "codec"]))  # n_images: measured
    if summary.empty:
        raise GateUsageError(f"{run.directory}: no row is counted (every one failed, or every image is seen: see its "
                             "report), so there is nothing to freeze")  # fmt: skip
    if failed:  # a baseline of failures passes any run that fails alike
        raise GateUsageError(f"{run.directory}: every row of {', '.join(failed)} failed, so there is nothing to "
                             "freeze; fix it or measure without it, then write the baseline")  # fmt: skip
    document = make_baseline(run, anchor)
    # a checkout updates its committed baselines; an installed package writes beside the user, not into itself
    path = Path(path) if path else (BASELINE_DIR if IN_CHECKOUT else Path("reports/baseline")) / f"{document['name']}.json"
    refuse_committed(path, BASELINE_DIR / path.name, "a committed baseline", force)
    refuse_replacing_other(path, "a baseline", ".json", lambda p: _baseline_problem(json.loads(p.read_text())) is None)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(document, indent=1, allow_nan=False, default=float) + "\n")
    return path


def _verdict(metric: str, base: float, value: float, tolerance: Tolerance) -> tuple[float, str]:
    if not math.isfinite(value):  # the baseline had a number: a value that vanished is not "ok"
        return math.nan, "REGRESSION"
    delta = value - base
    allowed = tolerance.amount * abs(base) if tolerance.relative else tolerance.amount
    worse = -delta if tolerance.higher_is_better else delta
    if worse > allowed:
        return delta, "REGRESSION"
    return delta, "improved" if worse < -allowed else "ok"


COUNTS = ("n_images", "n_errors")
"""Per point, fewer images measured or more errors than the baseline is a regression whatever the means say."""


def load_baseline(path: Path) -> dict:
    """A baseline document, checked: GateUsageError naming the file and the problem when it is malformed."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise GateUsageError(f"{path}: not a readable baseline ({type(exc).__name__}: {exc})") from None
    problem = _baseline_problem(document)
    if problem:
        raise GateUsageError(f"{path}: malformed baseline: {problem}")
    return document


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _baseline_problem(document: object) -> str | None:
    if not isinstance(document, dict):
        return "not a JSON object"
    missing = [key for key in ("dataset", "source", "split", "limit", "seed", "anchor", "points", "bd") if key not in document]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(document["points"], list) or not document["points"]:
        return "points must be a non-empty list (a baseline that checks nothing passes everything)"
    if not isinstance(document["bd"], list):
        return "bd must be a list"
    for index, point in enumerate(document["points"]):
        if not isinstance(point, dict) or not isinstance(point.get("codec"), str) or not _finite(point.get("quality")):
            return f"points[{index}] needs a codec name and a finite quality"
        for metric in [*TOLERANCES, *COUNTS]:
            value = point.get(metric)
            if value is not None and not _finite(value):
                return f"points[{index}] ({point['codec']} q{point['quality']}): {metric} = {value!r} is not a finite number"
            if metric in COUNTS and value is not None and value < 0:
                return f"points[{index}] ({point['codec']} q{point['quality']}): {metric} = {value!r} is negative"
    for index, row in enumerate(document["bd"]):
        value = row.get("bd_rate_psnr") if isinstance(row, dict) else None
        if not _finite(value) or "codec" not in row:
            return f"bd[{index}] needs a codec and a finite bd_rate_psnr"
    return None


def compare(run: Run, baseline: dict, tolerances: dict[str, Tolerance] | None = None) -> pd.DataFrame:
    """One row per checked value: codec, quality, metric, baseline, run, delta, status.

    A value that is missing (NaN) in the run where the baseline has a number,
    fewer images or more errors at a point, and a BD-rate that can no longer
    be computed are regressions. A BD-rate is a regression only when it moved
    past its tolerance *and* the baseline's value lies outside the run's own
    95% bootstrap interval; otherwise it is reported as "within noise": the
    sample is too small to tell.
    """
    tolerances = {**TOLERANCES, **(tolerances or {})}
    identity = run_identity(run)
    mismatched = {k: (baseline.get(k), identity[k]) for k in ("dataset", "source", "split", "limit", "seed")
                  if baseline.get(k) != identity[k]}  # fmt: skip
    if mismatched:
        raise GateUsageError(f"baseline {baseline.get('name')} is for another run setup: {mismatched} (baseline, run)")
    summary = run.summary
    points = summary.set_index(["codec", "quality"])
    missing = sorted({p["codec"] for p in baseline["points"]} - set(summary["codec"]))
    if missing:
        raise GateUsageError(f"codec(s) {', '.join(missing)} of the baseline are absent from the run")
    rows = []
    for point in baseline["points"]:
        key = (point["codec"], float(point["quality"]))
        if key not in points.index:
            raise GateUsageError(f"{point['codec']} quality {point['quality']:g} of the baseline is absent from the run")
        for count in [c for c in COUNTS if point.get(c) is not None]:
            value, base = int(points.loc[key, count]), int(point[count])
            worse = value < base if count == "n_images" else value > base
            rows.append({"codec": key[0], "quality": key[1], "metric": count, "baseline": base, "run": value,
                         "delta": value - base, "status": "REGRESSION" if worse else "ok"})  # fmt: skip
        for metric in [m for m in TOLERANCES if m in point and point[m] is not None]:
            value, base = float(points.loc[key, metric]), float(point[metric])
            delta, status = _verdict(metric, base, value, tolerances[metric])
            rows.append({"codec": key[0], "quality": key[1], "metric": metric, "baseline": base, "run": value,
                         "delta": delta, "status": status})  # fmt: skip
    current = headline_rows(run.bd(baseline["anchor"]))
    for row in baseline["bd"]:
        value = float(current["bd_rate_pct"].get(row["codec"], math.nan))
        delta, status = _verdict("bd_rate_psnr", row["bd_rate_psnr"], value, tolerances["bd_rate_psnr"])
        low, high = pd.to_numeric(current.reindex([row["codec"]])[["bd_rate_low", "bd_rate_high"]].iloc[0], errors="coerce")
        if status == "REGRESSION" and low <= row["bd_rate_psnr"] <= high:
            # past the tolerance but inside the run's own 95% bootstrap interval: the sample cannot tell
            status = "within noise"
        rows.append({"codec": row["codec"], "quality": math.nan, "metric": f"bd_rate_psnr vs {baseline['anchor']}",
                     "baseline": row["bd_rate_psnr"], "run": value, "delta": delta, "status": status})  # fmt: skip
    return pd.DataFrame(rows)


def version_changes(run: Run, baseline: dict) -> dict[str, tuple[str, str]]:
    """Codecs whose library version differs from the baseline's: name → (baseline, run)."""
    current = run.latest.get("codecs", {})
    return {c: (v, current.get(c, "absent")) for c, v in baseline.get("codec_versions", {}).items() if current.get(c) != v}


def parse_tolerances(specs: list[str]) -> dict[str, Tolerance]:
    """``psnr=0.1`` style overrides (the amount; relative/direction stay the metric's)."""
    chosen = {}
    for spec in specs:
        metric, _, amount = spec.partition("=")
        if metric not in TOLERANCES:
            raise GateUsageError(f"--tolerance {spec}: unknown metric {metric!r}; valid: {', '.join(TOLERANCES)}")
        try:
            value = float(amount)
        except ValueError:
            raise GateUsageError(f"--tolerance {spec}: expected a number") from None
        if not (math.isfinite(value) and value >= 0):  # NaN would pass everything, a negative amount fail equal values
            raise GateUsageError(f"--tolerance {spec}: must be a finite number ≥ 0")
        chosen[metric] = dataclasses.replace(TOLERANCES[metric], amount=value)
    return chosen


def check(run: Run, baseline_path: Path | None, tolerances: dict[str, Tolerance] | None = None, *,
          verbose: bool = False) -> tuple[list[str], int]:  # fmt: skip
    """Compare `run` with its baseline (the committed one matching the run by default): the lines to print, and
    how many regressions there are."""
    path = Path(baseline_path) if baseline_path else default_baseline(run)
    if not path.is_file():
        raise GateUsageError(f"no baseline at {path}; write one with `python -m bench baseline {run.directory}`")
    baseline = load_baseline(path)
    diff = compare(run, baseline, tolerances)
    shown = diff if verbose else diff[diff["status"] != "ok"]
    lines = [f"baseline {path} ({len(diff)} values checked)"]
    if not shown.empty:
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    lines += [f"note: {codec} library changed: {old} → {new}" for codec, (old, new) in version_changes(run, baseline).items()]
    regressions = int((diff["status"] == "REGRESSION").sum())
    lines.append(f"{regressions} regression(s), {int((diff['status'] == 'improved').sum())} improvement(s)")
    return lines, regressions
