import json
import subprocess
import sys

from bench.cli import main


def test_compressai_export_is_drawn_by_compressais_own_plot(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,50,90", "--limit", "4", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--no-classify"]) == 0  # fmt: skip
    assert main(["export", str(out), "--format", "compressai", "--out", str(tmp_path / "export")]) == 0
    files = sorted((tmp_path / "export").rglob("*.json"))
    assert [f.name for f in files] == ["jpeg.json", "webp.json"]
    document = json.loads(files[0].read_text())
    assert document["name"] == "jpeg" and len(document["results"]["bpp"]) == len(document["results"]["psnr-rgb"]) == 3
    assert "ms-ssim-rgb" not in document["results"]  # undefined on 64×64 tiles: left out, not NaN
    assert "bd" not in document  # the anchor
    webp = json.loads(files[1].read_text())["bd"]
    assert webp["anchor"] == "jpeg" and set(webp) == {"anchor", "bpp", "bpp_payload"}
    psnr = webp["bpp"]["psnr"]
    low, high = psnr["bd_rate_ci95"]
    assert low <= psnr["bd_rate_pct"] <= high and len(psnr["bd_quality_ci95"]) == 2
    plot = ("import sys\nfrom bench.codecs.compressai_compat import import_compressai\nimport_compressai()\n"
            "import matplotlib\nmatplotlib.use('Agg')\nfrom compressai.utils.plot.__main__ import main\nmain(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", plot, "--results-file", *map(str, files), "-o", str(tmp_path / "rd.png")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "rd.png").stat().st_size > 1000


def test_a_published_reference_curve_is_drawn_and_compared_but_never_a_verdict(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,30,50,70,90", "--limit", "6", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--no-classify"]) == 0  # fmt: skip
    assert main(["export", str(out), "--out", str(tmp_path / "export")]) == 0
    published = json.loads((tmp_path / "export" / "eurosat" / "webp.json").read_text())
    published["name"] = "webp-paper"
    (tmp_path / "paper.json").write_text(json.dumps(published))
    assert main(["report", str(out), "--no-progress", "--reference", f"eurosat={tmp_path / 'paper.json'}"]) == 0
    bd = pd.read_csv(out / "bd.csv")
    mine = bd[(bd["codec"] == "webp") & (bd["rate"] == "bpp") & (bd["quality_axis"] == "psnr")].iloc[0]
    theirs = bd[(bd["codec"] == "webp-paper (external)") & (bd["rate"] == "bpp") & (bd["quality_axis"] == "psnr")].iloc[0]
    assert theirs["bd_rate_pct"] == mine["bd_rate_pct"] and pd.isna(theirs["bd_rate_low"])  # same curve, no images
    assert "has no values in this view" in bd.loc[(bd["codec"] == "webp-paper (external)") & (bd["rate"] == "bpp_payload"), "note_rate"].iloc[0]
    report = (out / "report.md").read_text()
    verdicts = report.split("### Bjøntegaard deltas")[0]
    assert "webp-paper (external)" in report and "webp-paper" not in verdicts  # best-codec lines rest on this run's images
    from bench.reports.plots import rd_figure
    from bench.run import Run

    run = Run(out, references=(str(tmp_path / "paper.json"),))
    axes = rd_figure(run.curves[run.curves["dataset"] == "eurosat"]).axes[0]
    styles = {container.get_label(): container.lines[0].get_linestyle() for container in axes.containers}
    assert styles == {"jpeg": "-", "webp": "-", "webp-paper (external)": ":"}


def test_a_bad_reference_file_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify", "--no-report"]) == 0  # fmt: skip
    (tmp_path / "bad.json").write_text('{"name": "x", "results": {"bpp": [1, 2]}}')
    (tmp_path / "empty.json").write_text('{"name": "x", "results": {"bpp": [], "psnr-rgb": []}}')
    capsys.readouterr()
    for reference, message in ((tmp_path / "bad.json", "needs non-empty lists 'bpp' and 'psnr-rgb'"),
                               (tmp_path / "empty.json", "needs non-empty lists"), ("eurosat=", "no file named"),
                               (tmp_path, "unreadable (Is a directory)"),
                               (tmp_path / "none.json", "no such file"), (f"kodak={tmp_path / 'bad.json'}", "")):  # fmt: skip
        assert main(["report", str(out), "--no-progress", "--reference", str(reference)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_export_checks_its_anchor_and_skips_points_without_a_rate(tmp_path, capsys):
    import sqlite3

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "50", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify", "--no-report"]) == 0  # fmt: skip
    assert main(["export", str(out), "--anchor", "nosuch"]) == 2
    assert "--anchor 'nosuch': not in this run" in capsys.readouterr().err
    with sqlite3.connect(out / "results.sqlite") as db:  # every webp row failed: no point to export
        db.execute("UPDATE results SET error = 'encode: broken', bytes = NULL, bpp = NULL, psnr = NULL WHERE codec = 'webp'")
    assert main(["export", str(out)]) == 0
    assert [p.name for p in (out / "export" / "compressai" / "eurosat").iterdir()] == ["jpeg.json"]
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("UPDATE results SET error = 'encode: broken', bytes = NULL, bpp = NULL, psnr = NULL")
    assert main(["export", str(out), "--out", str(tmp_path / "none")]) == 2
    assert "no codec has a measured point to export" in capsys.readouterr().err


def test_names_from_the_database_cannot_leave_the_export_folder_or_share_a_file(tmp_path):
    import sqlite3

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg,webp,avif", "--qualities", "50", "--limit", "2", "--jobs", "1", "--out",
                 str(out), "--no-progress", "--no-classify"]) == 0  # fmt: skip
    with sqlite3.connect(out / "results.sqlite") as db:  # a database from someone else's run
        db.execute("UPDATE results SET codec = '../../../escaped' WHERE codec = 'webp'")
        db.execute("UPDATE results SET codec = '.._escaped' WHERE codec = 'avif'")
        db.execute("UPDATE results SET dataset = '..'")
    assert main(["export", str(out), "--out", str(tmp_path / "export")]) == 0
    files = sorted(path.relative_to(tmp_path / "export") for path in (tmp_path / "export").rglob("*.json"))
    assert len(files) == 3 and not list(tmp_path.glob("*.json")) and not (tmp_path / "escaped.json").exists()
    assert all(len(path.parts) == 2 and not path.parts[0].startswith(".") for path in files), files
