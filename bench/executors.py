"""Where tasks run: isolated local worker processes or a Dask cluster, behind one interface.

`execute` yields each task's rows as soon as the task is done, whichever
executor runs it; a task whose worker crashes, hangs or is lost becomes error
rows naming what happened, and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Iterator, Sequence

from bench.codecs import get_codec
from bench.measure import Task, base_row, evaluate
from bench.tasks import classifier
from bench.workers import IsolatingPool

DASK_WINDOW = 64
"""Tasks submitted to a Dask cluster at a time: enough to keep its workers busy, few enough to stop quickly."""


def execute(tasks: Sequence[Task], *, jobs: int, seconds_per_pair: float, scheduler: str | None = None) -> Iterator[list[dict]]:
    """Each task's rows as soon as it is done: on the Dask cluster at `scheduler`, else on `jobs` local workers."""
    if not tasks:
        return iter(())
    if scheduler:
        return _execute_dask(tasks, scheduler, DASK_WINDOW)
    return _execute_local(tasks, jobs, seconds_per_pair)


def worker_init(classifiers: Sequence[str] = ()) -> None:
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
        {**base_row(task, record), "codec": codec, "quality": quality, "codec_version": get_codec(codec, weights_dir=task.weights_dir, device=task.device).version_at(quality),
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

    from bench.config import ConfigError  # here: bench.config imports this module through bench.tasks.adapt

    try:
        client = Client(address, timeout="20s")
    except (OSError, ValueError, TypeError) as exc:  # refused, timed out, or not an address
        raise ConfigError(f"--scheduler {address}: cannot connect ({type(exc).__name__}: {exc})") from None
    with client:
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


def _execute_local(tasks: Sequence[Task], jobs: int, seconds_per_pair: float) -> Iterator[list[dict]]:
    """Yield each task's rows as soon as it is done, on `jobs` isolated worker processes."""
    pool = IsolatingPool(
        evaluate, jobs, split=_single_items, on_failure=_failure_rows,
        time_limit=lambda task: seconds_per_pair * len(task.records),
        initializer=functools.partial(worker_init, sorted({t.classifier for t in tasks if t.classifier})),
    )  # fmt: skip
    yield from pool.map_unordered(tasks)


