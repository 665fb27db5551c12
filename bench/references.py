"""Published curves drawn beside a run's own: CompressAI's results format (``--reference [DATASET=]FILE.json``).

A reference is a list of (bpp, PSNR[, MS-SSIM]) means someone else measured,
e.g. CompressAI's VTM or BPG results on Kodak. It joins a run's aggregate as
codec ``"<name> (external)"`` of family ``external``: RD plots draw it dotted
and BD tables compare it, without intervals (there are no per-image values to
resample) and it is never named the best codec at a rate (those verdicts rest
on this run's images). Every value must be a plausible number (`RANGES`): a broken
file is refused naming the value, never drawn or compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.metrics import PSNR_CAP_DB

FAMILY = "external"
KEYS = {"bpp": "bpp", "psnr-rgb": "psnr", "ms-ssim-rgb": "ms_ssim"}
"""CompressAI's result keys and the aggregate columns they fill."""

MAX_BPP = 64.0
"""The highest plausible published rate: 16-bit RGBA stored raw is 64 bits per pixel; above it, a file most likely
gives bits or bytes per image, and a log-rate axis would overflow drawing it."""
RANGES = {
    "bpp": (0.0, MAX_BPP, f"a rate in (0, {MAX_BPP:g}] bits per pixel"),
    "psnr": (0.0, PSNR_CAP_DB, f"a PSNR in (0, {PSNR_CAP_DB:g}] dB"),  # this suite caps its own PSNR there too
    "ms_ssim": (0.0, 1.0, "an MS-SSIM in (0, 1]"),
}
"""Each column's plausible values, (low, high]: a value outside is a broken file, not a curve to draw."""


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
    name, results = _document(path)
    columns = {column: _values(path, key, results[key], column) for key, column in KEYS.items() if key in results}
    if "bpp" not in columns or "psnr" not in columns or len({len(v) for v in columns.values()}) != 1 or not columns["bpp"]:
        raise ReferenceError(f"--reference {path}: needs non-empty lists 'bpp' and 'psnr-rgb' of equal length")
    if all(math.isnan(v) for v in columns["psnr"]):
        raise ReferenceError(f"--reference {path}: 'psnr-rgb' has no value (every one is null)")
    curve = pd.DataFrame(columns)
    return curve.assign(dataset=dataset, codec=f"{name} (external)", quality=range(len(curve)), family=FAMILY,
                        source=str(path))  # fmt: skip


def _document(path: Path) -> tuple[str, dict]:
    """The ``name`` and ``results`` of the CompressAI results file at `path`."""
    try:
        document = json.loads(path.read_text())
        name, results = document["name"], document["results"]
        if not isinstance(name, str) or not name.strip() or not isinstance(results, dict):
            raise TypeError("'name' must be a non-empty string and 'results' an object")
    except FileNotFoundError:
        raise ReferenceError(f"--reference {path}: no such file") from None
    except OSError as exc:
        raise ReferenceError(f"--reference {path}: unreadable ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ReferenceError(f"--reference {path}: not CompressAI's results format ({type(exc).__name__}: {exc}); "
                             'expected {"name", "results": {"bpp": [...], "psnr-rgb": [...]}}') from None  # fmt: skip
    return name, results


def _values(path: Path, key: str, values: object, column: str) -> list[float]:
    """`values` of `key` as floats, each a JSON number in `RANGES` of `column`; a null quality is NaN (a point the
    source has no value for: `bench.export` writes those), a null rate is refused (a point needs a rate)."""
    if not isinstance(values, list):
        raise ReferenceError(f"--reference {path}: {key!r} must be a list of numbers, not {json.dumps(values)[:40]}")
    low, high, what = RANGES[column]
    for index, value in enumerate(values):
        if value is None and column != "bpp":
            continue
        # bool is an int in Python and NaN fails every comparison; a huge int compares exactly, before float()
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and low < value <= high):
            raise ReferenceError(f"--reference {path}: {key}[{index}] = {json.dumps(value)[:40]} is not {what}")
    return [float("nan") if value is None else float(value) for value in values]


def load_all(specs: Sequence[str]) -> list[pd.DataFrame]:
    """The curve of each spec (`load`); ReferenceError also when two of them would merge into one curve."""
    curves = [load(spec) for spec in specs]
    _clashes(tuple(specs), curves)
    return curves


def _clashes(specs: tuple[str, ...], curves: list[pd.DataFrame]) -> None:
    """ReferenceError naming both files when two curves of one name would be drawn in one dataset (as one curve)."""
    seen: list[tuple[str, str, str | None]] = []  # (spec, codec, dataset) of the curves before
    for spec, curve in zip(specs, curves):
        codec, wanted = curve["codec"].iloc[0], curve["dataset"].iloc[0]
        for other, named, dataset in seen:
            if codec == named and (wanted is None or dataset is None or wanted == dataset):
                raise ReferenceError(f'--reference {spec}: the same "name" as --reference {other} ({codec!r} in '
                                     f"{wanted or dataset or 'every dataset'}), so the two would merge into one "
                                     'curve; give one of them another "name"')  # fmt: skip
        seen.append((spec, codec, wanted))


def join(summary: pd.DataFrame, specs: tuple[str, ...]) -> pd.DataFrame:
    """`summary` with the reference curves of `specs` added to their dataset (or to every dataset of the run)."""
    if not specs or summary.empty:
        return summary
    datasets = list(summary["dataset"].unique())
    curves = load_all(specs)
    measured, added = set(summary["codec"]), []
    for spec, curve in zip(specs, curves):
        wanted, codec = curve["dataset"].iloc[0], curve["codec"].iloc[0]
        if wanted is not None and wanted not in datasets:
            raise ReferenceError(f"--reference {spec}: dataset {wanted!r} is not in this run ({', '.join(datasets)})")
        if codec in measured:
            raise ReferenceError(f"--reference {spec}: {codec!r} is also a codec measured in this run; "
                                 'give the reference another "name"')  # fmt: skip
        added += [curve.assign(dataset=name) for name in ([wanted] if wanted else datasets)]
    return pd.concat([summary, *added], ignore_index=True)
