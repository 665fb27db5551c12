import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.codecs import get_codec
from bench.images import DEFAULT_MAX_PIXELS
from bench.runner import RunLocked, SweepConfig, run_lock, sweep
from bench.store import DB_NAME, KEY, REPRODUCIBLE
from bench.tables import aggregate, results

FAST = ("jpeg", "webp")


def _config(out: Path, **kwargs) -> SweepConfig:
    defaults = dict(datasets=["eurosat"], codecs=list(FAST), out=out, limit=6, jobs=1, progress=False)
    return SweepConfig(**{**defaults, **kwargs})


def _expected_rows(n_images: int, codecs=FAST) -> int:
    return n_images * sum(len(get_codec(c).qualities) for c in codecs)


def test_sweep_writes_one_row_per_image_codec_quality(tmp_path):
    summary = sweep(_config(tmp_path))
    frame = results(tmp_path)
    assert summary.rows_written == len(frame) == _expected_rows(6)
    assert frame["error"].isna().all()
    assert not frame.duplicated(list(KEY)).any()
    assert set(zip(frame["codec"], frame["codec_version"])) == {(c, get_codec(c).version) for c in FAST}
    assert (frame["bpp"] > frame["bpp_payload"]).all()
    summary_table = aggregate(frame)
    assert len(summary_table) == sum(len(get_codec(c).qualities) for c in FAST)
    assert (summary_table["n_images"] == 6).all()


def _threads_in_worker(_task) -> dict:
    import torch
    from threadpoolctl import threadpool_info

    return {"blas": {pool["num_threads"] for pool in threadpool_info()}, "torch": torch.get_num_threads()}


def test_every_worker_runs_one_thread_per_library():
    from bench.executors import worker_init
    from bench.workers import IsolatingPool

    pool = IsolatingPool(_threads_in_worker, 2, split=lambda task: [task], on_failure=lambda task, reason: reason,
                         time_limit=lambda task: 60, initializer=worker_init)  # fmt: skip
    for threads in pool.map_unordered([0, 1]):
        assert threads == {"blas": {1}, "torch": 1}


def test_rerun_resumes_without_recomputing(tmp_path):
    sweep(_config(tmp_path, limit=4, codecs=["jpeg"]))
    before = results(tmp_path)
    again = sweep(_config(tmp_path, limit=4, codecs=["jpeg"]))
    assert again.rows_written == 0 and again.rows_already_done == len(before)
    bigger = sweep(_config(tmp_path, limit=4, jobs=2))  # more codecs on the same images: an extension
    after = results(tmp_path)
    assert bigger.rows_written == len(after) - len(before)
    kept = after.merge(before, on=list(KEY), suffixes=("", "_before"))
    assert len(kept) == len(before)
    assert (kept["encode_s"] == kept["encode_s_before"]).all()  # timings identical: not recomputed


def test_parallel_rows_equal_serial_rows(tmp_path):
    sweep(_config(tmp_path / "serial"))
    sweep(_config(tmp_path / "parallel", jobs=2))
    serial, parallel = (results(tmp_path / name)[list(REPRODUCIBLE)] for name in ("serial", "parallel"))
    assert serial.equals(parallel)


def test_bad_images_become_error_rows_and_the_sweep_goes_on(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = next(iter(sorted((Path(__file__).parents[1] / "datasets" / "eurosat-sample" / "Forest").glob("*.jpg"))))
    (data / "good.jpg").write_bytes(good.read_bytes())
    (data / "empty.png").write_bytes(b"")
    (data / "text.jpg").write_bytes(b"not an image")
    Image.fromarray(np.full((3, 500), 7, np.uint8)).save(data / "thin-gray.png")
    summary = sweep(_config(tmp_path / "run", datasets=[f"folder:{data}"], codecs=["jpeg"], limit=None))
    frame = results(tmp_path / "run")
    errors = frame[frame["error"].notna()]
    assert set(errors["image"]) == {"empty.png", "text.jpg"}
    assert errors["error"].str.contains("empty.png|text.jpg").all()
    assert frame[frame["image"] == "good.jpg"]["error"].isna().all()
    thin = frame[frame["image"] == "thin-gray.png"]
    assert thin["error"].isna().all() and thin["ssim"].isna().all() and (thin["width"] == 500).all()
    assert (thin["note"] == "mode L converted to RGB").all()
    assert summary.errors.total() == len(errors) and len(summary.errors) == 2  # one line per unreadable image


def test_codec_failure_becomes_an_error_row(tmp_path, monkeypatch):
    import dataclasses

    from bench import codecs

    def explode(image, quality):
        raise RuntimeError("encoder blew up")

    monkeypatch.setitem(codecs.CODECS, "jpeg", dataclasses.replace(get_codec("jpeg"), encode=explode))
    sweep(_config(tmp_path, codecs=["jpeg"], limit=2))
    frame = results(tmp_path)
    assert frame["error"].str.startswith("encode: RuntimeError: encoder blew up").all()


def test_second_sweep_on_the_same_directory_is_refused(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLocked, match="in use"):
            sweep(_config(tmp_path))


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT count(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _sweep_command(out: Path, codecs: tuple[str, ...], limit: int) -> list[str]:
    return [
        sys.executable, "-m", "bench", "run", "--codecs", ",".join(codecs), "--limit", str(limit),
        "--jobs", "2", "--out", str(out), "--no-progress", "--no-report",
    ]  # fmt: skip


def _kill_after(command: list[str], db: Path, rows: int) -> None:
    """Start `command`, SIGKILL it and its workers once `db` holds at least `rows` rows."""
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(db) < rows and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"sweep ended before it could be killed: {process.stderr.read().decode()}"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_sigkill_mid_sweep_then_resume_loses_and_duplicates_nothing(tmp_path):
    codecs, limit = ("jpeg", "webp", "bpg"), 40
    command = _sweep_command(tmp_path, codecs, limit)
    _kill_after(command, tmp_path / DB_NAME, 200)
    survived = results(tmp_path)
    assert 0 < len(survived) < _expected_rows(limit, codecs)

    subprocess.run(command, check=True, capture_output=True)
    final = results(tmp_path)
    assert len(final) == _expected_rows(limit, codecs)
    assert not final.duplicated(list(KEY)).any()
    kept = final.merge(survived, on=list(KEY), suffixes=("", "_before"))
    assert len(kept) == len(survived) and (kept["encode_s"] == kept["encode_s_before"]).all()
    with sqlite3.connect(tmp_path / DB_NAME) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_repeated_kills_end_equal_to_an_uninterrupted_run(tmp_path):
    codecs, limit, kills = ("jpeg", "webp", "jpeg2000", "bpg"), 60, 8
    total = _expected_rows(limit, codecs)
    rng = np.random.default_rng(0)
    killed, survived = tmp_path / "killed", 0
    for _ in range(kills):
        done = _count(killed / DB_NAME)
        if done >= total - 100:
            break
        _kill_after(_sweep_command(killed, codecs, limit), killed / DB_NAME, int(rng.integers(done + 1, total - 50)))
        survived += 1
    print(f"\nkills survived: {survived}, rows expected: {total}")
    assert survived >= 3
    subprocess.run(_sweep_command(killed, codecs, limit), check=True, capture_output=True)
    subprocess.run(_sweep_command(tmp_path / "clean", codecs, limit), check=True, capture_output=True)
    columns = list(REPRODUCIBLE)
    assert results(killed)[columns].equals(results(tmp_path / "clean")[columns])
    with sqlite3.connect(killed / DB_NAME) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _start_and_wait(command: list[str], db: Path, rows: int) -> subprocess.Popen:
    """Start `command` in this test's process group (as a shell or CI runner would) once `db` has `rows` rows."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _count(db) < rows and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"sweep ended before it could be signalled: {process.stderr.read()}"
    return process


def _kill_parent_only(command: list[str], db: Path, rows: int) -> None:
    """SIGKILL the sweep's own process alone, as `kill -9 PID`, `timeout -s KILL` or the OOM killer do."""
    import psutil

    process = _start_and_wait(command, db, rows)
    workers = psutil.Process(process.pid).children(recursive=True)
    assert workers, "the sweep had no worker processes"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived their parent: {[p.pid for p in alive]}"


def test_killing_only_the_parent_leaves_no_worker_and_no_lock(tmp_path):
    codecs, limit = ("jpeg", "webp", "bpg"), 30
    command = _sweep_command(tmp_path, codecs, limit)
    _kill_parent_only(command, tmp_path / DB_NAME, 100)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)  # not "in use": the lock went too
    assert done.returncode == 0, done.stderr
    final = results(tmp_path)
    assert len(final) == _expected_rows(limit, codecs) and not final.duplicated(list(KEY)).any()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_sigterm_and_sigint_stop_promptly_keep_rows_and_write_tables(tmp_path, signum):
    command = _sweep_command(tmp_path, ("jpeg", "webp", "bpg"), 60)
    process = _start_and_wait(command, tmp_path / DB_NAME, 100)
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if not line.startswith("warning:")] == [
        next(line for line in stderr.splitlines() if line.startswith(f"interrupted by {signal.Signals(signum).name}"))]
    stored = _count(tmp_path / DB_NAME)
    assert 0 < stored == len(pd.read_csv(tmp_path / "results.csv"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_tables_are_written_stops_with_one_line_and_keeps_every_row(tmp_path, signum, capsys,
                                                                                        monkeypatch):  # fmt: skip
    from bench import tables
    from bench.cli import main

    def signalled(*args, **kwargs):  # the signal arrives while the tables are written
        os.kill(os.getpid(), signum)
        time.sleep(10)  # never reached: the handler raises at once

    monkeypatch.setattr(tables, "write_tables", signalled)
    argv = ["run", "--codecs", "jpeg,webp", "--limit", "4", "--jobs", "1", "--out", str(tmp_path), "--no-progress",
            "--no-classify"]  # fmt: skip
    assert main(argv) == 128 + signum
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == (f"interrupted by {signal.Signals(signum).name}: every finished row is stored in "
                                    f"{tmp_path / DB_NAME} (its tables: python -m bench report {tmp_path}); run the "
                                    "same command again to resume")  # fmt: skip
    written = next(line for line in out.splitlines() if "rows written" in line)
    assert _count(tmp_path / DB_NAME) == int(written.split()[0]) > 0


def test_ctrl_c_during_report_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from bench import tables
    from bench.cli import main

    sweep(SweepConfig(datasets=["eurosat"], codecs=["jpeg"], out=tmp_path, limit=2, jobs=1, progress=False,
                      classify=False))  # fmt: skip
    monkeypatch.setattr(tables, "write_tables", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["report", str(tmp_path), "--no-progress"]) == 130
    assert capsys.readouterr().err.splitlines()[-1].startswith("interrupted by SIGINT: every file written before is")


def test_no_report_comes_between_a_sweep_s_rows_and_its_tables(tmp_path, capsys):
    from bench.cli import main
    from bench.runner import run_lock

    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path, limit=2,
                         jobs=1, progress=False, classify=False)  # fmt: skip
    refused = []
    sweep(config, then=lambda summary: refused.append(main(["report", str(tmp_path), "--no-progress"])))
    assert refused == [3] and "is in use by another bench run" in capsys.readouterr().err
    with run_lock(tmp_path):  # and none while a run holds the directory
        assert main(["report", str(tmp_path), "--no-progress"]) == 3
    assert main(["report", str(tmp_path), "--no-progress"]) == 0


@pytest.mark.slow
def test_five_parent_only_kills_at_random_moments_end_equal_to_an_uninterrupted_run(tmp_path):
    codecs, limit = ("jpeg", "webp", "jpeg2000", "bpg"), 60
    rng = np.random.default_rng(1)
    killed = tmp_path / "killed"
    for _ in range(5):
        done = _count(killed / DB_NAME)
        _kill_parent_only(_sweep_command(killed, codecs, limit), killed / DB_NAME, int(rng.integers(done + 1, done + 150)))
    subprocess.run(_sweep_command(killed, codecs, limit), check=True, capture_output=True)
    subprocess.run(_sweep_command(tmp_path / "clean", codecs, limit), check=True, capture_output=True)
    columns = list(REPRODUCIBLE)
    assert results(killed)[columns].equals(results(tmp_path / "clean")[columns])


def test_an_image_replaced_between_runs_is_measured_again(tmp_path):
    from bench.datasets.eurosat import SAMPLE_DIR

    data = tmp_path / "data"
    data.mkdir()
    tiles = sorted((SAMPLE_DIR / "River").glob("*.jpg"))[:3]
    for tile in tiles:
        (data / tile.name).write_bytes(tile.read_bytes())
    config = SweepConfig(datasets=[f"folder:{data}"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path / "run",
                         jobs=1, progress=False)  # fmt: skip
    sweep(config)
    before = results(tmp_path / "run").set_index("image")
    (data / tiles[0].name).write_bytes(sorted((SAMPLE_DIR / "Forest").glob("*.jpg"))[0].read_bytes())
    again = sweep(config)
    after = results(tmp_path / "run").set_index("image")
    assert again.rows_forgotten == 1 and again.rows_written == 1 and again.rows_already_done == 2
    assert after.loc[tiles[0].name, "image_sha256"] != before.loc[tiles[0].name, "image_sha256"]
    assert after.loc[tiles[0].name, "bytes"] != before.loc[tiles[0].name, "bytes"]
    assert (after.loc[[t.name for t in tiles[1:]], "encode_s"] == before.loc[[t.name for t in tiles[1:]], "encode_s"]).all()


def test_a_run_resumed_after_a_codec_changed_is_refused(tmp_path, monkeypatch):
    import dataclasses

    from bench import codecs
    from bench.runner import RunMismatch

    sweep(_config(tmp_path, codecs=["jpeg", "webp"], limit=2))
    rows = len(results(tmp_path))
    changed = dataclasses.replace(get_codec("jpeg"), library_version=lambda: "libjpeg-turbo 99")
    monkeypatch.setitem(codecs.CODECS, "jpeg", changed)
    with pytest.raises(RunMismatch, match=r"rows of jpeg [0-9]+ made by .*; it is now libjpeg-turbo 99: use another --out"):
        sweep(_config(tmp_path, codecs=["jpeg"], limit=2, qualities={"jpeg": (51.0,)}))
    assert len(results(tmp_path)) == rows  # nothing blended in
    sweep(_config(tmp_path, codecs=["webp"], limit=2, qualities={"webp": (51.0,)}))  # the unchanged codec resumes
    assert len(results(tmp_path)) == rows + 2


def test_a_resume_measures_failed_rows_again(tmp_path, monkeypatch):
    from bench import runner

    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path, limit=3,
                         jobs=1, progress=False, classify=False, max_pixels=1000)  # 64×64 tiles are over it  # fmt: skip
    sweep(config)
    assert results(tmp_path)["error"].str.contains("pixel").all()
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):  # a resume stopped before it measures
        patch.setattr(runner, "execute", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
        sweep(dataclasses.replace(config, max_pixels=DEFAULT_MAX_PIXELS))
    assert len(results(tmp_path)) == 3 and results(tmp_path)["error"].str.contains("pixel").all()  # still on record
    kept = sweep(dataclasses.replace(config, max_pixels=DEFAULT_MAX_PIXELS, retry_failed=False))  # --keep-failed
    assert kept.rows_retried == 0 and kept.rows_already_done == 3 and results(tmp_path)["error"].notna().all()
    summary = sweep(dataclasses.replace(config, max_pixels=DEFAULT_MAX_PIXELS))  # as the error message advises
    assert summary.rows_retried == 3 and summary.rows_written == 3 and summary.rows_already_done == 0
    assert results(tmp_path)["error"].isna().all() and "3 failed rows measured again" in summary.lines()[-1]
    assert sweep(config).rows_already_done == 3  # rows that succeeded are kept, whatever the new limits


def test_rows_that_predate_the_seen_record_are_flagged_then_filled_by_a_resume(tmp_path, capsys):
    from bench.cli import main

    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path, limit=4,
                         jobs=1, progress=False, classify=False)  # fmt: skip
    sweep(config)
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # as an older bench left them
        db.execute("UPDATE results SET seen = NULL WHERE image IN (SELECT image FROM results LIMIT 2)")
    assert main(["report", str(tmp_path), "--no-progress", "--bootstrap", "0"]) == 0
    assert "eurosat: 2 row(s) predate the record of which images" in capsys.readouterr().err
    assert aggregate(results(tmp_path))["n_images"].tolist() == [2]  # unknown: not counted as unseen
    sweep(config)
    assert results(tmp_path)["seen"].notna().all() and aggregate(results(tmp_path))["n_images"].tolist() == [4]


def test_a_run_of_seen_images_only_says_why_it_has_no_means(tmp_path, capsys):
    from bench.cli import main

    config = SweepConfig(datasets=["eurosat"], codecs=["jpeg"], qualities={"jpeg": (50.0,)}, out=tmp_path, limit=2,
                         jobs=1, progress=False, classify=False)  # fmt: skip
    sweep(config)
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # the shipped sample is test tiles only: make them training tiles
        db.execute("UPDATE results SET seen = 1")
    assert main(["report", str(tmp_path), "--no-progress", "--bootstrap", "0"]) == 0
    warning = "eurosat: every image is one a committed model trained or was selected on, so no mean or score is given"
    assert warning in capsys.readouterr().err and warning in (tmp_path / "report.md").read_text()
    assert main(["report", str(tmp_path), "--no-progress", "--bootstrap", "0", "--include-seen"]) == 0
    assert warning not in capsys.readouterr().err


def test_a_real_terminal_hangup_still_writes_the_tables(tmp_path):
    """After a hangup every write to the terminal fails (EIO): the sweep must still stop cleanly with its tables."""
    import pty

    command = _sweep_command(tmp_path, ("jpeg", "webp", "bpg"), 60)
    primary, terminal = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    os.close(terminal)
    os.set_blocking(primary, False)
    deadline = time.monotonic() + 120
    while _count(tmp_path / DB_NAME) < 100 and process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            os.read(primary, 65536)  # keep the terminal's buffer from filling
        time.sleep(0.05)
    os.close(primary)  # the terminal is gone: writes to it fail from now on
    os.kill(process.pid, signal.SIGHUP)
    assert process.wait(timeout=60) == 128 + signal.SIGHUP
    assert _count(tmp_path / DB_NAME) == len(pd.read_csv(tmp_path / "results.csv")) > 0
