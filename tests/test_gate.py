import json
import sqlite3

import pytest

from bench.cli import main
from bench.store import DB_NAME


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,50,90", "--limit", "6", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--no-report"]) == 0  # fmt: skip
    return out


@pytest.fixture
def baseline(run_dir, tmp_path):
    path = tmp_path / "baseline.json"
    assert main(["baseline", str(run_dir), "--out", str(path)]) == 0
    return path


def test_unchanged_run_passes(run_dir, baseline, capsys):
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 0
    assert "0 regression(s)" in capsys.readouterr().out


def test_worse_rate_is_a_regression_shown_in_the_diff(run_dir, baseline, tmp_path, capsys):
    worse = tmp_path / "worse"
    worse.mkdir()
    (worse / DB_NAME).write_bytes((run_dir / DB_NAME).read_bytes())
    with sqlite3.connect(worse / DB_NAME) as db:
        db.execute("UPDATE results SET bytes = bytes * 1.1, bpp = bpp * 1.1 WHERE codec = 'webp'")
    assert main(["check", str(worse), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "webp" in out and "bd_rate_psnr vs jpeg" in out
    assert main(["check", str(worse), "--baseline", str(baseline), "--tolerance", "bpp=0.2",
                 "--tolerance", "bd_rate_psnr=50"]) == 0  # fmt: skip


def test_version_change_is_shown(run_dir, baseline, capsys):
    document = json.loads(baseline.read_text())
    document["codec_versions"]["webp"] = "imagecodecs 1999.1.1"
    baseline.write_text(json.dumps(document))
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 0
    assert "note: webp library changed: imagecodecs 1999.1.1 →" in capsys.readouterr().out


def test_codec_absent_from_the_run_is_a_usage_error(run_dir, baseline, capsys):
    document = json.loads(baseline.read_text())
    document["points"].append({**document["points"][0], "codec": "avif"})
    baseline.write_text(json.dumps(document))
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 2
    assert "avif of the baseline are absent" in capsys.readouterr().err


def test_missing_baseline_is_a_usage_error(run_dir, tmp_path, capsys):
    assert main(["check", str(run_dir), "--baseline", str(tmp_path / "none.json")]) == 2
    assert "no baseline at" in capsys.readouterr().err


def test_baseline_for_another_setup_is_refused(run_dir, baseline, capsys):
    document = json.loads(baseline.read_text())
    document["limit"] = 500
    baseline.write_text(json.dumps(document))
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 2
    assert "another run setup" in capsys.readouterr().err


def test_default_baseline_name_follows_the_run(run_dir):
    from bench.gate import default_baseline

    assert default_baseline(run_dir).name == "eurosat-sample-limit6.json"


def test_committed_baseline_matches_the_default_run():
    from bench.gate import BASELINE_DIR

    document = json.loads((BASELINE_DIR / "eurosat-sample.json").read_text())
    assert document["dataset"] == "eurosat" and document["source"] == "sample" and document["limit"] is None
    assert {"jpeg", "jpeg2000", "webp", "bpg", "avif", "jpegxl"} <= {p["codec"] for p in document["points"]}
