"""The codec-adapted downstream protocol: the reference classifier fine-tuned on a codec's own decoded tiles.

What a deployment that trains on its own compressed archive gets (Bayerl et al. 2023), next to the fixed
protocol's one network for every codec. Per dataset and codec, the run's scored images (labelled, unseen by any
committed model) are split into `FOLDS` folds, stratified by class and seeded. For each fold, the reference
classifier is fine-tuned (`Classifier.fine_tuned`, a fixed budget) on the other folds' tiles decoded at every
quality of the codec's sweep, then predicts this fold's decoded tiles: every score is on images its model never
trained on, and the protocol needs no train split (the shipped sample has none).

Decoded tiles are made again from the codecs, which are deterministic: each stream's size is checked against the
stored row. Models are saved under ``RUN/adapted/`` with a card (settings, sha256) and reused when the command runs
again; predictions go to the ``predicted_adapted`` column. Each (codec, fold) is one job on the run's worker
processes (`bench.workers.IsolatingPool`, longest first): on the 500-tile sample, jpeg, webp and bpg adapt in 294 s
on one process and 179–186 s on two (bpg's two folds are most of it); a crash or hang costs one fold's predictions,
which the next run retries.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.assets import AssetError, load_torch
from bench.codecs import get_codec
from bench.datasets import load_dataset
from bench.executors import worker_init
from bench.files import file_part, sha256_of, write_text
from bench.images import read_rgb
from bench.store import DB_NAME, ResultStore
from bench.tasks import classifier, scores
from bench.workers import IsolatingPool, heartbeat

FOLDS = 2
DEFAULT_STEPS = 300
TRAIN_TILES = 4000
"""At most this many decoded (image, quality) tiles per fine-tune, drawn at random: memory stays bounded on 26,000 images."""
PREDICT_CHUNK = 512


@dataclasses.dataclass
class Adapted:
    """What adaptation did: predictions written, models trained or reused, streams whose size differed from the row,
    and the folds that failed (their rows keep no adapted prediction; running the command again retries them)."""

    rows: int = 0
    trained: int = 0
    reused: int = 0
    size_mismatches: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class FoldJob:
    """One fold of one codec: its adapted classifier (reused from `path` when its card matches `card`, else trained
    on `train_rows`, the other folds' tiles) and its predictions of `predict_rows`."""

    dataset: str
    data_dir: Path | None
    weights_dir: Path | None
    device: str  # where a learned codec's transforms run: as in the sweep, so re-encoded streams match its rows
    base: str  # the committed classifier's name
    codec: str
    card: dict
    path: Path
    train_rows: pd.DataFrame  # image, quality, bytes, label
    predict_rows: pd.DataFrame  # image, codec, quality, bytes
    pair_seconds: float = 0.0  # the codec's mean encode + decode time in the sweep

    @property
    def expected_seconds(self) -> float:
        """What its encoding and decoding should cost: the pool starts the longest jobs first."""
        return self.pair_seconds * (min(len(self.train_rows), TRAIN_TILES) + len(self.predict_rows))


@dataclasses.dataclass
class FoldResult:
    """What a `FoldJob` gave back (small: the job's rows stay with the parent)."""

    fold: str  # "<dataset> <codec> fold <k>"
    dataset: str
    predictions: dict = dataclasses.field(default_factory=dict)  # (image, codec, quality) → class
    trained: int = 0
    reused: int = 0
    size_mismatches: int = 0
    error: str | None = None


def folds(labels: pd.Series, seed: int) -> dict[str, int]:
    """Image id → fold, stratified: within each class (images sorted by id, then shuffled, seeded) round-robin."""
    rng = np.random.default_rng(seed)
    assigned = {}
    for _, images in sorted(labels.groupby(labels).groups.items()):
        for position, image in enumerate(rng.permutation(sorted(images))):
            assigned[image] = position % FOLDS
    return assigned


@functools.lru_cache(maxsize=2)
def _image_paths(dataset: str, data_dir: Path | None) -> dict[str, Path]:
    return {record.id: record.path for record in load_dataset(dataset, data_dir).records}


def _decoded(codec, job: FoldJob, rows: pd.DataFrame, result: FoldResult) -> list[np.ndarray]:
    """Each row's tile encoded and decoded again (codecs are deterministic; a stream of another size is counted)."""
    paths, originals, tiles = _image_paths(job.dataset, job.data_dir), {}, []
    for image, quality, size in rows[["image", "quality", "bytes"]].itertuples(index=False):
        if image not in originals:
            originals[image] = read_rgb(paths[image])[0]
        data = codec.encode(originals[image], quality)
        result.size_mismatches += pd.notna(size) and len(data) != int(size)
        tiles.append(codec.decode(data))
        heartbeat()  # the pool's time limit applies per encode/decode pair, as in the sweep
    return tiles


def _model_for(base, codec, job: FoldJob, result: FoldResult):
    """The fold's adapted classifier: reused from ``job.path`` when its card matches, else trained and saved."""
    import torch

    card_path = job.path.with_suffix(".json")
    if card_path.is_file():
        saved = json.loads(card_path.read_text())
        if {k: saved.get(k) for k in job.card} == job.card:
            try:
                state = load_torch(job.path, saved["sha256"])
                model = copy.deepcopy(base.model)
                model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
                result.reused += 1
                return dataclasses.replace(base, model=model.eval(), path=job.path, _remembered={})
            except AssetError:
                pass  # altered or truncated: train again
    rng = np.random.default_rng(job.card["seed"])
    chosen = job.train_rows.iloc[rng.permutation(len(job.train_rows))[:TRAIN_TILES]]
    tiles = np.stack(_decoded(codec, job, chosen, result))
    adapted = base.fine_tuned(tiles, list(chosen["label"]), steps=job.card["steps"], seed=job.card["seed"])
    job.path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in adapted.model.state_dict().items()}, job.path)
    card = {**job.card, "sha256": sha256_of(job.path), "train_tiles": len(chosen)}
    write_text(card_path, json.dumps(card, indent=1) + "\n")
    result.trained += 1
    return dataclasses.replace(adapted, path=job.path)


def _result(job: FoldJob, **values) -> FoldResult:
    return FoldResult(f"{job.dataset} {job.codec} fold {job.card['fold']}", job.dataset, **values)


def adapt_fold(job: FoldJob) -> FoldResult:
    """Run one `FoldJob` (in a pool worker or in-process)."""
    result = _result(job)
    base = classifier.load(job.base)
    codec = get_codec(job.codec, weights_dir=job.weights_dir, device=job.device)
    model = _model_for(base, codec, job, result)
    for start in range(0, len(job.predict_rows), PREDICT_CHUNK):
        chunk = job.predict_rows.iloc[start : start + PREDICT_CHUNK]
        predicted = model.predict(_decoded(codec, job, chunk, result))
        result.predictions.update(zip(zip(chunk["image"], chunk["codec"], chunk["quality"]), predicted))
    return result


def jobs_for(frame: pd.DataFrame, *, data_dir: Path | None, weights_dir: Path | None, run_dir: Path, steps: int,
             seed: int, device: str = "cpu") -> list[FoldJob]:  # fmt: skip
    """A `FoldJob` for every (dataset, codec, fold) with scored rows of `frame` that lack an adapted prediction."""
    scored = frame[frame["error"].isna() & scores.scored_mask(frame)]
    pending = scored[scored["predicted_adapted"].isna()]
    jobs = []
    for dataset_name, rows in pending.groupby("dataset", sort=False):
        dataset = load_dataset(dataset_name, data_dir)
        name = classifier.matching(dataset.name, dataset.classes)
        base = classifier.load(name) if name else None
        if base is None:
            continue
        of_dataset = scored[scored["dataset"] == dataset_name]
        fold_of = folds(of_dataset.drop_duplicates("image").set_index("image")["label"], seed)
        images_digest = hashlib.sha256("\n".join(sorted(fold_of)).encode()).hexdigest()[:16]
        base_sha256 = sha256_of(base.path)
        for codec_name in rows["codec"].unique():
            codec = get_codec(codec_name, weights_dir=weights_dir, device=device)
            of_codec = of_dataset[of_dataset["codec"] == codec_name]
            fold = of_codec["image"].map(fold_of)
            pair_seconds = float((of_codec["encode_s"] + of_codec["decode_s"]).mean())
            for k in range(FOLDS):
                todo = rows[(rows["codec"] == codec_name) & (rows["image"].map(fold_of) == k)]
                if todo.empty:
                    continue
                card = {"dataset": dataset_name, "codec": codec_name, "codec_version": codec.version, "fold": k,
                        "folds": FOLDS, "images": images_digest, "steps": steps, "seed": seed + k,
                        "base": base.path.name, "base_sha256": base_sha256}  # fmt: skip
                path = Path(run_dir) / "adapted" / file_part(dataset_name) / f"{codec_name}-fold{k}.pt"
                jobs.append(FoldJob(dataset_name, data_dir, weights_dir, device, name, codec_name, card, path,
                                    of_codec.loc[fold != k, ["image", "quality", "bytes", "label"]],
                                    todo[["image", "codec", "quality", "bytes"]], pair_seconds))  # fmt: skip
    return jobs


def _failed(job: FoldJob, reason: str) -> FoldResult:
    return _result(job, error=reason)


def adapt(run_dir: Path, *, data_dir: Path | None = None, weights_dir: Path | None = None, device: str = "cpu",
          steps: int = DEFAULT_STEPS, seed: int = 0, jobs: int = 1, seconds_per_pair: float = 120.0,
          progress: bool = False) -> Adapted:  # fmt: skip
    """Fill ``predicted_adapted`` for every scored row of the run in `run_dir` that lacks it; what was done.

    Each (codec, fold) runs on one of `jobs` isolated worker processes (`bench.workers.IsolatingPool`): a crash or
    a hang costs that fold's predictions, reported in `Adapted.failures`, not the run. The caller holds the run's
    lock (`bench.runner.sweep` does).
    """
    from tqdm import tqdm

    outcome = Adapted()
    with ResultStore(Path(run_dir) / DB_NAME) as store:
        fold_jobs = jobs_for(store.frame(), data_dir=data_dir, weights_dir=weights_dir, run_dir=run_dir,
                             steps=steps, seed=seed, device=device)  # fmt: skip
        if not fold_jobs:
            return outcome
        fold_jobs.sort(key=lambda job: job.expected_seconds, reverse=True)  # the longest last would idle the others
        pool = IsolatingPool(adapt_fold, max(1, min(jobs, len(fold_jobs))), split=lambda job: [job],
                             on_failure=_failed, time_limit=lambda job: seconds_per_pair, initializer=worker_init)  # fmt: skip
        for result in tqdm(pool.map_unordered(fold_jobs), total=len(fold_jobs), desc="adapt", disable=not progress):
            if result.error:
                outcome.failures.append(f"{result.fold}: {result.error}")
            outcome.rows += store.set_column(result.dataset, "predicted_adapted", result.predictions)
            outcome.trained += result.trained
            outcome.reused += result.reused
            outcome.size_mismatches += result.size_mismatches
    return outcome
