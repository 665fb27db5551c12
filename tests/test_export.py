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



def _reference(path, results: dict[str, str] | None = None, name: str = "paper") -> str:
    """A reference file at `path`, `results` replacing good ones: each a JSON text (NaN, Infinity as Python writes)."""
    good = {"bpp": "[0.5, 1.0, 2.0]", "psnr-rgb": "[30, 35, 40]", "ms-ssim-rgb": "[0.9, 0.95, 0.98]"}
    results = {**good, **(results or {})}
    body = ", ".join(f'"{key}": {values}' for key, values in results.items())
    path.write_text(f'{{"name": "{name}", "results": {{{body}}}}}')
    return str(path)


def test_every_reference_value_must_be_a_plausible_number_or_the_file_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify", "--no-report"]) == 0  # fmt: skip
    report = ["report", str(out), "--no-progress", "--bootstrap", "0", "--reference"]
    for values, shown in (({"psnr-rgb": "[30, 1e308, 40]"}, "psnr-rgb[1] = 1e+308 is not a PSNR in (0, 100] dB"),
                          ({"psnr-rgb": "[30, 35, 1e308]"}, "psnr-rgb[2] = 1e+308"),
                          ({"psnr-rgb": "[NaN, NaN, NaN]"}, "psnr-rgb[0] = NaN"),
                          ({"psnr-rgb": "[30, Infinity, 40]"}, "psnr-rgb[1] = Infinity"),
                          ({"psnr-rgb": "[-3, 35, 40]"}, "psnr-rgb[0] = -3"),
                          ({"psnr-rgb": "[null, null, null]"}, "'psnr-rgb' has no value"),
                          ({"psnr-rgb": '"30, 35, 40"'}, "'psnr-rgb' must be a list of numbers"),
                          ({"bpp": "[0.5, 1.0, 1e300]"}, "bpp[2] = 1e+300 is not a rate in (0, 64] bits per pixel"),
                          ({"bpp": "[true, 1, 2]"}, "bpp[0] = true"), ({"bpp": '["0.5", 1, 2]'}, 'bpp[0] = "0.5"'),
                          ({"bpp": "[0.5, null, 2]"}, "bpp[1] = null"), ({"bpp": "[0, 1, 2]"}, "bpp[0] = 0"),
                          ({"ms-ssim-rgb": "[0.9, 1.5, 0.98]"}, "ms-ssim-rgb[1] = 1.5 is not an MS-SSIM")):  # fmt: skip
        reference = _reference(tmp_path / "bad.json", values)
        capsys.readouterr()
        assert main([*report, reference]) == 2, values
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--reference {reference}: {shown}" in err, (values, err)
    for values in ({}, {"psnr-rgb": "[30, null, 40]"}):  # null: a point without that value, as `export` writes it
        assert main([*report, _reference(tmp_path / "good.json", values)]) == 0
        assert "Warning" not in capsys.readouterr().err


def test_two_references_of_one_name_in_one_dataset_are_refused_naming_both(tmp_path, capsys):
    import pandas as pd
    import pytest

    from bench.references import ReferenceError, join

    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify", "--no-report"]) == 0  # fmt: skip
    first, second = _reference(tmp_path / "vtm.json", name="VTM"), _reference(tmp_path / "vtm-2.json", name="VTM")
    report = ["report", str(out), "--no-progress", "--bootstrap", "0"]
    capsys.readouterr()
    for pair in ((first, second), (f"eurosat={first}", second), (first, f"eurosat={second}")):
        assert main([*report, *(f"--reference={r}" for r in pair)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and pair[0] in err and pair[1] in err and "merge into one curve" in err, err
    other = _reference(tmp_path / "bpg.json", name="BPG")
    assert main([*report, f"--reference={first}", f"--reference={other}"]) == 0
    measured = pd.DataFrame({"dataset": ["eurosat"], "codec": ["VTM (external)"], "quality": [1.0]})  # a codec so named
    with pytest.raises(ReferenceError, match="'VTM \\(external\\)' is also a codec measured in this run"):
        join(measured, (first,))


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
