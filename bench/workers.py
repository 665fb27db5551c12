"""A process pool that survives its tasks: crashes and hangs are attributed, not fatal.

Each worker process runs one task at a time, so the parent always knows which
task a worker holds. When a worker dies (a segfault in a native library) or
exceeds its time limit (it is then killed), the worker is replaced and the
task is split into single-item tasks that run again, each alone in a fresh
slot: the item that crashes again is reported through `on_failure`, the
others complete normally. The pool never hangs and never stops the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import faulthandler
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.5
STARTUP_SECONDS = 300.0
"""How long a fresh worker may take to run its initializer (imports, model loading) before its first task's clock starts."""
_HEARTBEAT = "bench.workers.heartbeat"
_beat: Callable[[], None] | None = None


PARENT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name))
"""Signals a terminal sends to the whole process group, which workers leave to the sweep's process."""


def heartbeat() -> None:
    """Tell the pool that this worker made progress: its task's time limit starts over.

    A task may hold many encode/decode pairs; calling this after each one makes
    the limit apply per pair, so a hung codec costs one limit, not one per pair.
    Does nothing outside a pool worker (in-process runs, Dask).
    """
    if _beat is not None:
        _beat()


def _context():
    # fork: workers start in milliseconds and inherit the parent's registry (plugins, test codecs).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _find_prctl():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError, TypeError):  # not Linux
        return None


_PRCTL = _find_prctl()  # looked up once: `die_at_parent_death` runs between fork and exec, where loading is unsafe


def die_at_parent_death() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing).

    One C call, so it also serves as a ``subprocess`` ``preexec_fn``: an external codec's command must not outlive
    the worker that a time limit killed.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    """End this worker when the process that started it dies, however it dies.

    Killing only the sweep's process (``kill -9 PID``, ``timeout``, a CI
    cancel, the OOM killer) must not leave workers behind holding the run
    directory's lock and each other's pipes. Linux: the kernel sends SIGKILL
    at the parent's death (prctl PR_SET_PDEATHSIG). Elsewhere, and as a
    second line: a daemon thread exits once the worker has been re-parented.
    """
    die_at_parent_death()
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _processes() -> dict[int, tuple[int, str]]:
    """Parent pid and state (``"Z"``: a zombie) of every process, by pid (Linux ``/proc``; elsewhere none)."""
    table = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    state, parent = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
                except (OSError, ValueError):  # ended meanwhile
                    continue
                table[int(entry.name)] = (int(parent), state)
    return table


def _children(table: dict[int, tuple[int, str]]) -> dict[int, list[int]]:
    """The children of each process of `table`, by pid."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    return children


def _below(children: dict[int, list[int]], pid: int) -> list[int]:
    """The processes below `pid` (`children` from `_children`): its children, theirs, and so on."""
    below, frontier = [], [pid]
    while frontier:
        below.extend(found := children.get(frontier.pop(), []))
        frontier.extend(found)
    return below


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_subreaper: int | None = None  # the pid of this process when it is a pool worker adopting what its commands orphan


def _become_subreaper() -> None:
    """Make this worker adopt the processes its external commands orphan (Linux PR_SET_CHILD_SUBREAPER): a process a
    command started in the background and left behind is then the worker's child, for `ending_strays` to find."""
    global _subreaper
    if _PRCTL is not None and _PRCTL(_PR_SET_CHILD_SUBREAPER, 1) == 0:
        _subreaper = os.getpid()  # a process this worker forks is no subreaper: the kernel does not pass it on


@contextlib.contextmanager
def ending_strays() -> Iterator[None]:
    """Run an external command in the block; after it, kill and reap what the command left running (its background
    children, theirs, …), past a time limit too. The worker's other children (a plug-in's helper process) stay.

    Does nothing outside a pool worker (in-process runs, Dask): there nothing adopts the orphans.
    """
    if _subreaper != os.getpid():
        yield
        return
    before = set(_children(_processes()).get(_subreaper, []))
    try:
        yield
    finally:
        while True:
            table = _processes()
            children = _children(table)
            strays = [pid for pid in children.get(_subreaper, []) if pid not in before]
            if not strays:
                break
            _kill(pid for stray in strays for pid in (stray, *_below(children, stray)) if table[pid][1] != "Z")
            for pid in strays:  # their orphans come to this worker in turn: reaped in the next round
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


def _serve(connection: Connection, run: Callable[[Any], Any], initializer: Callable[[], None] | None,
           parent: int) -> None:  # fmt: skip
    _die_with_parent(parent)
    _become_subreaper()
    for signum in PARENT_SIGNALS:  # Ctrl-C and a terminal hangup reach the whole group: the parent stops the workers
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    faulthandler.disable()  # a crash is reported by the parent as an error row, not as a traceback dump
    global _beat
    _beat = functools.partial(connection.send, _HEARTBEAT)
    if initializer is not None:
        initializer()
    connection.send(_HEARTBEAT)  # ready: a task sent meanwhile starts its clock now, not before the initializer
    while True:
        task = connection.recv()
        if task is None:
            return
        connection.send(run(task))


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclasses.dataclass
class _Worker:
    process: Any
    connection: Connection
    task: Any = None
    started: float = 0.0
    ready: bool = False  # its initializer finished; until then its task's time limit has not started


class IsolatingPool:
    """Run `run(task)` for many tasks on `jobs` processes, isolating crashes and hangs.

    Args:
        run: the function a worker applies to a task (must be importable or inherited by fork).
        jobs: worker processes.
        split: turns a failed task into single-item tasks (returns [task] when it is already single).
        on_failure: builds the result of a single-item task that crashed or timed out, from the
            task and a reason ("crash: …" / "timeout: …").
        time_limit: seconds a task may run, as a function of the task; counted from the task's
            start or from its last `heartbeat`.
        initializer: called once in every worker.
    """

    def __init__(
        self,
        run: Callable[[Any], Any],
        jobs: int,
        split: Callable[[Any], Sequence[Any]],
        on_failure: Callable[[Any, str], Any],
        time_limit: Callable[[Any], float],
        initializer: Callable[[], None] | None = None,
    ):
        self._run, self._jobs, self._split, self._on_failure = run, jobs, split, on_failure
        self._time_limit, self._initializer = time_limit, initializer
        self._context = _context()
        self._workers: list[_Worker] = []

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self._run, self._initializer, os.getpid()),
                                        daemon=True)  # fmt: skip
        process.start()
        child.close()
        return _Worker(process, parent)

    def _stop(self, worker: _Worker, kill: bool) -> None:
        if kill:
            if worker.process.exitcode is None:  # not reaped, so its pid is still its own: end what it started too
                _kill(_below(_children(_processes()), worker.process.pid))  # a command, and its own children
            worker.process.kill()
        else:
            try:
                worker.connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        worker.process.join(timeout=5)
        worker.connection.close()

    def map_unordered(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield every task's result (or failure result) as soon as it is ready."""
        pending = deque(tasks)
        retry: deque = deque()  # single-item tasks of a failed task, each run alone

        def feed(worker: _Worker) -> None:
            if worker.task is None and (retry or pending):
                worker.task = retry.popleft() if retry else pending.popleft()
                worker.started = time.monotonic()
                worker.connection.send(worker.task)

        self._workers = [self._start() for _ in range(self._jobs)]
        try:
            while pending or retry or any(w.task is not None for w in self._workers):
                for worker in self._workers:
                    feed(worker)
                busy = [w for w in self._workers if w.task is not None]
                ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy], POLL_SECONDS)
                for index, worker in enumerate(self._workers):
                    if worker.task is None:
                        continue
                    if worker.connection in ready:
                        try:
                            result = worker.connection.recv()
                        except (EOFError, OSError):
                            result = None
                        else:
                            if isinstance(result, str) and result == _HEARTBEAT:
                                worker.started, worker.ready = time.monotonic(), True
                                continue
                            worker.task = None
                            feed(worker)  # before the caller stores the result: the worker never waits on it
                            yield result
                            continue
                    elapsed = time.monotonic() - worker.started
                    died = worker.process.sentinel in ready or not worker.process.is_alive()
                    limit = self._time_limit(worker.task) if worker.ready else STARTUP_SECONDS
                    if not died and elapsed <= limit:
                        continue
                    if died:
                        worker.process.join(timeout=5)  # reap it, so the exit code is known
                        reason = f"crash: worker process died ({_describe_exit(worker.process.exitcode)})"
                    else:
                        reason = f"timeout: still running after {limit:g} s, killed"
                    failed, worker.task = worker.task, None
                    self._stop(worker, kill=True)
                    self._workers[index] = self._start()
                    parts = self._split(failed)
                    if len(parts) == 1:
                        yield self._on_failure(parts[0], reason)
                    else:
                        retry.extend(parts)
        finally:
            for worker in self._workers:
                self._stop(worker, kill=worker.task is not None)


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP reached the parent: it stops its workers and keeps what it stored."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session) become `Interrupted` while the block runs."""

    def handler(signum, _frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (*PARENT_SIGNALS, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
