"""Rate–distortion plots (matplotlib): one line per codec, 95% CI error bars."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written headless; never open a window
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.files import write_bytes  # noqa: E402
from bench.metrics import METRICS  # noqa: E402

_MARKERS = "osD^vP*Xhp<>"
STYLES = {
    "jpeg": ("#1f77b4", "o"), "jpeg444": ("#6baed6", "s"), "jpeg2000": ("#ff7f0e", "D"), "webp": ("#2ca02c", "^"),
    "bpg": ("#d62728", "v"), "heic": ("#e7969c", "P"), "avif": ("#9467bd", "X"), "jpegxl": ("#8c564b", "h"),
    "cvae": ("#e377c2", "o"), "cvae-task": ("#7b4173", "*"), "bmshj2018-factorized": ("#17becf", "s"),
    "bmshj2018-hyperprior": ("#bcbd22", "D"), "mbt2018-mean": ("#393b79", "^"), "mbt2018": ("#637939", "v"),
    "cheng2020-anchor": ("#843c39", "P"), "cheng2020-attn": ("#636363", "X"),
}  # fmt: skip
"""A fixed colour and marker per built-in codec: the same in every plot of every report, no two alike."""
def axis_label(name: str) -> str:
    """A metric's label and unit from the registry; downstream accuracy has its own."""
    if name == "accuracy":
        return "top-1 accuracy (unseen images)"
    if name == "accuracy_adapted":
        return "top-1 accuracy, codec-adapted classifier (unseen images)"
    metric = METRICS[name]
    return f"{metric.label} ({metric.unit})" if metric.unit else metric.label
RATE_LABELS = {
    "bpp": "bits per pixel (whole stand-alone file, log scale)",
    "bpp_payload": "bits per pixel (payload: headers/containers excluded, log scale)",
}


def codec_style(name: str, family: str = "classical") -> dict:
    """The same colour and marker for a codec in every plot; learned codecs dashed, published (external) curves dotted.

    Codecs without a fixed style (plug-ins, references) get one derived from a stable hash of their name.
    """
    if name in STYLES:
        color, marker = STYLES[name]
    else:
        digest = zlib.crc32(name.encode())
        color, marker = plt.get_cmap("tab20")(digest % 20), _MARKERS[(digest // 20) % len(_MARKERS)]
    return {"color": color, "marker": marker, "linestyle": {"learned": "--", "external": ":"}.get(family, "-")}


def rd_figure(summary: pd.DataFrame, metric: str = "psnr", rate: str = "bpp", title: str = "") -> plt.Figure:
    """`metric` against `rate` for every codec in `summary` (one dataset's aggregate rows)."""
    figure, axes = plt.subplots(figsize=(7.0, 4.6), dpi=110)
    for codec, rows in summary.groupby("codec", sort=False):
        rows = rows.dropna(subset=[rate, metric]).sort_values(rate)
        if rows.empty:
            continue
        family = rows["family"].iloc[0] if "family" in rows else "classical"
        axes.errorbar(
            rows[rate], rows[metric], yerr=rows[f"{metric}_ci95"].fillna(0.0) if f"{metric}_ci95" in rows else None,
            label=codec, capsize=2, markersize=4, linewidth=1.4, **codec_style(codec, family),
        )  # fmt: skip
    axes.set_xscale("log")  # learned codecs live at 0.1–0.5 bpp, classical ones up to 9: log rate shows both
    axes.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20]))
    axes.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # 1-2-5 labels only: minor ones overlap
    axes.set_xlabel(RATE_LABELS[rate])
    axes.set_ylabel(axis_label(metric))
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.12, top=0.92)  # fixed: tight_layout cost 0.14 s a figure
    return figure


def save_png(figure: plt.Figure, path: Path) -> bytes:
    """Write `figure` to `path` as PNG and return the bytes (for embedding)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    data = buffer.getvalue()
    write_bytes(path, data)
    return data


def confusion_figure(labels: list[str], predicted: list[str], title: str) -> plt.Figure:
    """Row-normalised confusion matrix (true class in rows)."""
    from sklearn.metrics import confusion_matrix

    classes = sorted(set(labels) | set(predicted))
    matrix = confusion_matrix(labels, predicted, labels=classes, normalize="true")
    figure, axes = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(classes)), classes, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    return figure


def per_image_bd_figure(per_image: pd.DataFrame, anchor: str, title: str) -> plt.Figure:
    """Each codec's per-image BD-rates against `anchor`: a box per codec with every image as a dot."""
    codecs = list(dict.fromkeys(per_image["codec"]))
    figure, axes = plt.subplots(figsize=(7.0, 1.6 + 0.5 * len(codecs)), dpi=110)
    for position, codec in enumerate(codecs):
        values = per_image.loc[per_image["codec"] == codec, "bd_rate_pct"].to_numpy()
        axes.boxplot(values, positions=[position], orientation="horizontal", widths=0.6, showfliers=False)
        jitter = (np.arange(len(values)) % 5 - 2) * 0.06
        axes.scatter(values, position + jitter, s=10, alpha=0.7, color=codec_style(codec)["color"], zorder=3)
    axes.axvline(0, color="0.4", linewidth=0.8)
    axes.set_yticks(range(len(codecs)), codecs)
    axes.set_xlabel(f"BD-rate (PSNR) against {anchor}, per image (%; negative = fewer bits)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
