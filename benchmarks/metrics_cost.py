"""Per-pair cost of the fused metrics (PSNR + SSIM + MS-SSIM), one thread, the original prepared once per image.

    python benchmarks/metrics_cost.py [--kodak ../shared/datasets/kodak/kodim05.png] [--rounds 5]

Five JPEG qualities of one Kodak image and of one 64×64 crop of it share their
prepared original, as in a sweep. Prints the best of `--rounds` rounds, in ms
per pair, as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import metrics
from bench.codecs import get_codec
from bench.images import read_rgb

DEFAULT_KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak" / "kodim05.png"


def per_pair_ms(original: np.ndarray, rounds: int) -> float:
    codec = get_codec("jpeg")
    decoded = [codec.decode(codec.encode(original, quality)) for quality in (10, 30, 50, 70, 90)]
    best = float("inf")
    for _ in range(rounds):
        reference = metrics.prepare(original)
        start = time.perf_counter()
        for version in decoded:
            metrics.measure(reference, version)
        best = min(best, (time.perf_counter() - start) / len(decoded))
    return 1000 * best


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    image, _ = read_rgb(args.kodak)
    print(json.dumps({"kodak_ms_per_pair": round(per_pair_ms(image, args.rounds), 3),
                      "tile_ms_per_pair": round(per_pair_ms(np.ascontiguousarray(image[:64, :64]), args.rounds), 4)}))


if __name__ == "__main__":
    main()
