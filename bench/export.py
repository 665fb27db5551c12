"""Exporting a run's curves in other tools' formats.

``compressai``: one JSON per dataset × codec in CompressAI's results format
(``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...],
"ms-ssim-rgb": [...]}}``), which ``python -m compressai.utils.plot`` draws and
compares with CompressAI's published curves. Points are the run's means over
unseen images, from the coarsest to the finest setting, leaving out points
where images failed (as BD does, `bench.bd.complete`); MS-SSIM is left out
where it is undefined (images below 161 px). Each codec's document also
carries its BD deltas against the anchor with their bootstrap intervals.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pandas as pd

from bench.assets import refuse_committed_folder
from bench.bd import DEFAULT_ANCHOR, complete
from bench.files import write_text
from bench.run import Run

FORMATS = ("compressai",)


def _bd_entries(bd: pd.DataFrame, dataset: str, codec: str) -> dict:
    """The codec's BD deltas against the anchor with their 95% bootstrap intervals, by rate view and quality axis."""
    rows = bd[(bd["dataset"] == dataset) & (bd["codec"] == codec)]
    entries = {}
    for row in rows.to_dict("records"):
        entries.setdefault(row["rate"], {})[row["quality_axis"]] = {
            "bd_rate_pct": _finite(row["bd_rate_pct"]), "bd_rate_ci95": [_finite(row["bd_rate_low"]), _finite(row["bd_rate_high"])],
            "bd_quality": _finite(row["bd_quality"]), "bd_quality_ci95": [_finite(row["bd_quality_low"]), _finite(row["bd_quality_high"])],
        }  # fmt: skip
    return entries


def _finite(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def compressai_results(run: Run, anchor: str = DEFAULT_ANCHOR) -> dict[tuple[str, str], dict]:
    """(dataset, codec) → CompressAI's results document of that curve.

    Besides CompressAI's keys (which its plot reads), each document carries
    ``bd``: its BD deltas against `anchor` with their 95% bootstrap intervals,
    by rate view (``bpp``, ``bpp_payload``) and quality axis.
    """
    run.check_anchor(anchor)
    documents = {}
    bd = run.bd(anchor)
    for (dataset, codec), curve in run.summary.groupby(["dataset", "codec"], sort=False):
        curve = complete(curve).sort_values("bpp")  # a point where images failed is no point of the curve (BD, too)
        if curve.empty:
            continue
        results = {"bpp": curve["bpp"].tolist(), "psnr-rgb": curve["psnr"].tolist()}
        if curve["ms_ssim"].notna().all():
            results["ms-ssim-rgb"] = curve["ms_ssim"].tolist()
        description = run.codec_info.get(codec, {}).get("description", codec)
        documents[dataset, codec] = {
            "name": codec,
            "description": f"{description}; {dataset}, means over {int(curve['n_images'].min())} images (rs-codec-bench)",
            "results": {key: [None if math.isnan(v) else v for v in values] for key, values in results.items()},
        }
        if codec != anchor and not bd.empty:
            documents[dataset, codec]["bd"] = {"anchor": anchor, **_bd_entries(bd, dataset, codec)}
    return documents


def export(run: Run, format_: str, out: Path, anchor: str = DEFAULT_ANCHOR) -> list[Path]:
    """Write the run's curves in `format_` under `out`; the files written."""
    if format_ not in FORMATS:
        raise ValueError(f"unknown export format {format_!r}; valid: {', '.join(FORMATS)}")
    refuse_committed_folder(out, "export elsewhere")
    written = []
    for (dataset, codec), document in compressai_results(run, anchor).items():
        path = Path(out) / _file_stem(dataset) / f"{_file_stem(codec)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(document, indent=2) + "\n")
        written.append(path)
    return written


def _file_stem(name: str) -> str:
    """`name` (a dataset or codec name, from a database that may come from anywhere) as a file name in the export
    folder: other characters than letters, digits, ``.``, ``_`` and ``-`` replaced, no leading dot, and a short hash
    of the name added when anything changed, so no name leaves the folder and no two names share a file."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem if stem == name else f"{stem or 'unnamed'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
