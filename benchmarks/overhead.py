"""Harness overhead: the runner against a bare loop doing the same work, in one run.

    python benchmarks/overhead.py [--limit N] [--codecs jpeg,webp] [--repeat 3]

The bare loop reads each image once and calls encode, decode, header_size
and the metrics directly; the runner does the same work through tasks, worker
processes, the SQLite store and the progress bar. The three are run in turn,
`--repeat` times, and each is represented by its fastest repeat (as `timeit`
does: slower repeats measure other load on the machine, not the code).
Prints (and writes as JSON with --json) every time, the overhead at --jobs 1
and the speed-up at 2.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import metrics
from bench.codecs import get_codec
from bench.datasets import load_dataset
from bench.images import read_rgb
from bench.runner import SweepConfig, sweep


def bare_loop(paths: list[Path], codec_names: list[str]) -> float:
    start = time.perf_counter()
    for path in paths:
        image, _ = read_rgb(path)
        for codec in map(get_codec, codec_names):
            for quality in codec.qualities:
                data = codec.encode(image, quality)
                decoded = codec.decode(data)
                codec.header_size(data)
                metrics.mse(image, decoded), metrics.psnr(image, decoded)
                metrics.ssim(image, decoded), metrics.ms_ssim(image, decoded)
    return time.perf_counter() - start


def runner(limit: int | None, codec_names: list[str], jobs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sweep(SweepConfig(datasets=["eurosat"], codecs=codec_names, out=Path(out), limit=limit, jobs=jobs,
                          progress=False, classify=False))  # the bare loop does not classify either  # fmt: skip
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="images of the shipped sample (default all 500)")
    parser.add_argument("--codecs", default="jpeg,webp")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of bare, jobs 1, jobs 2 (default 3)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    names = args.codecs.split(",")
    paths = [r.path for r in load_dataset("eurosat").select("all", args.limit)]
    bare_loop(paths[:5], names)  # warm imports and caches for both sides
    times: dict[str, list[float]] = {"bare_s": [], "runner_jobs1_s": [], "runner_jobs2_s": []}
    for _ in range(args.repeat):
        times["bare_s"].append(bare_loop(paths, names))
        times["runner_jobs1_s"].append(runner(args.limit, names, 1))
        times["runner_jobs2_s"].append(runner(args.limit, names, 2))
    best = {name: min(values) for name, values in times.items()}
    result = {"images": len(paths), "codecs": names, "repeats": times, **best}
    result["overhead_jobs1"] = best["runner_jobs1_s"] / best["bare_s"] - 1
    result["speedup_1_to_2"] = best["runner_jobs1_s"] / best["runner_jobs2_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
