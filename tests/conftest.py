import os
from pathlib import Path

import numpy as np
import pytest

from bench.datasets.eurosat import SAMPLE_DIR
from bench.images import read_rgb

# Real full datasets for the tests that need more than the repo ships: $BENCH_DATA_DIR, else ../shared/datasets.
SHARED_DATASETS = Path(os.environ.get("BENCH_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


@pytest.fixture(scope="session")
def tiles() -> list[np.ndarray]:
    """Four real EuroSAT tiles from the shipped sample, of different classes."""
    paths = [next(iter(sorted((SAMPLE_DIR / name).glob("*.jpg")))) for name in ("Forest", "Highway", "Residential", "SeaLake")]
    return [read_rgb(p)[0] for p in paths]


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"needs the full datasets (set BENCH_DATA_DIR; not found at {SHARED_DATASETS})")
    return SHARED_DATASETS


@pytest.fixture(autouse=True)
def _isolated_data_locations(tmp_path_factory, monkeypatch):
    """No test sees the user's download cache or $BENCH_DATA_DIR unless it asks (`shared_datasets`)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def labelled_folder(tmp_path_factory) -> str:
    """A `folder:` dataset of 12 real sample tiles per class, for tiny trainings.

    The shipped sample is all test-split tiles (nothing to train on); a folder
    has no manifest, so it gets its own seeded 70/10/20 split.
    """
    import shutil

    root = tmp_path_factory.mktemp("labelled")
    for class_dir in sorted(p for p in SAMPLE_DIR.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir()
        for path in sorted(class_dir.glob("*.jpg"))[:12]:
            shutil.copy(path, root / class_dir.name)
    return f"folder:{root}"


@pytest.fixture(autouse=True)
def _codec_registry_restored():
    """Codecs a test registers (plug-ins, codec files, test codecs) do not leak into the next test."""
    from bench import plugins
    from bench.codecs import CODECS

    saved = dict(CODECS)
    yield
    CODECS.clear()
    CODECS.update(saved)
    plugins._load_spec.cache_clear()
