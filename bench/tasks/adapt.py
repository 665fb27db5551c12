"""The codec-adapted downstream protocol: the reference classifier fine-tuned on a codec's own decoded tiles.

What a deployment that trains on its own compressed archive gets (Bayerl et al. 2023), next to the fixed
protocol's one network for every codec. Per dataset and codec, the run's scored images (labelled, unseen by any
committed model) are split into `FOLDS` folds, stratified by class and seeded. For each fold, the reference
classifier is fine-tuned (`Classifier.fine_tuned`, a fixed budget) on the other folds' tiles decoded at every
quality of the codec's sweep, then predicts this fold's decoded tiles: every score is on images its model never
trained on, and the protocol needs no train split (the shipped sample has none).

Decoded tiles are made again from the codecs, which are deterministic: each stream's size is checked against the
stored row. Models are saved under ``RUN/adapted/`` with a card (settings, sha256) and reused when the command runs
again; predictions go to the ``predicted_adapted`` column.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.assets import AssetError, load_torch
from bench.codecs import get_codec
from bench.datasets import load_dataset
from bench.files import file_part, sha256_of, write_text
from bench.images import read_rgb
from bench.store import DB_NAME, ResultStore
from bench.tasks import classifier, scores

FOLDS = 2
DEFAULT_STEPS = 300
TRAIN_TILES = 4000
"""At most this many decoded (image, quality) tiles per fine-tune, drawn at random: memory stays bounded on 26,000 images."""
PREDICT_CHUNK = 512


@dataclasses.dataclass
class Adapted:
    """What adaptation did: predictions written, models trained or reused, streams whose size differed from the row."""

    rows: int = 0
    trained: int = 0
    reused: int = 0
    size_mismatches: int = 0


def folds(labels: pd.Series, seed: int) -> dict[str, int]:
    """Image id → fold, stratified: within each class (images sorted by id, then shuffled, seeded) round-robin."""
    rng = np.random.default_rng(seed)
    assigned = {}
    for _, images in sorted(labels.groupby(labels).groups.items()):
        for position, image in enumerate(rng.permutation(sorted(images))):
            assigned[image] = position % FOLDS
    return assigned


def _decoded(codec, originals: dict[str, np.ndarray], rows: pd.DataFrame, mismatches: list) -> list[np.ndarray]:
    tiles = []
    for image, quality, size in rows[["image", "quality", "bytes"]].itertuples(index=False):
        data = codec.encode(originals[image], quality)
        if pd.notna(size) and len(data) != int(size):
            mismatches.append((image, quality))
        tiles.append(codec.decode(data))
    return tiles


def _model_for(base, card: dict, path: Path, train_rows: pd.DataFrame, codec, originals, mismatches, outcome: Adapted):
    """The fold's adapted classifier: reused from `path` when its card matches `card`, else trained and saved."""
    import torch

    card_path = path.with_suffix(".json")
    if card_path.is_file():
        saved = json.loads(card_path.read_text())
        if {k: saved.get(k) for k in card} == card:
            try:
                state = load_torch(path, saved["sha256"])
                model = copy.deepcopy(base.model)
                model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
                outcome.reused += 1
                return dataclasses.replace(base, model=model.eval(), path=path, _remembered={})
            except AssetError:
                pass  # altered or truncated: train again
    rng = np.random.default_rng(card["seed"])
    chosen = train_rows.iloc[rng.permutation(len(train_rows))[:TRAIN_TILES]]
    tiles = np.stack(_decoded(codec, originals, chosen, mismatches))
    adapted = base.fine_tuned(tiles, list(chosen["label"]), steps=card["steps"], seed=card["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in adapted.model.state_dict().items()}, path)
    write_text(card_path, json.dumps({**card, "sha256": sha256_of(path), "train_tiles": len(chosen)}, indent=1) + "\n")
    outcome.trained += 1
    return dataclasses.replace(adapted, path=path)


def adapt(run_dir: Path, *, data_dir: Path | None = None, weights_dir: Path | None = None, steps: int = DEFAULT_STEPS,
          seed: int = 0, progress: bool = False) -> Adapted:  # fmt: skip
    """Fill ``predicted_adapted`` for every scored row of the run in `run_dir` that lacks it; what was done.

    The caller holds the run's lock (`bench.runner.sweep` does).
    """
    from tqdm import tqdm

    outcome = Adapted()
    with ResultStore(Path(run_dir) / DB_NAME) as store:
        frame = store.frame()
        scored = frame[frame["error"].isna() & scores.scored_mask(frame)]
        pending = scored[scored["predicted_adapted"].isna()]
        for dataset_name, rows in pending.groupby("dataset", sort=False):
            dataset = load_dataset(dataset_name, data_dir)
            name = classifier.matching(dataset.name, dataset.classes)
            base = classifier.load(name) if name else None
            if base is None:
                continue
            of_dataset = scored[scored["dataset"] == dataset_name]
            fold_of = folds(of_dataset.drop_duplicates("image").set_index("image")["label"], seed)
            paths = {record.id: record.path for record in dataset.records}
            originals = {image: read_rgb(paths[image])[0] for image in of_dataset["image"].unique()}
            images_digest = hashlib.sha256("\n".join(sorted(fold_of)).encode()).hexdigest()[:16]
            base_sha256 = sha256_of(base.path)
            for codec_name in tqdm(list(rows["codec"].unique()), desc=f"adapt {dataset_name}", disable=not progress):
                codec = get_codec(codec_name, weights_dir=weights_dir)
                of_codec = of_dataset[of_dataset["codec"] == codec_name]
                fold = of_codec["image"].map(fold_of)
                mismatches: list = []
                for k in range(FOLDS):
                    todo = rows[(rows["codec"] == codec_name) & (rows["image"].map(fold_of) == k)]
                    if todo.empty:
                        continue
                    card = {"dataset": dataset_name, "codec": codec_name, "codec_version": codec.version, "fold": k,
                            "folds": FOLDS, "images": images_digest, "steps": steps, "seed": seed + k,
                            "base": base.path.name, "base_sha256": base_sha256}  # fmt: skip
                    path = Path(run_dir) / "adapted" / file_part(dataset_name) / f"{codec_name}-fold{k}.pt"
                    model = _model_for(base, card, path, of_codec[fold != k], codec, originals, mismatches, outcome)
                    for start in range(0, len(todo), PREDICT_CHUNK):
                        chunk = todo.iloc[start : start + PREDICT_CHUNK]
                        predicted = model.predict(_decoded(codec, originals, chunk, mismatches))
                        keys = zip(chunk["image"], chunk["codec"], chunk["quality"])
                        outcome.rows += store.set_column(dataset_name, "predicted_adapted", dict(zip(keys, predicted)))
                outcome.size_mismatches += len(mismatches)
    return outcome
