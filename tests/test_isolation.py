"""Crashing and hanging codecs, and corrupt bitstreams, cost error rows, never the sweep."""

import ctypes
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
