"""Harness overhead: the runner against a bare loop doing the same work, in one run.

    python benchmarks/overhead.py [--limit N] [--codecs jpeg,webp] [--repeat 3]

The bare loop reads each image once and calls encode, decode, header_size
and the metrics directly; the runner does the same work through tasks, worker
processes, the SQLite store and the progress bar. The three are run in turn,
`--repeat` times, and each is represented by its fastest repeat (as `timeit`
does: slower repeats measure other load on the machine, not the code).

Two clocks are read: wall time, and CPU time (user + system, of this process
and its worker processes). On a shared machine the wall time of the same work
varies by ±10% from minute to minute; CPU time excludes the time the machine
gave to others, so its ratio is the steadier measure of what the harness adds.

Prints (and writes as JSON with --json) every time, the overhead at --jobs 1
by both clocks, the speed-up at 2, the mean time of each call in the bare
loop, and the runner's wall time with no codec or metric work at all
(`harness_only`).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import resource
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench import measure, metrics
from bench import runner as runner_module
from bench.codecs import get_codec
from bench.datasets import load_dataset
from bench.images import read_rgb
from bench.runner import SweepConfig, sweep


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def clocked(function, *args) -> tuple[dict[str, float], object]:
    """Wall and CPU seconds of ``function(*args)``, and its result."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}, result


def bare_loop(paths: list[Path], codec_names: list[str]) -> dict[str, float]:
    """Do the work with no runner; the mean milliseconds of each call."""
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def timed(stage: str, function, *args):
        start = time.perf_counter()
        result = function(*args)
        seconds[stage] += time.perf_counter() - start  # ~0.1 µs per call: nothing next to a pair's milliseconds
        calls[stage] += 1
        return result

    for path in paths:
        image, _ = timed("read", read_rgb, path)
        reference = timed("prepare", metrics.prepare, image)
        for codec in map(get_codec, codec_names):
            for quality in codec.qualities:
                data = timed(f"{codec.name} encode", codec.encode, image, quality)
                decoded = timed(f"{codec.name} decode", codec.decode, data)
                timed("header_size", codec.header_size, data)
                timed("metrics", metrics.measure, reference, decoded)
    return {stage: 1000 * seconds[stage] / calls[stage] for stage in seconds}


def runner(limit: int | None, codec_names: list[str], jobs: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        sweep(SweepConfig(datasets=["eurosat"], codecs=codec_names, out=Path(out), limit=limit, jobs=jobs,
                          progress=False, classify=False))  # the bare loop does not classify either  # fmt: skip


def harness_only(paths: list[Path], limit: int | None, codec_names: list[str]) -> float:
    """The runner at --jobs 1 with the measurement replaced by copies of one real row: what the harness costs alone.

    Unlike the difference of two noisy wall times, this is stable on a busy
    machine; it is the floor of the overhead (the harness's own work, with
    none of the codec and metric work it is wrapped around).
    """
    image, _ = read_rgb(paths[0])
    codec = get_codec(codec_names[0])
    values = measure.measure(codec, metrics.prepare(image), codec.qualities[0]).values

    def replay(task: measure.Task) -> list[dict]:
        return [
            {**measure.base_row(task, record), "height": image.shape[0], "width": image.shape[1], "codec": name,
             "quality": quality, "codec_version": get_codec(name).version, **values}
            for record in task.records for name, quality in task.pairs
        ]  # fmt: skip

    with mock.patch.object(runner_module, "evaluate", replay):  # forked workers inherit the patch
        return clocked(runner, limit, codec_names, 1)[0]["wall_s"]


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
    runs = {
        "bare": functools.partial(bare_loop, paths, names),
        "runner_jobs1": functools.partial(runner, args.limit, names, 1),
        "runner_jobs2": functools.partial(runner, args.limit, names, 2),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            clocks, value = clocked(run)
            rounds[name].append(clocks)
            if name == "bare":
                ms_per_call = value
    best = {name: {clock: min(r[clock] for r in values) for clock in ("wall_s", "cpu_s")} for name, values in rounds.items()}
    pairs = len(paths) * sum(len(get_codec(name).qualities) for name in names)
    result = {"images": len(paths), "codecs": names, "pairs": pairs, "rounds": rounds, "best": best}
    result["bare_ms_per_call"] = ms_per_call
    result["harness_only_jobs1_s"] = harness_only(paths, args.limit, names)
    result["harness_share"] = result["harness_only_jobs1_s"] / best["bare"]["wall_s"]
    result["overhead_jobs1"] = best["runner_jobs1"]["wall_s"] / best["bare"]["wall_s"] - 1
    result["cpu_overhead_jobs1"] = best["runner_jobs1"]["cpu_s"] / best["bare"]["cpu_s"] - 1
    result["speedup_1_to_2"] = best["runner_jobs1"]["wall_s"] / best["runner_jobs2"]["wall_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
