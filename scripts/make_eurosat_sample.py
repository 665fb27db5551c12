"""Rebuild datasets/eurosat-sample/: 50 real EuroSAT RGB tiles per class, seeded.

    python scripts/make_eurosat_sample.py ../shared/datasets/eurosat

Copies the original bytes (no re-encoding) and writes SHA256SUMS.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

PER_CLASS = 50
SEED = 2024


def main(source: Path, target: Path = Path(__file__).resolve().parents[1] / "datasets" / "eurosat-sample") -> None:
    sums = []
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(class_dir.glob("*.jpg"))
        rng = np.random.default_rng([SEED, len(class_dir.name)])
        chosen = sorted(files[i] for i in rng.choice(len(files), PER_CLASS, replace=False))
        (target / class_dir.name).mkdir(parents=True, exist_ok=True)
        for path in chosen:
            shutil.copyfile(path, target / class_dir.name / path.name)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            sums.append(f"{digest}  {class_dir.name}/{path.name}")
    (target / "SHA256SUMS").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
