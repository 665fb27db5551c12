"""Training throughput of a learned codec on this CPU: contiguous vs channels_last, batch sizes, alternating rounds.

    python benchmarks/training_speed.py [--arch bmshj2018-hyperprior] [--N 64] [--M 192] [--batches 16,32]

One torch thread (what a background training gets here), random 64×64 tiles,
Adam and the rate–distortion loss of `bench.train`. Prints images per second,
best of two alternating rounds, per layout and batch size.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.codecs.learned import ARCHITECTURES
from bench.train import rd_loss


def images_per_second(arch: str, config: dict, batch: int, channels_last: bool, steps: int = 6) -> float:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = ARCHITECTURES[arch].build(config).to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(batch, 3, 64, 64).contiguous(memory_format=layout)
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        loss, _, _ = rd_loss(model(x), x, 0.025)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bmshj2018-hyperprior")
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--M", type=int, default=192)
    parser.add_argument("--batches", default="16,32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = {"channels": args.N, "latent_channels": args.M} if args.arch.startswith("cvae") else {"N": args.N, "M": args.M}
    best: dict[str, float] = {}
    for _ in range(2):
        for batch in map(int, args.batches.split(",")):
            for channels_last in (False, True):
                key = f"batch {batch}, {'channels_last' if channels_last else 'contiguous'}"
                best[key] = max(best.get(key, 0.0), images_per_second(args.arch, config, batch, channels_last))
    print(json.dumps({"arch": args.arch, "config": config, "images_per_second": {k: round(v, 1) for k, v in best.items()}}, indent=1))


if __name__ == "__main__":
    main()
