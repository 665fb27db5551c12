"""Downstream scores of a codec point: accuracy, weighted F1 and the reference paper's RDAI."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

RDAI_WEIGHT = 0.333


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How decoded images are classified: which results column holds the predictions, how its scores are named."""

    name: str
    predicted: str  # results column of the predictions
    suffix: str  # of its aggregate columns: accuracy{suffix}, f1_weighted{suffix}, rdai{suffix}, n_scored{suffix}
    meaning: str  # one sentence for reports


PROTOCOLS = (
    Protocol("fixed", "predicted", "", "one reference classifier for every codec and rate, as MPEG's video coding "
             "for machines evaluates a fixed task network on decoded images"),
    Protocol("adapted", "predicted_adapted", "_adapted", "the reference classifier fine-tuned briefly on each codec's "
             "own decoded tiles across its sweep, cross-fitted: each image is scored by the model trained on the other "
             "fold of images (`bench/tasks/adapt.py`)"),
)  # fmt: skip
"""The downstream protocols; `fixed` is always measured, `adapted` with ``run --protocol adapted`` (or ``both``)."""


def unseen(rows: pd.DataFrame) -> pd.Series:
    """Which result rows are of images no committed model trained or was selected on; rows of an older bench that
    did not record it (NULL) are not known to be unseen, so they are not."""
    if "seen" not in rows:
        return pd.Series(True, index=rows.index)
    return rows["seen"].eq(0).fillna(False).astype(bool)


def scored_mask(rows: pd.DataFrame, predicted: str = "predicted") -> pd.Series:
    """Which result rows an accuracy counts: classified in column `predicted`, labelled, and not seen by any
    committed model."""
    if predicted not in rows:
        return pd.Series(False, index=rows.index)
    return unseen(rows) & rows[predicted].notna() & rows["label"].notna()


def accuracy(labels: Sequence[str], predicted: Sequence[str]) -> float:
    """Top-1 accuracy: the fraction of `predicted` equal to `labels`."""
    if len(labels) != len(predicted) or not labels:
        raise ValueError("accuracy needs two equally long, non-empty sequences")
    return sum(a == b for a, b in zip(labels, predicted)) / len(labels)


def f1_weighted(labels: Sequence[str], predicted: Sequence[str]) -> float:
    """F1 per class averaged with weights proportional to class support (scikit-learn's "weighted")."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(labels), list(predicted), average="weighted", zero_division=0))


def rdai(bpp: float, psnr: float, f1: float) -> float:
    """Rate–Distortion–Accuracy Index exactly as the reference paper defines it.

    ``RDAI = 0.333*(1 - BPP/10) + 0.333*(PSNR/60) + 0.333*F1_weighted``. Its
    rate term moves by only 0.0333 per bit per pixel, so below 1 bpp the index
    is driven almost entirely by PSNR and F1.
    """
    return RDAI_WEIGHT * (1 - bpp / 10) + RDAI_WEIGHT * (psnr / 60) + RDAI_WEIGHT * f1
