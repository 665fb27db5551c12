"""Harness overhead: the runner against a bare loop doing the same work, in one run.

    python benchmarks/overhead.py [--limit N] [--codecs jpeg,webp] [--repeat 3]

The bare loop reads each image once and calls encode, decode, header_size
and the metrics directly; the runner does the same work through tasks, worker
processes, the SQLite store and the progress bar. The three are run in turn,
`--repeat` times, and each is represented by its fastest repeat (as `timeit`
does: slower repeats measure other load on the machine, not the code).
Prints (and writes as JSON with --json) every time, the overhead at --jobs 1,
the speed-up at 2, the mean time of each call in the bare loop, and the
runner's wall time with no codec or metric work at all (`harness_only`).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench import metrics
from bench import runner as runner_module
from bench.codecs import get_codec
from bench.datasets import load_dataset
from bench.images import read_rgb
from bench.runner import SweepConfig, sweep


def bare_loop(paths: list[Path], codec_names: list[str]) -> tuple[float, dict[str, float]]:
    """Wall time of the work done with no runner, and the mean milliseconds of each call."""
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def timed(stage: str, function, *args):
        start = time.perf_counter()
        result = function(*args)
        seconds[stage] += time.perf_counter() - start  # ~0.1 µs per call: nothing next to a pair's milliseconds
        calls[stage] += 1
        return result

    start = time.perf_counter()
    for path in paths:
        image, _ = timed("read", read_rgb, path)
        for codec in map(get_codec, codec_names):
            for quality in codec.qualities:
                data = timed(f"{codec.name} encode", codec.encode, image, quality)
                decoded = timed(f"{codec.name} decode", codec.decode, data)
                timed("header_size", codec.header_size, data)
                for name in ("mse", "psnr", "ssim", "ms_ssim"):
                    timed(name, getattr(metrics, name), image, decoded)
    wall = time.perf_counter() - start
    return wall, {stage: 1000 * seconds[stage] / calls[stage] for stage in seconds}


def runner(limit: int | None, codec_names: list[str], jobs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sweep(SweepConfig(datasets=["eurosat"], codecs=codec_names, out=Path(out), limit=limit, jobs=jobs,
                          progress=False, classify=False))  # the bare loop does not classify either  # fmt: skip
        return time.perf_counter() - start


def harness_only(paths: list[Path], limit: int | None, codec_names: list[str]) -> float:
    """The runner at --jobs 1 with the measurement replaced by copies of one real row: what the harness costs alone.

    Unlike the difference of two noisy wall times, this is stable on a busy
    machine; it is the floor of the overhead (the harness's own work, with
    none of the codec and metric work it is wrapped around).
    """
    image, _ = read_rgb(paths[0])
    codec = get_codec(codec_names[0])
    values = runner_module.measure(codec.name, image, codec.qualities[0])

    def replay(task: runner_module.Task) -> list[dict]:
        return [
            {"dataset": task.dataset, "image": record.id, "label": record.label, "split": record.split,
             "height": image.shape[0], "width": image.shape[1], "codec": name, "quality": quality,
             "codec_version": get_codec(name).version, **values}
            for record in task.records for name, quality in task.pairs
        ]  # fmt: skip

    with mock.patch.object(runner_module, "evaluate", replay):  # forked workers inherit the patch
        return runner(limit, codec_names, 1)


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
        wall, ms_per_call = bare_loop(paths, names)
        times["bare_s"].append(wall)
        times["runner_jobs1_s"].append(runner(args.limit, names, 1))
        times["runner_jobs2_s"].append(runner(args.limit, names, 2))
    best = {name: min(values) for name, values in times.items()}
    pairs = len(paths) * sum(len(get_codec(name).qualities) for name in names)
    result = {"images": len(paths), "codecs": names, "pairs": pairs, "repeats": times, **best}
    result["bare_ms_per_call"] = ms_per_call
    result["harness_only_jobs1_s"] = harness_only(paths, args.limit, names)
    result["harness_share"] = result["harness_only_jobs1_s"] / best["bare_s"]
    result["overhead_jobs1"] = best["runner_jobs1_s"] / best["bare_s"] - 1
    result["speedup_1_to_2"] = best["runner_jobs1_s"] / best["runner_jobs2_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
