"""Plug-ins: a codec from a file outside the package, swept on forked and Dask workers, reported without it."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PLUGIN = re.search(r"## Benchmark your own codec.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
"""The README's plug-in example, as written: these tests exercise it."""


def _bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "elsewhere" / "my_codec.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


def test_a_plugin_file_is_listed_swept_on_two_workers_and_reported_without_it(plugin, tmp_path):
    listed = _bench("codecs", "--plugin", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0 and "my-jpeg" in listed.stdout and "Pillow JPEG (a plug-in)" in listed.stdout
    out = tmp_path / "run"
    done = _bench("run", "--plugin", str(plugin), "--codecs", "jpeg,my-jpeg", "--limit", "4", "--jobs", "2",
                  "--out", str(out), "--no-progress", "--no-classify", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out / "results.csv")
    assert (frame["codec"] == "my-jpeg").sum() == 4 * 3 and frame["error"].isna().all()
    plugin.unlink()  # the report needs only the database
    again = _bench("report", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    markdown = (out / "report.md").read_text()
    assert "Pillow JPEG (a plug-in)" in markdown and "my-jpeg" in markdown
    assert set(pd.read_csv(out / "aggregate.csv").query("codec == 'my-jpeg'")["family"]) == {"classical"}


def test_a_plugin_runs_on_dask_workers(plugin, tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    from bench import plugins
    from bench.runner import SweepConfig, sweep
    from bench.tables import results

    plugins.load([str(plugin)])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep(SweepConfig(datasets=["eurosat"], codecs=["my-jpeg"], out=tmp_path / "dask", limit=3, progress=False,
                          classify=False, scheduler=cluster.scheduler_address, plugins=(str(plugin),)))  # fmt: skip
    frame = results(tmp_path / "dask")
    assert len(frame) == 9 and frame["error"].isna().all()


def test_a_plugin_that_fails_to_import_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('my bug')\n")
    done = _bench("codecs", "--plugin", str(broken), cwd=tmp_path)
    assert done.returncode == 2 and "plug-in" in done.stderr and "my bug" in done.stderr and "Traceback" not in done.stderr


def test_a_codec_that_breaks_its_contract_gets_error_rows_not_numbers(tiles):
    import dataclasses

    from bench import metrics
    from bench.codecs import get_codec
    from bench.measure import measure

    jpeg = get_codec("jpeg")
    reference = metrics.prepare(tiles[0])
    text = dataclasses.replace(jpeg, name="text", encode=lambda image, quality: "a string")
    assert measure(text, reference, 50).values == {"error": "encode: TypeError: returned str, not bytes"}
    header = dataclasses.replace(jpeg, name="header", header_size=lambda data: 2 * len(data))
    assert measure(header, reference, 50).values["error"].startswith("header_size: ValueError: ")


def test_a_plugin_cannot_pass_itself_off_as_a_built_in_codec(tmp_path, capsys):
    from bench.cli import main

    plugin = tmp_path / "dup.py"
    plugin.write_text("import dataclasses\nfrom bench.codecs import get_codec, register\n"
                      "register(dataclasses.replace(get_codec('jpeg'), description='not jpeg'))\n")  # fmt: skip
    assert main(["codecs", "--plugin", str(plugin)]) == 2
    assert "codec name 'jpeg' is a built-in codec's" in capsys.readouterr().err
