"""Codecs defined by external commands (TOML): the shipped examples, swept locally and on Dask, reported without them."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
needs = pytest.mark.skipif(not (shutil.which("cjpeg") and shutil.which("djpeg")),
                           reason="needs cjpeg/djpeg (Debian: apt-get install libjpeg-turbo-progs)")  # fmt: skip


@needs
def test_the_cjpeg_example_is_a_codec_whose_rate_is_the_tools_file(tmp_path, tiles):
    from bench.codecs.external import codecs_from_file

    (codec,) = codecs_from_file(EXAMPLES / "cjpeg.toml")
    data = codec.encode(tiles[0], 50)
    from PIL import Image

    Image.fromarray(tiles[0]).save(tmp_path / "in.ppm")
    subprocess.run(["cjpeg", "-quality", "50", "-outfile", str(tmp_path / "direct.jpg"), str(tmp_path / "in.ppm")],
                   check=True)  # fmt: skip
    assert data == (tmp_path / "direct.jpg").read_bytes()
    decoded = codec.decode(data)
    assert decoded.shape == tiles[0].shape and np.abs(decoded.astype(int) - tiles[0]).mean() < 10
    assert 0 < codec.header_size(data) < len(data)  # parsed as JPEG


@needs
def test_a_codec_file_is_listed_swept_on_two_workers_and_reported_without_it(tmp_path, capsys):
    codec_file = tmp_path / "mine.toml"
    codec_file.write_text((EXAMPLES / "cjpeg.toml").read_text())
    assert main(["codecs", "--codec-file", str(codec_file)]) == 0
    assert "cjpeg" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "--codec-file", str(codec_file), "--codecs", "jpeg,cjpeg", "--limit", "4", "--jobs", "2",
                 "--out", str(out), "--no-progress", "--no-classify"]) == 0  # fmt: skip
    frame = pd.read_csv(out / "results.csv")
    assert (frame["codec"] == "cjpeg").sum() == 4 * 9 and frame["error"].isna().all()
    codec_file.unlink()
    assert main(["report", str(out)]) == 0
    assert "libjpeg-turbo cjpeg/djpeg" in (out / "report.md").read_text()


@needs
def test_a_codec_file_runs_on_dask_workers(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    from bench import plugins
    from bench.runner import SweepConfig, sweep
    from bench.tables import results

    spec = str(EXAMPLES / "cjpeg.toml")
    plugins.load([spec])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep(SweepConfig(datasets=["eurosat"], codecs=["cjpeg"], qualities={"cjpeg": (50.0,)}, out=tmp_path / "d",
                          limit=3, progress=False, classify=False, scheduler=cluster.scheduler_address,
                          plugins=(spec,)))  # fmt: skip
    assert len(results(tmp_path / "d")) == 3 and results(tmp_path / "d")["error"].isna().all()


SLEEP = "python3 -c 'import time; time.sleep({})'"  # each test's own duration: a sleep no other process runs


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_a_signal_to_the_sweep_s_process_group_ends_what_codec_commands_started(signum, tmp_path):
    """A terminal hangup or ``kill -KILL -PGID`` (a CI cancel) ends the sweep, its workers, their commands and the
    commands' own children."""
    marker = {signal.SIGHUP: "41.74", signal.SIGKILL: "41.75"}[signum]
    spec = (EXAMPLES / "cjpeg.toml").read_text()
    command = f'sh -c \\"{SLEEP.format(marker)} & {SLEEP.format(marker)}\\" {{input}} {{output}} {{quality}}'
    (tmp_path / "hang.toml").write_text(spec.replace(spec.split("encode = ")[1].split("\n")[0], f'"{command}"'))
    argv = [sys.executable, "-m", "bench", "run", "--codec-file", str(tmp_path / "hang.toml"), "--codecs", "cjpeg",
            "--qualities", "50", "--limit", "1", "--jobs", "1", "--out", str(tmp_path / "run"), "--no-progress",
            "--no-classify", "--time-limit", "60"]  # fmt: skip
    sweep = subprocess.Popen(argv, cwd=Path(__file__).resolve().parents[1], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(300):  # both sleeps running: the command's child and its own child
            if len(_running(marker)) >= 2:
                break
            time.sleep(0.1)
        assert len(_running(marker)) >= 2, "the codec command never started"
        os.killpg(sweep.pid, signum)
        sweep.wait(timeout=30)
        for _ in range(50):
            if not _running(marker):
                break
            time.sleep(0.1)
        assert not _running(marker), f"orphaned codec commands: {_running(marker)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
        for pid in _running(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _running(marker: str) -> list[str]:
    """Processes sleeping `marker` seconds, shells included."""
    return subprocess.run(["pgrep", "-f", f"time.sleep.{marker}"], capture_output=True, text=True).stdout.split()


def test_a_malformed_codec_file_is_a_clear_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[codecs.x]\nencode = "tool {input}"\n')
    assert main(["codecs", "--codec-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "not a usable codec file" in err and err.count("\n") == 1


def test_a_missing_tool_makes_the_codec_unavailable_with_what_it_looked_for(tmp_path):
    from bench.codecs.external import codecs_from_file

    spec = (EXAMPLES / "cjpeg.toml").read_text().replace("cjpeg -quality", "no-such-encoder -quality")
    (tmp_path / "x.toml").write_text(spec)
    (codec,) = codecs_from_file(tmp_path / "x.toml")
    assert not codec.available and "no-such-encoder not on PATH" in codec.unavailable_reason


@pytest.mark.parametrize(("command", "error"), [
    (f"{SLEEP.format(41.71)} {{input}} {{output}} {{quality}}", "timeout"),  # the worker's child, hung
    (f'sh -c "{SLEEP.format(41.72)} & {SLEEP.format(41.72)}" {{input}} {{output}} {{quality}}', "timeout"),  # and its child
    (f'sh -c "{SLEEP.format(41.73)} >/dev/null 2>&1 & cjpeg -quality {{quality}} -outfile {{output}} {{input}}"', None),
], ids=["hung", "hung-with-a-child", "done-but-left-a-child"])  # fmt: skip
def test_what_a_codec_command_started_ends_with_its_worker(command, error, tmp_path):
    """Past the time limit or after the sweep, nothing an external command started runs on, its own children too."""
    spec = (EXAMPLES / "cjpeg.toml").read_text()
    spec = spec.replace(spec.split("encode = ")[1].split("\n")[0], '"' + command.replace('"', '\\"') + '"')
    (tmp_path / "sleeper.toml").write_text(spec)
    out = tmp_path / "run"
    assert main(["run", "--codec-file", str(tmp_path / "sleeper.toml"), "--codecs", "cjpeg", "--qualities", "50",
                 "--limit", "1", "--jobs", "1", "--time-limit", "2", "--out", str(out), "--no-progress", "--no-classify"]) == 0  # fmt: skip
    errors = pd.read_csv(out / "results.csv")["error"]
    assert errors.str.startswith("timeout").all() if error else errors.isna().all()
    marker = command.split("time.sleep(")[1].split(")")[0]
    left = subprocess.run(["pgrep", "-f", f"time.sleep.{marker}"], capture_output=True, text=True).stdout.split()
    assert not left, f"orphaned codec commands: {left}"
