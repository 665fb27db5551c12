"""Rebuild datasets/eurosat-sample/: 50 real EuroSAT RGB tiles per class, all from the committed test split.

    python scripts/make_eurosat_sample.py ../shared/datasets/eurosat

Drawn only from the tiles that `datasets/manifests/eurosat-seed0.csv` puts in the test split, so no
committed model (classifier, learned codecs: all trained on its train split and selected on its val
split) has seen any of them, and the default run's scores are all on unseen images. Copies the original
bytes (no re-encoding) and writes SHA256SUMS.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np

from bench.datasets.base import DEFAULT_SEED, manifest_path, read_manifest

PER_CLASS = 50
SEED = 2024


def main(source: Path, target: Path = Path(__file__).resolve().parents[1] / "datasets" / "eurosat-sample") -> None:
    test = sorted(id_ for id_, split in read_manifest(manifest_path("eurosat", DEFAULT_SEED)).items() if split == "test")
    sums = []
    for class_dir in sorted(p for p in target.iterdir() if p.is_dir()):
        shutil.rmtree(class_dir)
    for name in sorted({id_.split("/")[0] for id_ in test}):
        candidates = [id_ for id_ in test if id_.startswith(f"{name}/")]
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        chosen = sorted(candidates[i] for i in rng.choice(len(candidates), PER_CLASS, replace=False))
        (target / name).mkdir(parents=True, exist_ok=True)
        for id_ in chosen:
            shutil.copyfile(source / id_, target / id_)
            sums.append(f"{hashlib.sha256((source / id_).read_bytes()).hexdigest()}  {id_}")
    (target / "SHA256SUMS").write_text("\n".join(sums) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
