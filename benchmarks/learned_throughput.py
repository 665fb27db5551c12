"""Tiles per second of each learned codec with committed checkpoints: batch 1 against batched, in one run.

    python benchmarks/learned_throughput.py [--images 64] [--batch 16] [--threads 1] [--repeat 3]

Encode and decode of real bitstreams (compress/decompress), on the shipped
EuroSAT sample, one torch thread by default (what each runner worker uses).
"""

from __future__ import annotations

import argparse
import json
import math
import time

from bench.codecs import CODECS
from bench.datasets import load_dataset
from bench.images import read_rgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each mode keeps its fastest")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    images = [read_rgb(r.path)[0] for r in load_dataset("eurosat").select("all", args.images)]
    report = {"images": len(images), "batch": args.batch, "threads": args.threads}
    for codec in CODECS.values():
        if codec.family != "learned" or not codec.available:
            continue
        quality = codec.qualities[len(codec.qualities) // 2]
        codec.decode(codec.encode(images[0], quality))  # load the model and build tables outside the timing

        def one_at_a_time():
            for image in images:
                codec.decode(codec.encode(image, quality))

        def batched():
            for first in range(0, len(images), args.batch):
                codec.decode_batch(codec.encode_batch(images[first : first + args.batch], quality))

        best = {"batch1": math.inf, "batched": math.inf}
        for _ in range(args.repeat):  # alternating rounds, fastest of each: the machine's other load is not the codec's
            for name, run in (("batch1", one_at_a_time), ("batched", batched)):
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
        report[codec.name] = {"quality": quality, "tiles_per_s_batch1": len(images) / best["batch1"],
                              f"tiles_per_s_batch{args.batch}": len(images) / best["batched"],
                              "speedup": best["batch1"] / best["batched"]}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
