"""The sweep: datasets × images × codecs × qualities, resumable, on a process pool.

Work is cut into one task per image (all its pending codec × quality pairs),
so a worker reads and decodes each image once and only a path crosses the
process boundary. Workers are isolated (`bench.workers`): a codec that
crashes its process or hangs costs one error row, not the sweep. The parent
stores each task's rows in one transaction as soon as it finishes: a killed
sweep loses only the tasks in flight, and the same command started again
computes only the rows that are missing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import fcntl
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bench import __version__, metrics
from bench.codecs import get_codec
from bench.datasets import DEFAULT_SEED, ImageRecord, load_dataset
from bench.images import ImageReadError, read_rgb
from bench.store import DB_NAME, ResultStore
from bench.tasks import classifier
from bench.workers import IsolatingPool


class RunLocked(RuntimeError):
    """Another sweep is writing to the same run directory."""


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What to sweep and where to write it."""

    datasets: Sequence[str]
    codecs: Sequence[str]
    out: Path
    qualities: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    split: str = "all"
    limit: int | None = None
    seed: int = DEFAULT_SEED
    jobs: int = 0  # 0: all cores
    data_dir: Path | None = None
    seconds_per_pair: float = 120.0  # time limit of one encode+decode+metrics; a task gets this × its pairs
    scheduler: str | None = None  # address of a Dask scheduler (tcp://HOST:PORT); None: the local pool
    progress: bool = True
    classify: bool = True  # downstream accuracy on labelled datasets that have a committed classifier


@dataclasses.dataclass(frozen=True)
class Task:
    """Images and the (codec, quality) pairs still to measure on each of them.

    Classical codecs get one task per image with all its pairs (the image is
    read once); learned codecs get one task per (codec, quality) and up to
    `LEARNED_BATCH` images, which go through the network together.
    """

    dataset: str
    records: tuple[ImageRecord, ...]
    pairs: tuple[tuple[str, float], ...]
    classify: bool = False  # run the dataset's reference classifier on originals and decoded images


@dataclasses.dataclass
class SweepSummary:
    """What a sweep did."""

    out: Path
    rows_written: int = 0
    rows_already_done: int = 0
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Failed rows by what failed: image (and codec, unless the image itself was unreadable) and error."""
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


LEARNED_BATCH = 16


Predict = Callable[[list[np.ndarray]], list[str]] | None
_DECODED = "_decoded"


def measure(codec_name: str, image: np.ndarray, quality: float, predict: Predict = None) -> dict:
    """Encode and decode `image` once; rate, distortion, timing (and predicted class) of the result."""
    codec = get_codec(codec_name)
    stage = "encode"
    try:
        start = time.perf_counter()
        data = codec.encode(image, quality)
        encoded = time.perf_counter()
        stage = "decode"
        decoded = codec.decode(data)
        decode_s = time.perf_counter() - encoded
        return _row(codec, image, data, decoded, encoded - start, decode_s, predict)
    except Exception as exc:  # any codec or metric failure becomes an error row, the sweep goes on
        return {"error": f"{stage}: {type(exc).__name__}: {exc}"}


def measure_batch(codec_name: str, images: list[np.ndarray], quality: float, predict: Predict = None) -> list[dict]:
    """`measure` for equal-size images through the codec's batch path; times are per-image shares.

    Falls back to one image at a time when the batch fails, so one bad image
    cannot cost the others their rows.
    """
    codec = get_codec(codec_name)
    try:
        start = time.perf_counter()
        streams = codec.encode_batch(images, quality)
        encoded = time.perf_counter()
        decoded = codec.decode_batch(streams)
        share_encode, share_decode = (encoded - start) / len(images), (time.perf_counter() - encoded) / len(images)
        return [_row(codec, i, s, d, share_encode, share_decode, predict) for i, s, d in zip(images, streams, decoded)]
    except Exception:
        return [measure(codec_name, image, quality, predict) for image in images]


def _row(codec, image, data: bytes, decoded, encode_s: float, decode_s: float, predict: Predict) -> dict:
    stage = "decode"
    try:
        if decoded.shape != image.shape or decoded.dtype != np.uint8:
            raise ValueError(f"decoded to {decoded.shape} {decoded.dtype}, expected {image.shape} uint8")
        stage = "header_size"
        header = codec.header_size(data)
        stage = "metrics"
        row = {
            "bytes": len(data),
            "header_bytes": header,
            "bpp": metrics.bpp(len(data), image.shape),
            "bpp_payload": metrics.bpp(len(data) - header, image.shape),
            "mse": metrics.mse(image, decoded),
            "psnr": metrics.psnr(image, decoded),
            "ssim": metrics.ssim(image, decoded),
            "ms_ssim": metrics.ms_ssim(image, decoded),
            "encode_s": encode_s,
            "decode_s": decode_s,
        }
        if predict is not None:
            row[_DECODED] = decoded  # classified per task in one batch, then dropped (see `evaluate`)
        return row
    except Exception as exc:  # any codec or metric failure becomes an error row, the sweep goes on
        return {"error": f"{stage}: {type(exc).__name__}: {exc}"}


def _base(task: Task, record: ImageRecord) -> dict:
    return {"dataset": task.dataset, "image": record.id, "label": record.label, "split": record.split}


def evaluate(task: Task) -> list[dict]:
    """Rows for every image × pair of `task` (error rows when an image cannot be read)."""
    rows, same_size = [], {}
    for record in task.records:
        base = _base(task, record)
        try:
            image, note = read_rgb(record.path)
        except ImageReadError as exc:
            rows += [{**base, "codec": c, "quality": q, "error": f"read: {exc}"} for c, q in task.pairs]
            continue
        base.update(height=image.shape[0], width=image.shape[1], note=note or None)
        same_size.setdefault(image.shape, []).append((base, image))
    model = classifier.load(task.dataset) if task.classify and same_size else None
    predict = model.predict if model is not None else None
    if model is not None:
        for group in same_size.values():
            labels = model.predict_remembered([base["image"] for base, _ in group], [image for _, image in group])
            for (base, _), label in zip(group, labels):
                base["predicted_original"] = label
    for codec_name, quality in task.pairs:
        codec = get_codec(codec_name)
        for group in same_size.values():
            images = [image for _, image in group]
            if codec.encode_batch is not None and len(images) > 1:
                measured = measure_batch(codec_name, images, quality, predict)
            else:
                measured = [measure(codec_name, image, quality, predict) for image in images]
            rows += [
                {**base, "codec": codec_name, "quality": quality, "codec_version": codec.version, **values}
                for (base, _), values in zip(group, measured)
            ]
    if predict is not None:
        _classify_decoded(rows, predict)
    return rows


def _classify_decoded(rows: list[dict], predict: Predict) -> None:
    """Fill ``predicted`` from the decoded images the rows carry, one network pass per image size."""
    carrying = [row for row in rows if _DECODED in row]
    by_shape: dict[tuple, list[dict]] = {}
    for row in carrying:
        by_shape.setdefault(row[_DECODED].shape, []).append(row)
    for group in by_shape.values():
        try:
            labels = predict([row[_DECODED] for row in group])
        except Exception as exc:  # the measurements stand; only the prediction is missing
            labels = [None] * len(group)
            for row in group:
                row["note"] = "; ".join(filter(None, [row.get("note"), f"classify: {type(exc).__name__}: {exc}"]))
        for row, label in zip(group, labels):
            row["predicted"] = label
    for row in carrying:
        del row[_DECODED]


def _error_key(row: dict) -> str:
    where = row["image"] if row["error"].startswith("read:") else f"{row['image']} [{row['codec']}]"
    return f"{row['dataset']}: {where}: {row['error']}"


def _worker_init() -> None:
    """One thread per worker: parallelism comes from processes, and 2 workers on 2 cores must not run 4 threads."""
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # for libraries not loaded yet: torch reads OMP_NUM_THREADS when it is imported
    threadpool_limits(1)  # for those already loaded (NumPy's BLAS, inherited through fork), which ignore the variables
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _single_items(task: Task) -> list[Task]:
    return [Task(task.dataset, (record,), (pair,), task.classify) for record in task.records for pair in task.pairs]


def _failure_rows(task: Task, reason: str) -> list[dict]:
    return [
        {**_base(task, record), "codec": codec, "quality": quality, "codec_version": get_codec(codec).version,
         "error": reason}
        for record in task.records for codec, quality in task.pairs
    ]  # fmt: skip


def _execute_dask(tasks: Sequence[Task], address: str, window: int) -> Iterator[list[dict]]:
    """Yield each task's rows as soon as a Dask worker of the cluster at `address` is done with it.

    Workers need `bench` installed and the images (and checkpoints) at the same
    paths as the client; the client alone writes the database. A task whose
    worker dies (Dask gives up after its retries) becomes error rows.
    """
    from dask.distributed import Client, as_completed

    with Client(address) as client:
        pending = iter(tasks)
        owner = {}

        def submit(task: Task):
            future = client.submit(evaluate, task, pure=False)
            owner[future.key] = task
            return future

        completed = as_completed([submit(task) for _, task in zip(range(window), pending)])
        for future in completed:
            task = owner.pop(future.key)
            try:
                rows = future.result()
            except Exception as exc:  # KilledWorker, lost connection: the sweep goes on
                rows = _failure_rows(task, f"crash: dask worker failed ({type(exc).__name__}: {exc})")
            yield rows
            following = next(pending, None)
            if following is not None:
                completed.add(submit(following))


def _execute(tasks: Sequence[Task], jobs: int, seconds_per_pair: float) -> Iterator[list[dict]]:
    """Yield each task's rows as soon as it is done, on `jobs` isolated worker processes."""
    pool = IsolatingPool(
        evaluate, jobs, split=_single_items, on_failure=_failure_rows,
        time_limit=lambda task: seconds_per_pair * len(task.pairs) * len(task.records), initializer=_worker_init,
    )  # fmt: skip
    yield from pool.map_unordered(tasks)


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on a run directory; RunLocked when another sweep holds it."""
    with open(out / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{out} is in use by another bench run; wait for it or use another --out") from None
        yield


def plan(config: SweepConfig, store: ResultStore, summary: SweepSummary) -> list[Task]:
    """Tasks for every (image, codec, quality) not yet in `store`."""
    codecs = []
    for name in config.codecs:
        codec = get_codec(name)
        if codec.available:
            codecs.append(codec)
        else:
            summary.unavailable[name] = codec.unavailable_reason or ""
    tasks = []
    for dataset_name in config.datasets:
        dataset = load_dataset(dataset_name, config.data_dir)
        records = dataset.select(config.split, config.limit, config.seed)
        summary.datasets[dataset.name] = f"{dataset.source}; {len(records)} selected (split {config.split})"
        classify = config.classify and dataset.labelled and classifier.load(dataset.name) is not None
        summary.datasets[dataset.name] += "; classifier: " + ("yes" if classify else "none")
        done = store.done(dataset.name)
        wanted = [(codec, float(q)) for codec in codecs for q in config.qualities.get(codec.name, codec.qualities)]
        summary.rows_already_done += sum((r.id, c.name, q) in done for r in records for c, q in wanted)
        for record in records:  # classical codecs: one task per image, all its pairs
            pairs = tuple((c.name, q) for c, q in wanted if c.encode_batch is None and (record.id, c.name, q) not in done)
            if pairs:
                tasks.append(Task(dataset.name, (record,), pairs, classify))
        for codec, quality in wanted:  # batchable (learned) codecs: one task per pair and batch of images
            if codec.encode_batch is None:
                continue
            todo = [r for r in records if (r.id, codec.name, quality) not in done]
            for start in range(0, len(todo), LEARNED_BATCH):
                batch = tuple(todo[start : start + LEARNED_BATCH])
                tasks.append(Task(dataset.name, batch, ((codec.name, quality),), classify))
    return tasks


def run_info(config: SweepConfig, summary: SweepSummary) -> dict:
    """Metadata stored with every invocation: what ran, where, with which versions."""
    return {
        "bench_version": __version__,
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
        "datasets": summary.datasets,
        "codecs": {name: get_codec(name).version for name in config.codecs if name not in summary.unavailable},
        "unavailable": summary.unavailable,
        "split": config.split,
        "limit": config.limit,
        "seed": config.seed,
        "data_dir": str(config.data_dir) if config.data_dir else None,
        "jobs": config.jobs or os.cpu_count(),
        "executor": f"dask {config.scheduler}" if config.scheduler else "local pool",
        "python": platform.python_version(),
        "machine": f"{platform.node()} {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        "packages": package_versions(),
    }


def git_commit() -> str:
    """The commit of the bench checkout (with "+dirty" when modified), or "unknown"."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("numpy", "pillow", "imagecodecs", "glymur", "av", "scikit-image", "torch", "pytorch-msssim", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def sweep(config: SweepConfig) -> SweepSummary:
    """Run (or resume) the sweep described by `config` into ``config.out``."""
    from tqdm import tqdm

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = SweepSummary(out)
    started = time.perf_counter()
    with run_lock(out), ResultStore(out / DB_NAME) as store:
        tasks = plan(config, store, summary)
        store.add_run(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), run_info(config, summary))
        jobs = max(1, min(config.jobs or os.cpu_count() or 1, len(tasks)))
        if not tasks:
            rows_of_tasks = iter(())
        elif config.scheduler:
            rows_of_tasks = _execute_dask(tasks, config.scheduler, window=64)
        else:
            rows_of_tasks = _execute(tasks, jobs, config.seconds_per_pair)
        bar = tqdm(total=len(tasks), unit="task", desc="sweep", disable=not config.progress, dynamic_ncols=True,
                   mininterval=0.1 if sys.stderr.isatty() else 30)  # a log file (CI) gets a line per 30 s, not per task  # fmt: skip
        with bar:
            for rows in rows_of_tasks:
                summary.rows_written += store.add(rows)
                summary.errors.update(_error_key(r) for r in rows if r.get("error"))
                bar.update()
                if summary.errors:
                    bar.set_postfix(errors=summary.errors.total())
    summary.seconds = time.perf_counter() - started
    return summary
