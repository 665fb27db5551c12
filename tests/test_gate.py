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
    from bench.run import Run

    assert default_baseline(Run(run_dir)).name == "eurosat-sample-limit6.json"


def test_committed_baseline_matches_the_default_run():
    from bench.gate import BASELINE_DIR

    document = json.loads((BASELINE_DIR / "eurosat-sample.json").read_text())
    assert document["dataset"] == "eurosat" and document["source"] == "sample" and document["limit"] is None
    assert {"jpeg", "jpeg2000", "webp", "bpg", "avif", "jpegxl"} <= {p["codec"] for p in document["points"]}


def _copy(run_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / DB_NAME).write_bytes((run_dir / DB_NAME).read_bytes())
    return copy


def test_crash_rows_at_a_point_are_a_regression(run_dir, baseline, tmp_path, capsys):
    copy = _copy(run_dir, tmp_path)
    with sqlite3.connect(copy / DB_NAME) as db:
        db.execute("UPDATE results SET error = 'crash: worker process died', bytes = NULL, bpp = NULL, psnr = NULL,"
                   " ssim = NULL WHERE codec = 'webp' AND quality = 50")  # fmt: skip
    assert main(["check", str(copy), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "n_images" in out and "n_errors" in out and "REGRESSION" in out


def test_one_image_failing_at_every_quality_is_a_regression(run_dir, baseline, tmp_path, capsys):
    copy = _copy(run_dir, tmp_path)
    with sqlite3.connect(copy / DB_NAME) as db:
        image = db.execute("SELECT image FROM results ORDER BY image LIMIT 1").fetchone()[0]
        db.execute("UPDATE results SET error = 'decode: broken', psnr = NULL WHERE codec = 'webp' AND image = ?", (image,))
    assert main(["check", str(copy), "--baseline", str(baseline)]) == 1
    assert "regression(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda text: "{not json", "not a readable baseline"),
        (lambda text: "[]", "not a JSON object"),
        (lambda text: text.replace('"psnr": ', '"psnr": NaN, "x": ', 1), "psnr = nan is not a finite number"),
        (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "points"}), "missing points"),
        (lambda text: json.dumps({**json.loads(text), "points": []}), "points must be a non-empty list"),
        (lambda text: json.dumps({**json.loads(text), "bd": None}), "bd must be a list"),
        (lambda text: text.replace('"quality": ', '"quality": null, "x": ', 1), "needs a codec name and a finite quality"),
        (lambda text: text.replace('"n_images": ', '"n_images": -1, "x": ', 1), "n_images = -1 is negative"),
    ],
    ids=["garbage", "array", "nan", "no-points", "empty-points", "null-bd", "null-quality", "negative-count"],
)  # fmt: skip
def test_a_malformed_baseline_is_a_usage_error_not_a_pass_or_a_traceback(run_dir, baseline, capsys, mangle, message):
    baseline.write_text(mangle(baseline.read_text()))
    assert main(["check", str(run_dir), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bd_rate_move_inside_the_runs_bootstrap_noise_is_not_a_regression(run_dir, baseline, capsys):
    document = json.loads(baseline.read_text())
    row = next(r for r in document["bd"] if r["codec"] == "webp")
    row["bd_rate_psnr"] -= 1.0  # past the 0.25-point tolerance, well inside six images' sampling noise
    baseline.write_text(json.dumps(document))
    assert main(["check", str(run_dir), "--baseline", str(baseline), "--verbose"]) == 0
    assert "within noise" in capsys.readouterr().out


def test_the_committed_baseline_is_replaced_only_with_force(run_dir, tmp_path, monkeypatch, capsys):
    from bench import gate

    committed = tmp_path / "committed"
    committed.mkdir()
    monkeypatch.setattr(gate, "BASELINE_DIR", committed)
    monkeypatch.setattr(gate, "IN_CHECKOUT", True)
    assert main(["baseline", str(run_dir)]) == 0  # none committed yet: written
    (path,) = committed.glob("*.json")
    before = path.read_text()
    path.write_text(before.replace('"name"', '"name_"', 1))  # tell the files apart
    assert main(["baseline", str(run_dir)]) == 2
    assert "is a committed baseline; add --force to replace it" in capsys.readouterr().err
    assert '"name_"' in path.read_text()
    assert main(["baseline", str(run_dir), "--force"]) == 0 and path.read_text() == before


@pytest.mark.parametrize("amount", ["nan", "-1", "inf"])
def test_a_tolerance_must_be_a_finite_amount_not_a_switch(run_dir, baseline, capsys, amount):
    assert main(["check", str(run_dir), "--baseline", str(baseline), "--tolerance", f"psnr={amount}"]) == 2
    assert f"--tolerance psnr={amount}: must be a finite number ≥ 0" in capsys.readouterr().err
