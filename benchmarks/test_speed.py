"""Speed suites (pytest-benchmark): ``tox -e benchmark``; compare two commits with
``tox -e benchmark -- --benchmark-compare``. Not part of the default test run.
"""

import numpy as np
import pytest

from bench import metrics
from bench.codecs import CODECS
from bench.datasets.eurosat import SAMPLE_DIR
from bench.images import read_rgb
from bench.runner import SweepConfig, sweep

TILE = read_rgb(next(iter(sorted((SAMPLE_DIR / "Forest").glob("*.jpg")))))[0]
AVAILABLE = [c for c in CODECS.values() if c.available]


def _middle(codec):
    return codec.qualities[len(codec.qualities) // 2]


@pytest.mark.parametrize("codec", AVAILABLE, ids=lambda c: c.name)
def test_encode(benchmark, codec):
    benchmark(codec.encode, TILE, _middle(codec))


@pytest.mark.parametrize("codec", AVAILABLE, ids=lambda c: c.name)
def test_decode(benchmark, codec):
    data = codec.encode(TILE, _middle(codec))
    benchmark(codec.decode, data)


@pytest.mark.parametrize("name", ["psnr", "ssim"])
def test_metric(benchmark, name):
    noisy = np.clip(TILE.astype(int) + np.random.default_rng(0).integers(-5, 6, TILE.shape), 0, 255).astype(np.uint8)
    benchmark(getattr(metrics, name), TILE, noisy)


def test_runner_sweep(benchmark, tmp_path_factory):
    def run():
        out = tmp_path_factory.mktemp("sweep")
        sweep(SweepConfig(datasets=["eurosat"], codecs=["jpeg", "webp"], out=out, limit=20, jobs=1, progress=False))

    benchmark.pedantic(run, rounds=3, iterations=1)
