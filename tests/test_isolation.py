"""Crashing and hanging codecs, and corrupt bitstreams, cost error rows, never the sweep."""

import ctypes
import os
import dataclasses
import time

import numpy as np
import pytest

from bench import codecs
from bench.codecs import CODECS, get_codec
from bench.runner import SweepConfig, sweep
from bench.tables import results
from bench.workers import IsolatingPool


def _segfault_at_2(image, quality):
    if quality == 2:
        ctypes.string_at(0)  # reads address 0: SIGSEGV inside the worker
    return get_codec("jpeg").encode(image, 50 + quality)


def _hang_at_2(image, quality):
    if quality == 2:
        time.sleep(3600)
    return get_codec("jpeg").encode(image, 50 + quality)


@pytest.mark.parametrize("behaviour, reason", [(_segfault_at_2, "crash: worker process died (signal SIGSEGV)"),
                                               (_hang_at_2, "timeout: still running after 1.5 s, killed")])  # fmt: skip
def test_crash_or_hang_becomes_one_error_row(tmp_path, monkeypatch, behaviour, reason):
    bad = dataclasses.replace(get_codec("jpeg"), name="badcodec", qualities=(1, 2, 3), encode=behaviour)
    monkeypatch.setitem(codecs.CODECS, "badcodec", bad)
    sweep(SweepConfig(datasets=["eurosat"], codecs=["badcodec"], out=tmp_path, limit=3, jobs=2,
                      progress=False, seconds_per_pair=1.5))  # fmt: skip
    frame = results(tmp_path)
    assert len(frame) == 3 * 3
    failed = frame[frame["error"].notna()]
    assert set(zip(failed["codec"], failed["quality"])) == {("badcodec", 2.0)} and len(failed) == 3
    assert (failed["error"] == reason).all()
    assert frame[frame["error"].isna()]["psnr"].notna().all()  # the other pairs of the same images completed


def _decode_outcome(item):
    name, data = item
    try:
        image = CODECS[name].decode(data)
    except Exception as exc:  # a clean Python error is the expected outcome
        return name, f"error: {type(exc).__name__}"
    return name, "decoded" if isinstance(image, np.ndarray) else "odd result"


def test_corrupt_bitstreams_never_hang_or_take_the_sweep_down(tiles):
    rng = np.random.default_rng(0)
    items = []
    for codec in (c for c in CODECS.values() if c.available and c.family == "classical"):
        data = codec.encode(tiles[1], codec.qualities[len(codec.qualities) // 2])
        items.append((codec.name, data[: len(data) // 2]))  # truncated
        items.append((codec.name, data[:3]))  # almost nothing
        for _ in range(3):  # random bit flips in the payload
            flipped = bytearray(data)
            for position in rng.integers(len(data) // 4, len(data), 4):
                flipped[position] ^= 1 << int(rng.integers(8))
            items.append((codec.name, bytes(flipped)))
    pool = IsolatingPool(_decode_outcome, 2, split=lambda item: [item],
                         on_failure=lambda item, reason: (item[0], reason), time_limit=lambda item: 20)  # fmt: skip
    outcomes = list(pool.map_unordered(items))
    assert len(outcomes) == len(items)
    assert not [o for o in outcomes if o[1].startswith("timeout")]


def _mark_started(path):
    path.touch()  # the parent can see that this task has begun
    return path.name


def test_a_worker_starts_its_next_task_while_the_caller_handles_the_last_result(tmp_path):
    # The caller (the runner storing rows) must never be a pause in the worker's work: when result k
    # arrives, task k+1 is already on its way. Without that, this loop waits for a file that never comes.
    markers = [tmp_path / f"task{k}" for k in range(4)]
    pool = IsolatingPool(_mark_started, 1, split=lambda item: [item], on_failure=lambda item, reason: reason,
                         time_limit=lambda item: 30)  # fmt: skip
    for k, name in enumerate(pool.map_unordered(markers)):
        assert name == f"task{k}"
        if k + 1 < len(markers):
            deadline = time.monotonic() + 20
            while not markers[k + 1].exists():
                assert time.monotonic() < deadline, f"task{k + 1} did not start while result {k} was being handled"
                time.sleep(0.01)


def test_the_time_limit_applies_per_pair_not_per_task(tmp_path, monkeypatch):
    """One image, ten pairs, the second hangs: the limit (1 s) is spent once, not once per pair of the task."""
    bad = dataclasses.replace(get_codec("jpeg"), name="badcodec", qualities=tuple(range(1, 11)), encode=_hang_at_2)
    monkeypatch.setitem(codecs.CODECS, "badcodec", bad)
    started = time.monotonic()
    sweep(SweepConfig(datasets=["eurosat"], codecs=["badcodec"], out=tmp_path, limit=1, jobs=1,
                      progress=False, seconds_per_pair=1.0))  # fmt: skip
    elapsed = time.monotonic() - started
    frame = results(tmp_path)
    assert list(frame.loc[frame["error"].notna(), "quality"]) == [2.0], frame["error"].tolist()
    assert elapsed < 8  # per task it would be 10 s before the first timeout, then 1 s more to single out pair 2


def _process_group(item):
    return os.getpgrp()


def test_workers_stay_in_the_sweep_s_process_group():
    """A signal to the sweep's process group (a terminal hangup, ``kill -- -PGID``) must reach every worker and what
    it runs, and a worker writing to the terminal must not be a background job stopped by ``stty tostop``."""
    pool = IsolatingPool(_process_group, 2, split=lambda item: [item], on_failure=lambda item, reason: reason,
                         time_limit=lambda item: 30)  # fmt: skip
    assert set(pool.map_unordered(range(4))) == {os.getpgrp()}


def _command_leaving_a_child_beside_a_helper(item):
    import subprocess

    from bench.workers import ending_strays

    helper = subprocess.Popen(["sleep", "30"])  # a plug-in's long-lived helper process
    with ending_strays():
        subprocess.run(["sh", "-c", "sleep 41.76 >/dev/null 2>&1 &"], check=True)  # a command that leaves a child
    left = subprocess.run(["pgrep", "-f", "sleep 41.76"], capture_output=True, text=True).stdout.split()
    alive = helper.poll() is None
    helper.kill()
    helper.wait()
    return alive, left


def test_what_a_command_leaves_is_ended_but_the_worker_s_own_helpers_stay():
    pool = IsolatingPool(_command_leaving_a_child_beside_a_helper, 1, split=lambda item: [item],
                         on_failure=lambda item, reason: reason, time_limit=lambda item: 30)  # fmt: skip
    assert list(pool.map_unordered([0])) == [(True, [])]
