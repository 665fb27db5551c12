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
import errno
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import crops
from bench.codecs import get_codec, learned
from bench.config import ConfigError, SweepConfig, check_config, resolve_qualities
from bench.datasets import load_dataset
from bench.executors import execute
from bench.files import sha256_of
from bench.measure import LEARNED_BATCH, Task
from bench.provenance import run_info
from bench.store import DB_NAME, ResultStore
from bench.tasks import classifier


class RunLocked(RuntimeError):
    """Another sweep is writing to the same run directory."""


class RunMismatch(ConfigError):
    """The run directory holds rows of another selection (split, limit or seed); they must not be merged."""


IDENTITY = ("split", "limit", "seed")
"""What selects the images of a run: rows of two selections in one database would be averaged together."""


def _differences(stored: dict, now: dict, keys: tuple[str, ...], flag: str = "") -> str:
    """``"--limit 4 (stored) vs 5 (now), …"`` for every key of `keys` whose value differs; empty when none does."""
    return ", ".join(f"{flag}{key} {stored.get(key)} (stored) vs {now.get(key)} (now)"
                     for key in keys if stored.get(key) != now.get(key))  # fmt: skip


def check_identity(config: SweepConfig, store: ResultStore) -> None:
    """RunMismatch when `store` already holds a run whose selection differs from `config`'s."""
    runs = store.runs()
    differ = runs and _differences(runs[0], {key: getattr(config, key) for key in IDENTITY}, IDENTITY, "--")
    if differ:
        raise RunMismatch(f"{config.out} holds a run of another selection: {differ}; use another --out")


POPULATION = ("kind", "images", "manifest_sha256")
"""What makes a dataset the same set of images (`Dataset.identity`): its folder may move, but another source (the
shipped sample or the full dataset), another image count or another split manifest selects other images."""


def check_population(config: SweepConfig, store: ResultStore, dataset: str, identity: dict) -> None:
    """RunMismatch when `store` holds `dataset` rows selected from another set of images than `identity` describes.

    Aggregates average every stored row: rows of a five-image subset of the sample and of the full dataset would
    make one ten-image "--limit 5" point.
    """
    stored = next((run["dataset_identities"][dataset] for run in reversed(store.runs())
                   if dataset in run.get("dataset_identities", {})), None)  # fmt: skip
    differ = stored is not None and _differences(stored, identity, POPULATION)
    if differ:
        raise RunMismatch(f"{config.out} holds {dataset} rows of other images: {differ} "
                          f"(stored from {stored.get('root')}, now {identity.get('root')}); use another --out")


def check_classifier(config: SweepConfig, store: ResultStore, dataset: str, model: str | None) -> None:
    """RunMismatch when `store` holds `dataset` predictions by another classifier than `model` is now.

    Accuracy averages predictions over rows: a run resumed after the classifier (or its test-time views) changed
    would mix two models in one number, so it is refused rather than silently blended.
    """
    now = classifier.identity(model) if model else None
    stored = store.classifiers(dataset) - {now}
    if now and stored:
        raise RunMismatch(f"{config.out} holds {dataset} predictions by {', '.join(sorted(stored))}; the "
                          f"classifier is now {now}: use another --out, or --no-classify to add rows without accuracy")


def check_codec_versions(config: SweepConfig, store: ResultStore, dataset: str, codecs: list) -> None:
    """RunMismatch when `store` holds `dataset` rows of one of `codecs` made by another version of that point than
    the codec has now (`Codec.version_at`: its library, and a learned codec's checkpoint of that quality).

    A codec's curve averages its rows: a run resumed after the codec's library or one of its checkpoints changed
    would blend two codecs under one name, so it is refused rather than silently mixed. A checkpoint added for a new
    quality leaves the stored rows valid.
    """
    by_name = {codec.name: codec for codec in codecs}
    for (name, quality), versions in sorted(store.codec_versions(dataset).items()):
        codec = by_name.get(name)
        now = codec.version_at(quality) if codec is not None else None
        other = {version for version in versions if now and not learned.is_version_of_point(version, now, quality)}
        if other:
            raise RunMismatch(f"{config.out} holds {dataset} rows of {name} {quality:g} made by "
                              f"{' and '.join(sorted(other))}; it is now {now}: use another --out")  # fmt: skip


@dataclasses.dataclass
class SweepSummary:
    """What a sweep did."""

    out: Path
    rows_written: int = 0
    rows_already_done: int = 0
    rows_forgotten: int = 0  # rows of images whose file changed since: deleted and measured again
    rows_retried: int = 0  # error rows of an earlier invocation, measured again
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Failed rows by what failed: image (and codec, unless the image itself was unreadable) and error."""
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    identities: dict[str, dict] = dataclasses.field(default_factory=dict)  # Dataset.identity() of each dataset
    seconds: float = 0.0
    adapted: object = None  # `bench.tasks.adapt.Adapted` when the adapted protocol ran

    def lines(self, *, verbose: bool = False, max_errors: int = 20) -> list[str]:
        """What the sweep did, for the terminal: datasets, skipped codecs, rows, the commonest failures."""
        lines = [f"dataset {name}: {source}" for name, source in self.datasets.items()]
        if self.unavailable and verbose:
            lines += [f"skipped codec {name}: {reason}" for name, reason in self.unavailable.items()]
        elif self.unavailable:
            lines.append(f"skipped {len(self.unavailable)} unavailable codec(s): {', '.join(self.unavailable)} "
                         "(why: -v or `python -m bench codecs`)")  # fmt: skip
        lines.append(f"{self.rows_written} rows written, {self.rows_already_done} already done, "
                     f"{self.errors.total()} failed rows, {self.seconds:.1f} s"
                     + (f"; {self.rows_forgotten} rows of changed images measured again" if self.rows_forgotten else "")
                     + (f"; {self.rows_retried} failed rows measured again" if self.rows_retried else ""))  # fmt: skip
        if self.adapted is not None:
            lines.append(f"adapted protocol: {self.adapted.rows} predictions, {self.adapted.trained} models trained, "
                         f"{self.adapted.reused} reused" + (f"; {self.adapted.size_mismatches} re-encoded streams differ "
                         "in size from their rows" if self.adapted.size_mismatches else ""))  # fmt: skip
            lines += [f"adapted protocol failed for {failure} (run the command again to retry)"
                      for failure in self.adapted.failures]  # fmt: skip
        lines += [f"  failed ({count} rows): {error}" for error, count in self.errors.most_common(max_errors)]
        if len(self.errors) > max_errors:
            lines.append(f"  … {len(self.errors) - max_errors} more kinds of failure in the report's Failures section")
        return lines


def _error_key(row: dict) -> str:
    where = row["image"] if row["error"].startswith("read:") else f"{row['image']} [{row['codec']}]"
    return f"{row['dataset']}: {where}: {row['error']}"


@contextlib.contextmanager
def run_lock(out: Path, *, unless_read_only: bool = False) -> Iterator[None]:
    """Exclusive lock on a run directory; RunLocked when another process holds it.

    An OS lock (filelock): it goes when its holder goes, however it dies; the
    holder's workers die with it (`bench.workers`), so no copy of the lock
    outlives the sweep. With `unless_read_only`, a directory where the lock
    file cannot be written (nothing can be writing there) is read unlocked.
    """
    import filelock

    lock = filelock.FileLock(Path(out) / ".lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunLocked(f"{out} is in use by another bench run; wait for it or use another --out") from None
    except OSError as exc:
        if not (unless_read_only and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)):
            raise
        yield
        return
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
        codec = get_codec(name, weights_dir=config.weights_dir, device=config.device)
        if codec.available:
            codecs.append(codec)
        else:
            summary.unavailable[name] = codec.unavailable_reason or ""
    selected = []  # every dataset is checked before any stored row is forgotten: a refused run stays as it was
    for dataset_name in config.datasets:
        dataset = load_dataset(dataset_name, config.data_dir)
        records = [dataclasses.replace(r, sha256=_digest(r.path)) for r in dataset.select(config.split, config.limit, config.seed)]
        if not records:
            raise ConfigError(f"{dataset.name}: split {config.split} selects no images ({dataset.source})")
        summary.identities[dataset.name] = dataset.identity()
        check_population(config, store, dataset.name, summary.identities[dataset.name])
        model = classifier.matching(dataset.name, dataset.classes) if config.classify and dataset.labelled else None
        check_classifier(config, store, dataset.name, model)
        check_codec_versions(config, store, dataset.name, codecs)
        summary.datasets[dataset.name] = f"{dataset.source}; {len(records)} selected (split {config.split}); classifier: {model or 'none'}"
        selected.append((dataset.name, records, model))
    wanted = [(codec, float(q)) for codec in codecs for q in config.qualities.get(codec.name, codec.qualities)]
    tasks = []
    for dataset_name, records, model in selected:
        changed = store.changed_images(dataset_name, {r.id: r.sha256 for r in records})
        if changed:  # replaced since they were measured: their rows are stale
            summary.rows_forgotten += store.forget(dataset_name, changed)
        store.fill_seen(dataset_name, {r.id: r.seen for r in records})  # rows of a bench that did not record it
        make_task = functools.partial(Task, dataset_name, classifier=model, max_pixels=config.max_pixels,
                                      plugins=config.plugins, weights_dir=config.weights_dir, device=config.device,
                                      gallery=crops.choose(records))  # fmt: skip
        done, failed = store.done(dataset_name)  # failed rows are measured again (`ResultStore.add`), unless kept
        if not config.retry_failed:
            done, failed = done | failed, set()
        summary.rows_already_done += sum((r.id, c.name, q) in done for r in records for c, q in wanted)
        summary.rows_retried += sum((r.id, c.name, q) in failed for r in records for c, q in wanted)
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


def sweep(config: SweepConfig, *, then: Callable[[SweepSummary], None] | None = None) -> SweepSummary:
    """Run (or resume) the sweep described by `config` into ``config.out`` (checked first, see `check_config`).

    `then` runs after the measurements under the same lock, so that no other run or `report` comes between the rows
    and the tables written from them.
    """
    check_config(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = SweepSummary(out)
    started = time.perf_counter()
    with run_lock(out):
        _measure(config, out, summary)
        if config.protocol != "fixed":
            from bench.tasks.adapt import adapt

            summary.adapted = adapt(out, data_dir=config.data_dir, weights_dir=config.weights_dir, device=config.device,
                                    steps=config.adapt_steps, jobs=config.jobs or os.cpu_count() or 1,
                                    seconds_per_pair=config.seconds_per_pair, progress=config.progress)  # fmt: skip
        summary.seconds = time.perf_counter() - started
        if then is not None:
            then(summary)
    return summary


def _measure(config: SweepConfig, out: Path, summary: SweepSummary) -> None:
    """Plan the missing pairs and store each task's rows as it finishes."""
    from tqdm import tqdm

    with ResultStore(out / DB_NAME) as store:
        check_identity(config, store)
        tasks = plan(config, store, summary)
        store.add_run(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), run_info(config, summary))
        jobs = max(1, min(config.jobs or os.cpu_count() or 1, len(tasks)))
        rows_of_tasks = execute(tasks, jobs=jobs, seconds_per_pair=config.seconds_per_pair, scheduler=config.scheduler)
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


__all__ = ["ConfigError", "RunLocked", "RunMismatch", "SweepConfig", "SweepSummary", "check_config", "plan",
           "resolve_qualities", "run_lock", "sweep"]
