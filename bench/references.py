"""Published curves drawn beside a run's own: CompressAI's results format (``--reference [DATASET=]FILE.json``).

A reference is a list of (bpp, PSNR[, MS-SSIM]) means someone else measured,
e.g. CompressAI's VTM or BPG results on Kodak. It joins a run's aggregate as
codec ``"<name> (external)"`` of family ``external``: RD plots draw it dotted
and BD tables compare it, without intervals (there are no per-image values to
resample) and it is never named the best codec at a rate (those verdicts rest
on this run's images).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

FAMILY = "external"
KEYS = {"bpp": "bpp", "psnr-rgb": "psnr", "ms-ssim-rgb": "ms_ssim"}
"""CompressAI's result keys and the aggregate columns they fill."""


class ReferenceError(ValueError):
    """A reference file that is missing or not in CompressAI's results format; the message names it."""


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """``kodak=vtm.json`` → ("kodak", vtm.json); ``vtm.json`` → (None: every dataset of the run, vtm.json)."""
    dataset, _, path = spec.rpartition("=")
    if not path.strip():  # Path("") would be the current folder
        raise ReferenceError(f"--reference {spec}: no file named")
    return (dataset or None), Path(path)


def load(spec: str) -> pd.DataFrame:
    """The curve of one ``[DATASET=]FILE.json`` as aggregate rows (``dataset`` None: every dataset)."""
    dataset, path = parse_spec(spec)
    try:
        document = json.loads(Path(path).read_text())
        name, results = document["name"], document["results"]
        columns = {column: [float("nan") if v is None else float(v) for v in results[key]]
                   for key, column in KEYS.items() if key in results}  # fmt: skip
    except FileNotFoundError:
        raise ReferenceError(f"--reference {path}: no such file") from None
    except OSError as exc:
        raise ReferenceError(f"--reference {path}: unreadable ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ReferenceError(f"--reference {path}: not CompressAI's results format ({type(exc).__name__}: {exc}); "
                             'expected {"name", "results": {"bpp": [...], "psnr-rgb": [...]}}') from None  # fmt: skip
    if "bpp" not in columns or "psnr" not in columns or len({len(v) for v in columns.values()}) != 1 or not columns["bpp"]:
        raise ReferenceError(f"--reference {path}: needs non-empty lists 'bpp' and 'psnr-rgb' of equal length")
    if not all(math.isfinite(v) and v > 0 for v in columns["bpp"]):
        raise ReferenceError(f"--reference {path}: every bpp must be a positive number")
    curve = pd.DataFrame(columns)
    return curve.assign(dataset=dataset, codec=f"{name} (external)", quality=range(len(curve)), family=FAMILY,
                        source=str(path))  # fmt: skip


def join(summary: pd.DataFrame, specs: tuple[str, ...]) -> pd.DataFrame:
    """`summary` with the reference curves of `specs` added to their dataset (or to every dataset of the run)."""
    if not specs or summary.empty:
        return summary
    datasets = list(summary["dataset"].unique())
    added = []
    for spec in specs:
        curve = load(spec)
        wanted = curve["dataset"].iloc[0]
        if wanted is not None and wanted not in datasets:
            raise ReferenceError(f"--reference {spec}: dataset {wanted!r} is not in this run ({', '.join(datasets)})")
        added += [curve.assign(dataset=name) for name in ([wanted] if wanted else datasets)]
    return pd.concat([summary, *added], ignore_index=True)
