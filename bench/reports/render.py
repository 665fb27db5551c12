"""Markdown and HTML reports of a run, rendered from its database with Jinja2."""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from bench import metrics
from bench.bd import (DEFAULT_ANCHOR, DEFAULT_METHOD, PER_IMAGE_MIN_SIDE, RATES, paired_lead, per_image_bd,
                      strongest_classical, winners)
from bench.files import write_bytes, write_text
from bench.reports.gallery import GALLERY_BPP, gallery
from bench.reports.plots import axis_label, confusion_figure, per_image_bd_figure, rd_figure, save_png
from bench.run import Run
from bench.tables import ACCURACY_RATES, at_rates, left_out, original_accuracy, scored, small_samples
from bench.tasks.latent import TIMED_STREAMS, TIMING_ROUNDS
from bench.tasks.scores import PROTOCOLS

MAX_FAILURES_LISTED = 200
_FIGURES = (*((m.name, "bpp") for m in metrics.METRICS.values() if m.bd_axis), *((f"accuracy{p.suffix}", "bpp") for p in PROTOCOLS),
            ("psnr", "bpp_payload"))  # fmt: skip
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def md_escape(value: object) -> str:
    """Text safe inside a Markdown table cell: control characters backslash-escaped."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value: object) -> str:
    """`value` as a Markdown code span that nothing inside can end early, safe in a table cell too.

    Code spans take no backslash escapes (a name would show its backslashes),
    so the fence is one backtick longer than any run inside; newlines become
    spaces and pipes are escaped, the one escape GFM tables apply even there.
    """
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table cell: fixed digits, "—" for missing, "inf" kept."""
    if _missing(value):
        return "—"
    if isinstance(value, (float, np.floating)):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_escape
    env.filters["code"] = md_code
    env.filters["fmt"] = fmt
    return env


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _slug(name: object) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(name)).strip("-")


def _embedded(path: Path, png: bytes, title: str) -> dict:
    """A saved figure as the templates show it: linked from report.md (relative path), inlined in report.html."""
    return {"title": title, "path": path.relative_to(path.parent.parent).as_posix(),
            "data_uri": "data:image/png;base64," + base64.b64encode(png).decode()}  # fmt: skip


def _figures(summary: pd.DataFrame, dataset: str, plot_dir: Path) -> list[dict]:
    figures = []
    for metric, rate in _FIGURES:
        if summary[metric].notna().sum() == 0:
            continue
        path = plot_dir / f"rd-{_slug(dataset)}-{metric}-{rate}.png"
        title = f"{dataset}: {axis_label(metric)} vs {rate}"
        figures.append(_embedded(path, save_png(rd_figure(summary, metric, rate, title), path), title))
    return figures


def _summary_view(rows: list[dict]) -> dict:
    """The per-point table for people: headers and formatted cells, one metric column (± CI) per registry entry."""
    shown = [m for m in metrics.METRICS.values() if m.shown and any(not _missing(row.get(m.name)) for row in rows)]
    headers = ["codec", "quality", "images", "errors", "bpp", "bpp payload",
               *(f"{m.label} ({m.unit})" if m.unit else m.label for m in shown),
               "accuracy [95%] n", "F1 (w)", "RDAI", "encode ms", "decode ms"]  # fmt: skip
    adapted = any(row.get("n_scored_adapted") for row in rows)
    if adapted:
        headers[-2:-2] = ["adapted accuracy [95%] n", "adapted F1 (w)", "adapted RDAI"]
    table = []
    for row in rows:
        digits = {m.name: 2 if m.unit == "dB" else 4 for m in shown}
        cells = [row["codec"], f"{row['quality']:g}", str(row["n_images"]), str(row["n_errors"]), fmt(row["bpp"]),
                 fmt(row["bpp_payload"])]  # fmt: skip
        cells += [f"{fmt(row[m.name], digits[m.name])} ± {fmt(row[m.name + '_ci95'], digits[m.name])}" for m in shown]
        for protocol in PROTOCOLS if adapted else PROTOCOLS[:1]:
            suffix = protocol.suffix
            accuracy = fmt(row.get(f"accuracy{suffix}"), 3)
            if row.get(f"n_scored{suffix}"):
                accuracy += (f" [{fmt(row[f'accuracy{suffix}_low'], 2)}, {fmt(row[f'accuracy{suffix}_high'], 2)}] "
                             f"n={row[f'n_scored{suffix}']}")  # fmt: skip
            cells += [accuracy, fmt(row.get(f"f1_weighted{suffix}"), 3), fmt(row.get(f"rdai{suffix}"), 3)]
        cells += [fmt(row["encode_ms"], 2), fmt(row["decode_ms"], 2)]
        table.append(cells)
    return {"headers": headers, "rows": table}


def _accuracy_at_rates(summary: pd.DataFrame, protocols: list) -> dict | None:
    """Each codec's accuracy at `ACCURACY_RATES` (`bench.tables.at_rates`), "fixed / adapted" with both protocols."""
    if not protocols:
        return None
    columns = [f"accuracy{p.suffix}" for p in protocols]
    table = at_rates(summary, columns)
    rows = []
    for codec, group in table.groupby("codec", sort=False):
        values = group[columns].to_numpy(float)
        rows.append([codec, *(" / ".join(fmt(v, 3) for v in at) if np.isfinite(at).any() else "—" for at in values)])
    return {"headers": ["codec", *(f"{rate:g} bpp" for rate in ACCURACY_RATES)], "rows": rows,
            "protocols": " / ".join(p.name for p in protocols)}  # fmt: skip


def _confusion(frame: pd.DataFrame, summary: pd.DataFrame, anchor: str, plot_dir: Path) -> dict | None:
    """Confusion matrix of the anchor codec at its coarsest setting that was classified (most confusion)."""
    points = summary[(summary["codec"] == anchor) & (summary["n_scored"] > 0)]
    if points.empty:
        return None
    point = points.iloc[0]
    rows = scored(frame[(frame["codec"] == anchor) & (frame["quality"] == point["quality"])])
    title = f"{point['dataset']}: {anchor} q={point['quality']:g} ({point['bpp']:.2f} bpp), accuracy {point['accuracy']:.3f}"
    path = plot_dir / f"confusion-{_slug(point['dataset'])}-{anchor}.png"
    return _embedded(path, save_png(confusion_figure(list(rows["label"]), list(rows["predicted"]), title), path), title)


RATE_LABELS = {"bpp": "whole-file bpp", "bpp_payload": "payload bpp (headers left out)"}


def _winner_rows(summary: pd.DataFrame, frame: pd.DataFrame, rate: str) -> list[dict]:
    """The best codec at each target rate, with how sure its lead over the runner-up is, image by image."""
    table = winners(summary, rate=rate)
    rows = []
    for target, group in table.groupby("bpp", sort=True):
        ranked = group.to_dict("records")
        lead = paired_lead(frame, ranked[0]["codec"], ranked[1]["codec"], target, rate) if len(ranked) > 1 else None
        rows.append({"bpp": target, "best": ranked[0], "others": ranked[1:3], "n": len(ranked), "lead": lead})
    return rows


def _axis_label(axis: str) -> tuple[str, str]:
    metric = metrics.METRICS.get(axis)
    return (metric.label, metric.unit) if metric else (axis.replace("_", " "), "")


def _per_image(counted: pd.DataFrame, dataset: str, anchor: str, method: str, plot_dir: Path) -> dict | None:
    """Per-image BD-rates against the anchor (datasets of large images): a plot and, per codec, median and win share."""
    rows = counted[counted["dataset"] == dataset]
    sides = rows[["height", "width"]].dropna()  # unreadable images have no size
    if sides.empty or anchor not in set(rows["codec"]) or int(sides.min().min()) < PER_IMAGE_MIN_SIDE:
        return None
    per_image = per_image_bd(rows, anchor, method=method)
    if per_image.empty:
        return None
    summary = [{"codec": codec, "n": len(group), "median": float(group["bd_rate_pct"].median()),
                "wins": float((group["bd_rate_pct"] < 0).mean())}
               for codec, group in per_image.groupby("codec", sort=False)]  # fmt: skip
    title = f"{dataset}: per-image BD-rate (PSNR, whole file) against {anchor}"
    path = plot_dir / f"per-image-bd-{_slug(dataset)}.png"
    return {**_embedded(path, save_png(per_image_bd_figure(per_image, anchor, title), path), title), "summary": summary}


def _bd_cell(row, delta: str, number: str, unit: str) -> str:
    """"−29.6% [−31.2, −27.9]": a BD value (`delta`: "rate" or "quality") with its bootstrap interval, or why none."""
    value = row["bd_rate_pct" if delta == "rate" else "bd_quality"]
    if _missing(value):
        return f"n/a: {row[f'note_{delta}']}"
    low, high = row.get(f"bd_{delta}_low"), row.get(f"bd_{delta}_high")
    if low is None:  # the run was reported with --bootstrap 0
        return f"{value:{number}}{unit}"
    return f"{value:{number}}{unit} " + ("[—]" if _missing(low) else f"[{low:{number}}, {high:{number}}]")


def _bd_view(bd: pd.DataFrame, rate: str) -> dict:
    """One BD table for people: a row per codec, a BD-rate and a BD-quality cell per quality axis.

    A refused delta shows its reason in the cell instead of a number.
    """
    rows = bd[bd["rate"] == rate]
    axes = list(dict.fromkeys(rows["quality_axis"]))
    headers = ["codec"]
    for axis in axes:
        label, _ = _axis_label(axis)
        headers += [f"BD-rate ({label})", f"BD-{label}"]
    headers += ["common interval (PSNR · log-rate)", "points dropped (PSNR)"]
    table = []
    for codec, group in rows.groupby("codec", sort=False):
        by_axis = group.set_index("quality_axis")
        cells = [codec]
        for axis in axes:
            row = by_axis.loc[axis]
            _, unit = _axis_label(axis)
            digits = 2 if unit == "dB" else 4 if axis != "accuracy" else 3
            cells.append(_bd_cell(row, "rate", "+.1f", "%"))
            cells.append(_bd_cell(row, "quality", f"+.{digits}f", f" {unit}" if unit else ""))
        psnr = by_axis.loc["psnr"] if "psnr" in by_axis.index else by_axis.iloc[0]
        cells.append(f"{100 * psnr['coverage_quality']:.0f}% · {100 * psnr['coverage_rate']:.0f}%")
        cells.append(str(int(psnr["dropped"])))
        table.append(cells)
    return {"rate": rate, "rate_label": RATE_LABELS[rate], "headers": headers, "rows": table}


def _bd_tables(run: Run, bd: pd.DataFrame, dataset: str, anchor: str, method: str) -> list[dict]:
    """BD tables against the anchor and against the run's strongest classical codec, each in both rate views."""
    tables = []
    against_anchor = bd[bd["dataset"] == dataset]
    if against_anchor.empty:
        return tables
    strongest = strongest_classical(bd, run.summary, dataset)
    choices = [(anchor, against_anchor, "the anchor")]
    if strongest and strongest != anchor:
        against_strongest = run.bd(strongest, method)
        choices.append((strongest, against_strongest[against_strongest["dataset"] == dataset],
                        "the strongest classical codec of this run (lowest PSNR BD-rate against the anchor, whole file)"))  # fmt: skip
    for reference, table, why in choices:
        for rate in RATES:
            tables.append({"against": reference, "why": why, **_bd_view(table, rate)})
    return tables


def context(run: Run, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, *, out: Path | None = None) -> dict:
    """Everything the report templates show, computed from the run's database; plots go to `out`/plots (default: the
    run directory's)."""
    plots = Path(out or run.directory) / "plots"
    frame, summary, bd = run.frame, run.summary, run.bd(anchor, method)
    originals = original_accuracy(frame).set_index("dataset") if not frame.empty else pd.DataFrame()
    runs = run.invocations
    latest = run.latest
    counted = run.counted
    measured = set(frame["codec"])
    order = [name for name in run.codec_info if name in measured] + sorted(measured - set(run.codec_info))
    protocols = [p for p in PROTOCOLS if f"n_scored{p.suffix}" in summary and (summary[f"n_scored{p.suffix}"] > 0).any()]
    datasets = []
    for name in summary["dataset"].unique() if not summary.empty else []:
        rows = frame[frame["dataset"] == name]
        sizes = rows.drop_duplicates("image")[["height", "width"]].dropna()
        missing = sorted(
            {reason for shape in sizes.itertuples(index=False)
             for reason in metrics.missing_reasons((int(shape.height), int(shape.width)))}
        )  # fmt: skip
        datasets.append(
            {
                "name": name,
                "source": latest.get("datasets", {}).get(name, ""),
                "n_images": rows["image"].nunique(),
                "classes": sorted(rows["label"].dropna().unique()),
                "summary": _summary_view(summary[summary["dataset"] == name].to_dict("records")),
                "bd_tables": _bd_tables(run, bd, name, anchor, method),
                "per_image": _per_image(counted, name, anchor, method, plots),
                "winners": {rate: _winner_rows(summary[summary["dataset"] == name], counted[counted["dataset"] == name], rate)
                            for rate in RATES},  # fmt: skip
                "figures": _figures(run.curves[run.curves["dataset"] == name], name, plots),
                "missing_metrics": missing,
                "gallery": gallery(frame, run.crops, name, plots, order),
                "original": originals.loc[name].to_dict() if name in originals.index else None,
                "confusion": _confusion(frame[frame["dataset"] == name], summary[summary["dataset"] == name],
                                        anchor, plots),  # fmt: skip
                "accuracy_at_rates": _accuracy_at_rates(summary[summary["dataset"] == name], protocols),
            }
        )
    failures = frame[frame["error"].notna()]
    latent_rows = []
    for row in run.latent:
        tsne = plots / f"tsne-{_slug(row['dataset'])}-{row['arch']}-q{row['quality']}.png"
        if row.get("tsne_png"):
            write_bytes(tsne, row["tsne_png"])
        latent_rows.append({**row, "tsne": _embedded(tsne, row["tsne_png"], "") if row.get("tsne_png") else None})
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": latest,
        "n_invocations": len(runs),
        "datasets": datasets,
        "codecs": [run.codec_info.get(name, {"name": name, "description": "—", "quality_name": "—", "rate_note": "—"})
                   for name in order],  # fmt: skip
        "versions": latest.get("codecs", {}),
        "unavailable": latest.get("unavailable", {}),
        "failures": failures.head(MAX_FAILURES_LISTED).to_dict("records"),
        "n_failures": len(failures),
        "psnr_cap": metrics.PSNR_CAP_DB,
        "ms_ssim_min_side": metrics.MS_SSIM_MIN_SIDE,
        "n_rows": len(frame),
        "anchor": anchor,
        "bd_method": method,
        "bootstrap": run.bootstrap,
        "protocols": protocols,
        "include_seen": run.include_seen,
        "n_seen": int((frame["seen"] == 1).sum()) if "seen" in frame else 0,
        "small_samples": small_samples(summary),
        "left_out": left_out(frame, include_seen=run.include_seen),
        "rate_labels": RATE_LABELS,
        "gallery_bpp": GALLERY_BPP,
        "latent": latent_rows,
        "latent_timing": {"rounds": TIMING_ROUNDS, "streams": TIMED_STREAMS},
    }


def write_reports(run: Run, anchor: str = DEFAULT_ANCHOR, method: str = DEFAULT_METHOD, *,
                  out: Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Render ``report.md`` and ``report.html`` (self-contained) into `out` (default: the run directory)."""
    out = Path(out or run.directory)
    (out / "plots").mkdir(exist_ok=True)
    values = context(run, anchor, method, out=out)
    env = _environment()
    paths = {}
    for name in ("report.md", "report.html"):
        paths[name] = out / name
        write_text(paths[name], env.get_template(f"{name}.j2").render(**values))
    return paths
