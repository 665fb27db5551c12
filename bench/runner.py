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
import functools
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench import __version__, plugins
from bench.codecs import get_codec
from bench.datasets import DEFAULT_SEED, load_dataset
from bench.files import sha256_of
from bench.images import DEFAULT_MAX_PIXELS
from bench.measure import LEARNED_BATCH, Task, base_row, evaluate
from bench.store import DB_NAME, ResultStore
from bench.tasks import classifier
from bench.workers import IsolatingPool


class RunLocked(RuntimeError):
    """Another sweep is writing to the same run directory."""


class RunMismatch(ValueError):
    """The run directory holds rows of another selection (split, limit or seed); they must not be merged."""


IDENTITY = ("split", "limit", "seed")
"""What selects the images of a run: rows of two selections in one database would be averaged together."""


def check_identity(config: SweepConfig, store: ResultStore) -> None:
    """RunMismatch when `store` already holds a run whose selection differs from `config`'s."""
    runs = store.runs()
    if not runs:
        return
    stored = {key: runs[0].get(key) for key in IDENTITY}
    asked = {key: getattr(config, key) for key in IDENTITY}
    if stored != asked:
        differ = ", ".join(f"--{k} {stored[k]} (stored) vs {asked[k]} (now)" for k in IDENTITY if stored[k] != asked[k])
        raise RunMismatch(f"{config.out} holds a run of another selection: {differ}; use another --out")


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
    seconds_per_pair: float = 120.0  # time limit of one encode+decode+metrics (× the images of a learned batch)
    scheduler: str | None = None  # address of a Dask scheduler (tcp://HOST:PORT); None: the local pool
    progress: bool = True
    classify: bool = True  # downstream accuracy on labelled datasets that have a committed classifier
    max_pixels: int = DEFAULT_MAX_PIXELS  # pixel budget per image, checked from its header
    command: str = ""  # the command line that started the sweep, as a user would type it again
    plugins: tuple[str, ...] = ()  # --plugin modules or files (entry-point plug-ins load by themselves)


@dataclasses.dataclass
class SweepSummary:
    """What a sweep did."""

    out: Path
    rows_written: int = 0
    rows_already_done: int = 0
    rows_forgotten: int = 0  # rows of images whose file changed since: deleted and measured again
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Failed rows by what failed: image (and codec, unless the image itself was unreadable) and error."""
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    identities: dict[str, dict] = dataclasses.field(default_factory=dict)  # Dataset.identity() of each dataset
    seconds: float = 0.0


def _error_key(row: dict) -> str:
    where = row["image"] if row["error"].startswith("read:") else f"{row['image']} [{row['codec']}]"
    return f"{row['dataset']}: {where}: {row['error']}"


def _worker_init(classifiers: Sequence[str] = ()) -> None:
    """One thread per worker, and the sweep's classifiers loaded and run once before the first task.

    Processes give the parallelism: 2 workers on 2 cores must not run 4
    threads. Loading here (torch's import ~2 s, the first forward pass's
    kernel set-up ~1 s) keeps a fresh worker's start-up out of its first
    pair's time limit.
    """
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # for libraries not loaded yet: torch reads OMP_NUM_THREADS when it is imported
    threadpool_limits(1)  # for those already loaded (NumPy's BLAS, inherited through fork), which ignore the variables
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    for name in classifiers:
        classifier.load(name).warm_up()


def _single_items(task: Task) -> list[Task]:
    return [dataclasses.replace(task, records=(record,), pairs=(pair,)) for record in task.records for pair in task.pairs]


def _failure_rows(task: Task, reason: str) -> list[dict]:
    return [
        {**base_row(task, record), "codec": codec, "quality": quality, "codec_version": get_codec(codec).version,
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
        time_limit=lambda task: seconds_per_pair * len(task.records),
        initializer=functools.partial(_worker_init, sorted({t.classifier for t in tasks if t.classifier})),
    )  # fmt: skip
    yield from pool.map_unordered(tasks)


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on a run directory; RunLocked when another sweep holds it.

    An OS lock (filelock): it goes when its holder goes, however it dies; the
    holder's workers die with it (`bench.workers`), so no copy of the lock
    outlives the sweep.
    """
    import filelock

    lock = filelock.FileLock(out / ".lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunLocked(f"{out} is in use by another bench run; wait for it or use another --out") from None
    try:
        yield
    finally:
        lock.release()


def _digest(path: Path) -> str | None:
    try:
        return sha256_of(path)
    except OSError:  # missing or unreadable: the task's read fails and says so in an error row
        return None


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
        records = [dataclasses.replace(r, sha256=_digest(r.path)) for r in dataset.select(config.split, config.limit, config.seed)]
        changed = store.changed_images(dataset.name, {r.id: r.sha256 for r in records})
        if changed:  # replaced since they were measured: their rows are stale
            summary.rows_forgotten += store.forget(dataset.name, changed)
        summary.datasets[dataset.name] = f"{dataset.source}; {len(records)} selected (split {config.split})"
        summary.identities[dataset.name] = dataset.identity()
        model = classifier.matching(dataset.name, dataset.classes) if config.classify and dataset.labelled else None
        summary.datasets[dataset.name] += f"; classifier: {model or 'none'}"
        make_task = functools.partial(Task, dataset.name, classifier=model, max_pixels=config.max_pixels,
                                      plugins=config.plugins)  # fmt: skip
        done = store.done(dataset.name)
        wanted = [(codec, float(q)) for codec in codecs for q in config.qualities.get(codec.name, codec.qualities)]
        summary.rows_already_done += sum((r.id, c.name, q) in done for r in records for c, q in wanted)
        for record in records:  # classical codecs: one task per image, all its pairs
            pairs = tuple((c.name, q) for c, q in wanted if c.encode_batch is None and (record.id, c.name, q) not in done)
            if pairs:
                tasks.append(make_task((record,), pairs))
        for codec, quality in wanted:  # batchable (learned) codecs: one task per pair and batch of images
            if codec.encode_batch is None:
                continue
            todo = [r for r in records if (r.id, codec.name, quality) not in done]
            for start in range(0, len(todo), LEARNED_BATCH):
                batch = tuple(todo[start : start + LEARNED_BATCH])
                tasks.append(make_task(batch, ((codec.name, quality),)))
    return tasks


def run_info(config: SweepConfig, summary: SweepSummary) -> dict:
    """Metadata stored with every invocation: what ran, where, with which versions."""
    return {
        "bench_version": __version__,
        "git_commit": git_commit(),
        "command": config.command or shlex.join(sys.argv),
        "datasets": summary.datasets,
        "dataset_identities": summary.identities,
        "codecs": {name: get_codec(name).version for name in config.codecs if name not in summary.unavailable},
        "unavailable": summary.unavailable,
        "plugins": plugins.load(config.plugins),
        "codec_info": {name: get_codec(name).describe() for name in config.codecs},  # reports need no plug-in
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
        check_identity(config, store)
        tasks = plan(config, store, summary)
        store.add_run(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), run_info(config, summary))
        jobs = max(1, min(config.jobs or os.cpu_count() or 1, len(tasks)))
        if not tasks:
            rows_of_tasks = iter(())
        elif config.scheduler:
            rows_of_tasks = _execute_dask(tasks, config.scheduler, window=64)
        else:
            rows_of_tasks = _execute(tasks, jobs, config.seconds_per_pair)
        pairs = sum(len(task.records) * len(task.pairs) for task in tasks)  # encode/decode pairs: one row each
        bar = tqdm(total=pairs, unit="pair", desc="sweep", disable=not config.progress, dynamic_ncols=True,
                   mininterval=0.1 if sys.stderr.isatty() else 30)  # a log file (CI) gets a line per 30 s, not per task  # fmt: skip
        with bar:
            for rows in rows_of_tasks:
                summary.rows_written += store.add(rows)
                summary.errors.update(_error_key(r) for r in rows if r.get("error"))
                bar.update(len(rows))
                if summary.errors:
                    bar.set_postfix(errors=summary.errors.total())
    summary.seconds = time.perf_counter() - started
    return summary
