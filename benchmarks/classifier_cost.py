"""Per-tile cost of the reference classifier's prediction, one thread: one view unfolded (before), the card's views.

    python benchmarks/classifier_cost.py [--rounds 5] [--batch 256]

Each round times, alternately, one batch of 64×64 tiles through the network as trained (batch norms unfolded,
one view) and through `Classifier.predict` (batch norms folded, the card's test-time views). Prints the best of
`--rounds`, in ms per tile, and their ratio, as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bench.tasks import classifier


def _best_ms(predict, tiles, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        predict(tiles)
        best = min(best, time.perf_counter() - started)
    return 1e3 * best / len(tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = classifier.load("eurosat")
    card = json.loads(loaded.path.with_suffix(".json").read_text())
    unfolded = classifier.build(len(loaded.classes), card["network"])
    state = torch.load(loaded.path, map_location="cpu", weights_only=True)["state_dict"]
    unfolded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    unfolded.eval()

    def one_view(tiles):
        with torch.no_grad():
            return unfolded(loaded.inputs(tiles)).argmax(1)

    tiles = list(np.random.default_rng(0).integers(0, 256, (args.batch, 64, 64, 3), dtype=np.uint8))
    before, after = float("inf"), float("inf")
    for _ in range(args.rounds):  # alternate, so that load changes hit both alike
        before = min(before, _best_ms(one_view, tiles, 1))
        after = min(after, _best_ms(loaded.predict, tiles, 1))
    print(json.dumps({"views": loaded.views, "one_view_unfolded_ms": round(before, 3),
                      "predict_ms": round(after, 3), "ratio": round(after / before, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
