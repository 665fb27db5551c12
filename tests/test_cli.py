import html
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.datasets.eurosat import SAMPLE_DIR


def test_run_writes_database_tables_and_reports(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--datasets", "eurosat", "--codecs", "jpeg,jpeg2000", "--limit", "5",
                 "--qualities", "jpeg=10,50,90", "--out", str(out), "--jobs", "1", "--no-progress"])  # fmt: skip
    assert code == 0
    for name in ("results.sqlite", "results.csv", "results.parquet", "aggregate.csv", "aggregate.parquet",
                 "report.md", "report.html", "plots/rd-eurosat-psnr-bpp.png"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = pd.read_csv(out / "aggregate.csv")
    assert sorted(summary[summary["codec"] == "jpeg"]["quality"]) == [10, 50, 90]
    assert len(pd.read_parquet(out / "results.parquet")) == 5 * (3 + 10)
    markdown = (out / "report.md").read_text()
    assert "Headline rate" in markdown and "| jpeg2000 |" in markdown and "MS-SSIM undefined" in markdown
    assert "BD-rate (PSNR)" in markdown and "Best codec at" in markdown
    assert markdown.count("](plots/gallery-") == 3 * 3  # 3 images: original, jpeg, jpeg2000
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http" not in page.split("<body>")[1].split("<script>")[0]
    assert "500 images; 5 selected" in capsys.readouterr().out


def test_report_regenerates_from_the_database(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--codecs", "webp", "--limit", "3", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    (out / "report.html").unlink()
    (out / "aggregate.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "aggregate.csv").is_file()


def _outside_code_spans(markdown: str) -> str:
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", markdown)


def test_names_from_data_are_escaped_in_reports(tmp_path):
    data = tmp_path / "ds`<img src=x onerror=alert(3)>|x" / "<b>cls|x</b>"
    data.mkdir(parents=True)
    tile = next(iter(sorted((SAMPLE_DIR / "Forest").glob("*.jpg"))))
    (data / "ok.jpg").write_bytes(tile.read_bytes())
    (data / "<img src=x onerror=alert(1)>|*.jpg").write_bytes(b"garbage")
    (data / "<script>alert(2).png").write_bytes(b"")  # "/" cannot be in a file name
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{data.parent}", "--codecs", "jpeg", "--out", str(out),
                 "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<b>cls" not in page and "<script>alert" not in page
    assert html.escape("<script>alert(2).png") in page
    assert html.escape("<img src=x onerror=alert(1)>") in page
    markdown = (out / "report.md").read_text()
    assert "\\<img src=x onerror=alert(1)\\>\\|\\*.jpg" in markdown
    assert not re.search(r"(?<!\\)<(img|b>|script)", _outside_code_spans(markdown))  # inside code spans HTML is text
    assert "``" in markdown  # the path's backtick got a longer fence, not an early end of its code span
    assert "\\<b\\>" not in markdown.split("## Dataset", 1)[1].splitlines()[0]  # no backslashes shown in code


def test_gallery_files_of_similar_names_do_not_collide(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    tiles = sorted((SAMPLE_DIR / "Forest").glob("*.jpg"))[:2]
    (data / "a b.jpg").write_bytes(tiles[0].read_bytes())
    (data / "a-b.jpg").write_bytes(tiles[1].read_bytes())
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{data}", "--codecs", "jpeg", "--qualities", "50", "--out", str(out),
                 "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    pictures = re.findall(r"\]\((plots/gallery-[^)]+)\)", (out / "report.md").read_text())
    assert len(pictures) == 4 and len(set(pictures)) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--codecs", "jpeg,foo"], "unknown codec 'foo'; valid: jpeg, jpeg444"),
        (["run", "--datasets", "eurosad"], "unknown dataset 'eurosad' (did you mean 'eurosat'?); valid: eurosat, kodak"),
        (["run", "--codecs", "jpeg", "--qualities", "webp=1"], "not among --codecs"),
        (["run", "--codecs", "jpeg", "--qualities", "a,b"], "expected numbers"),
        (["report", "/nonexistent/run"], "no results.sqlite"),
        (["datasets", "download", "eurosta"], "not downloadable (did you mean 'eurosat'?)"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_dataset_is_a_usage_error(tmp_path, capsys):
    code = main(["run", "--datasets", "kodak", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert code == 2 and "kodak: no kodak/ folder" in capsys.readouterr().err


def test_codecs_and_datasets_listings(capsys):
    assert main(["codecs"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("jpeg2000", "bpg", "avif", "jpegxl", "sweep"))
    assert main(["datasets"]) == 0
    assert "shipped sample" in capsys.readouterr().out


def test_kodak_from_shared_data_dir(shared_datasets, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--datasets", "kodak", "--data-dir", str(shared_datasets), "--codecs", "jpeg",
                 "--qualities", "75", "--limit", "2", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 2 and frame["ms_ssim"].notna().all() and (frame["width"] * frame["height"] == 768 * 512).all()
    assert (out / "plots" / "rd-kodak-ms_ssim-bpp.png").is_file()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--limit", "-3"], "--limit: '-3': must be ≥ 1"),
        (["--limit", "0"], "--limit: '0': must be ≥ 1"),
        (["--jobs", "-2"], "--jobs: '-2': must be ≥ 0"),
        (["--time-limit", "0"], "--time-limit: '0': must be > 0"),
        (["--time-limit", "nan"], "--time-limit: 'nan': must be > 0"),
        (["--time-limit", "-5"], "--time-limit: '-5': must be > 0"),
        (["--anchor", "nope"], "unknown codec 'nope'"),
        (["--codecs", "jepg"], "unknown codec 'jepg' (did you mean 'jpeg'?); valid: jpeg, jpeg444"),
        (["--datasets", "eurosta"], "unknown dataset 'eurosta' (did you mean 'eurosat'?)"),
        (["--qualities", "jpeg=150"], "jpeg: quality 150 is not a whole number in 1–100"),
        (["--qualities", "webp=-20"], "webp: quality -20 is not a whole number in 0–100"),
        (["--qualities", "nan"], "quality nan"),
        (["--qualities", "cvae=2.5", "--codecs", "cvae"], "cvae: quality 2.5 is not one of"),
        (["--qualities", "jpeg=5", "--qualities", "jpeg=6"], "codec jpeg given twice"),
        (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir: no such directory"),
        (["--seed", "-1"], "--seed: '-1': must be ≥ 0"),
        (["--codecs", ","], "--codecs: ',': an empty list"),
        (["--datasets", ""], "--datasets: '': an empty list"),
        (["--qualities", "jpeg=50,webp=60"], "one codec per --qualities (repeat the option for another)"),
        (["--bootstrap", "100000000"], "--bootstrap: '100000000': must be ≤ 100000"),
        (["--data-dir", ""], "--data-dir: an empty path"),
        (["--codecs", "jpeg", "--anchor", "webp"], "--anchor webp: not among --codecs"),
    ],
)  # fmt: skip
def test_every_bad_argument_is_one_line_and_exit_2(tmp_path, capsys, arguments, message):
    assert main(["run", "--out", str(tmp_path / "run"), "--no-progress", *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_out_pointing_to_a_file_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["run", "--out", str(tmp_path / "file"), "--codecs", "jpeg", "--limit", "2"]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err


def test_qualities_for_all_codecs_and_one_codec_combine_in_any_order():
    from bench.arguments import quality_spec
    from bench.runner import resolve_qualities

    def resolve(specs):
        return resolve_qualities([quality_spec(spec) for spec in specs], ["jpeg", "webp"])

    assert resolve(["jpeg=5,95", "10"]) == {"jpeg": (5.0, 95.0), "webp": (10.0,)}
    assert resolve(["10", "jpeg=5,95"]) == {"jpeg": (5.0, 95.0), "webp": (10.0,)}


def _small_run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "4", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify"]) == 0  # fmt: skip
    return out


def test_an_emptied_database_is_refused_and_good_tables_survive(tmp_path, capsys):
    out = _small_run(tmp_path)
    before = (out / "results.csv").read_text()
    (out / "results.sqlite").write_bytes(b"")
    assert main(["report", str(out)]) == 2
    assert "no results table" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == before


def test_a_corrupt_database_is_refused_not_read_as_fewer_rows(tmp_path, capsys):
    out = _small_run(tmp_path)
    data = bytearray((out / "results.sqlite").read_bytes())
    assert len(data) > 3 * 4096
    for page in range(1, len(data) // 4096):  # garbage over every page's b-tree header, past the file header
        data[page * 4096 : page * 4096 + 64] = b"\xde\xad" * 32
    (out / "results.sqlite").write_bytes(bytes(data))
    for argv in (["report", str(out)], ["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "4",
                                        "--out", str(out), "--no-progress", "--no-classify"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "results.sqlite" in err and ("corrupt" in err or "not a usable" in err) and "already done" not in err



def test_a_damaged_runs_table_is_refused_by_every_command_that_reads_it(tmp_path, capsys):
    import contextlib
    import shutil
    import sqlite3

    out = _small_run(tmp_path)
    assert main(["baseline", str(out), "--out", str(tmp_path / "base.json")]) == 0
    copy = tmp_path / "copy"
    for damage, message in (("DROP TABLE runs", "no runs table"),
                            ("UPDATE runs SET info = 'not json'", "runs table row 1: info is not a JSON object"),
                            ("UPDATE runs SET info = '[1, 2]'", "runs table row 1: info is not a JSON object"),
                            ("ALTER TABLE runs RENAME COLUMN info TO other", "unreadable runs table")):  # fmt: skip
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(out, copy)
        with contextlib.closing(sqlite3.connect(copy / "results.sqlite")) as db:
            db.execute(damage)
            db.commit()
        for argv in (["report", str(copy), "--no-progress"], ["export", str(copy)],
                     ["check", str(copy), "--baseline", str(tmp_path / "base.json")],
                     ["baseline", str(copy), "--out", str(tmp_path / "b.json")],
                     ["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "4", "--out", str(copy), "--jobs", "1",
                      "--no-progress", "--no-classify"]):  # fmt: skip
            capsys.readouterr()
            assert main(argv) == 2, (damage, argv)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"{copy / 'results.sqlite'}: {message}" in err, (damage, argv, err)


def test_a_run_where_every_row_is_an_error_still_writes_tables_and_its_failures(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "e.png").write_bytes(b"")
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{images}", "--codecs", "jpeg", "--qualities", "50", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert "1 failed rows" in capsys.readouterr().out
    assert "e.png" in (out / "report.md").read_text() and (out / "aggregate.csv").is_file()
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    assert main(["baseline", str(out), "--out", str(tmp_path / "base.json")]) == 2  # it would pass any run failing alike
    assert "so there is nothing to freeze" in capsys.readouterr().err and not (tmp_path / "base.json").exists()
    (out / "results.sqlite").rename(tmp_path / "db")
    (out / "results.sqlite").mkdir()
    assert main(["report", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: {out / 'results.sqlite'}: not a file, so not a results database\n"


def test_check_and_report_work_on_a_read_only_run_directory(tmp_path):
    import stat

    out = _small_run(tmp_path)
    assert main(["baseline", str(out), "--out", str(tmp_path / "base.json")]) == 0
    for path in [out, *out.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        assert main(["check", str(out), "--baseline", str(tmp_path / "base.json")]) == 0
    finally:
        for path in [out, *out.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_report_out_writes_elsewhere_and_leaves_the_run_directory_as_it_was(tmp_path, capsys, monkeypatch):
    import errno

    from bench import assets, tables

    out = _small_run(tmp_path)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert main(["report", str(out), "--out", str(tmp_path / "elsewhere" / "rep"), "--no-progress"]) == 0
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    written = tmp_path / "elsewhere" / "rep"
    assert {"results.csv", "aggregate.csv", "bd.csv", "report.md", "report.html"} <= {p.name for p in written.iterdir()}
    assert any((written / "plots").glob("rd-*.png"))
    assert (written / "aggregate.csv").read_bytes() == before[out / "aggregate.csv"]
    capsys.readouterr()

    def read_only(path, *args, **kwargs):  # what a read-only run directory gives (root ignores permission bits)
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(tables, "atomic_write", read_only)
    assert main(["report", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: {out}: cannot write its tables there (Read-only file system); "
                                       "write them elsewhere with --out DIR\n")
    monkeypatch.undo()

    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(assets, "ASSET_ROOT", tmp_path / "committed")
    example = tmp_path / "committed" / "reports" / "example"
    example.mkdir(parents=True)
    (example / "report.md").write_text("committed")
    for target, message in [(tmp_path / "file", "exists and is not a directory"),
                            (tmp_path / "other-run", "is another run's directory"),
                            (example, "inside the committed reports/ folder; add --force")]:  # fmt: skip
        if target.name == "other-run":
            _small_run(tmp_path / "o").rename(target)
        assert main(["report", str(out), "--out", str(target), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert (example / "report.md").read_text() == "committed"
    assert main(["report", str(out), "--out", str(example), "--force", "--no-progress"]) == 0
    assert main(["report", str(out), "--out", str(out), "--no-progress"]) == 0  # the run directory itself: as without


def test_no_command_writes_into_a_committed_folder(tmp_path, capsys, monkeypatch):
    from bench import assets

    out = _small_run(tmp_path)
    monkeypatch.setattr(assets, "ASSET_ROOT", tmp_path / "committed")
    for folder in assets.COMMITTED_FOLDERS:
        (tmp_path / "committed" / folder / "x").mkdir(parents=True)
        for argv in (["run", "--codecs", "jpeg", "--limit", "1", "--no-classify", "--no-progress"],
                     ["export", str(out)], ["report", str(out), "--no-progress"]):  # fmt: skip
            assert main([*argv, "--out", str(tmp_path / "committed" / folder / "x")]) == 2
            assert f"inside the committed {folder}/ folder" in capsys.readouterr().err
        assert not any((tmp_path / "committed" / folder / "x").iterdir())


def test_a_run_directory_never_mixes_two_selections(tmp_path, capsys):
    out = _small_run(tmp_path)
    for extra in (["--seed", "1"], ["--limit", "5"], ["--split", "test"]):
        argv = ["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "4", "--out", str(out), "--no-progress",
                "--no-classify", *extra]  # fmt: skip
        assert main(argv) == 2
        assert "holds a run of another selection" in capsys.readouterr().err


def test_an_image_over_the_pixel_budget_is_an_error_row_not_a_memory_bomb(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (3000, 3000), (10, 20, 30)).save(data / "big.png")  # 9 Mpx, a few KB on disk
    Image.new("RGB", (64, 64), (10, 20, 30)).save(data / "small.png")
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{data}", "--codecs", "jpeg", "--qualities", "50", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--max-pixels", "1000000"]) == 0  # fmt: skip
    frame = pd.read_csv(out / "results.csv").set_index("image")
    assert "exceeds the pixel budget of 1000000 (--max-pixels)" in frame.loc["big.png", "error"]
    assert pd.isna(frame.loc["small.png", "error"])


def test_disk_full_ends_with_one_line_naming_the_run_directory(tmp_path, capsys, monkeypatch):
    import errno

    from bench import store

    def full(self, rows):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(store.ResultStore, "add", full)
    out = tmp_path / "run"
    assert main(["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full while writing" in err and str(out) in err and "Traceback" not in err


def test_tables_have_their_schema_types_and_the_usual_permissions(tmp_path):
    import os
    import stat

    out = _small_run(tmp_path)
    frame = pd.read_parquet(out / "results.parquet")
    assert frame["ms_ssim"].dtype == "float64" and frame["bytes"].dtype == "Int64"  # ms_ssim is all NaN on tiles
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "aggregate.parquet", "report.html"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask


def test_the_report_answers_first_and_shows_a_runnable_command(tmp_path):
    out = tmp_path / "run dir"
    assert main(["run", "--codecs", "jpeg,webp", "--qualities", "10,50,90", "--limit", "3", "--out", str(out),
                 "--jobs", "1", "--no-progress", "--no-classify"]) == 0  # fmt: skip
    markdown = (out / "report.md").read_text()
    headings = re.findall(r"^#{2,3} (.+)$", markdown, flags=re.M)
    assert headings[0].startswith("Dataset") and headings[1].startswith("Best codec") and headings[-1] == "Run"
    assert f"python -m bench run --codecs jpeg,webp --qualities 10,50,90 --limit 3 --out '{out}'" in markdown


@pytest.mark.parametrize(
    "argv",
    [["datasets", "manifest", "eurosat", "--out", "datasets/manifests/eurosat-seed0.csv"],
     ["classifier", "train", "--out", "codecs/classifier"],
     ["classifier", "views", "--out", "codecs/classifier"],
     ["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "3", "--out", "codecs"]],
    ids=["manifest", "classifier", "classifier-views", "checkpoint"],
)  # fmt: skip
def test_commands_never_overwrite_a_committed_asset_without_force(argv, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    before = {path: path.stat().st_mtime_ns for path in Path("datasets/manifests").glob("*.csv")}
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert before == {path: path.stat().st_mtime_ns for path in Path("datasets/manifests").glob("*.csv")}


def test_classifier_views_without_a_card_names_it(tmp_path, capsys):
    assert main(["classifier", "views", "--out", str(tmp_path)]) == 2
    assert f"no classifier card {tmp_path / 'eurosat.json'}" in capsys.readouterr().err


def test_a_manifest_goes_to_runs_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["datasets", "manifest", "eurosat"]) == 0
    assert (tmp_path / "runs" / "manifests" / "eurosat-seed0.csv").is_file()


def test_a_database_from_before_a_metric_existed_is_still_reported(tmp_path):
    import sqlite3

    out = _small_run(tmp_path)
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("ALTER TABLE results DROP COLUMN psnr_y")
    assert main(["report", str(out)]) == 0


def test_large_images_get_per_image_bd_rates(tmp_path):
    from PIL import Image

    data = tmp_path / "large"
    data.mkdir()
    tiles = sorted((SAMPLE_DIR / "Residential").glob("*.jpg"))[:3]
    for index, tile in enumerate(tiles):  # 256×256 mosaics of real tiles
        Image.open(tile).convert("RGB").resize((256, 256)).save(data / f"m{index}.png")
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{data}", "--codecs", "jpeg,webp", "--qualities", "10,40,70,90",
                 "--out", str(out), "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    markdown = (out / "report.md").read_text()
    assert "#### Image by image" in markdown and "| webp | 3 |" in markdown
    assert list((out / "plots").glob("per-image-bd-*.png"))


def test_top_level_help_is_plain_text_and_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and "Benchmark image codecs" in out
    for command in ("run", "codecs", "datasets", "train", "classifier", "latent", "weights", "report", "baseline",
                    "check", "export"):  # fmt: skip
        assert f"    {command}" in out


def test_report_shows_its_progress_unless_told_not_to(tmp_path, capsys):
    out = _small_run(tmp_path)
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "report: 100%" in capsys.readouterr().err
    assert main(["report", str(out), "--no-progress"]) == 0
    assert "report:" not in capsys.readouterr().err


def test_unknown_names_anywhere_are_usage_errors_not_internal_ones(tmp_path, capsys):
    out = _small_run(tmp_path)
    for argv in (["run", "--codecs", "jpgg", "--qualities", "10", "--out", str(tmp_path / "x")],
                 ["datasets", "manifest", "eurosta", "--out", str(tmp_path / "m.csv")],
                 ["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--dataset", "eurosta"],
                 ["report", str(out), "--anchor", "jpgg"], ["baseline", str(out), "--anchor", "jpgg"],
                 ["weights", "download", "--qualities", "x"],
                 ["run", "--codecs", "jpeg", "--reference", str(tmp_path / "none.json"), "--out", str(tmp_path / "y")]):  # fmt: skip
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "internal error" not in err, (argv, err)
    assert not (tmp_path / "y").exists()  # a bad --reference stops the run before it sweeps


def test_a_replaced_image_loses_its_gallery_crops_too(tmp_path):
    from bench.store import ResultStore

    with ResultStore(tmp_path / "r.sqlite") as store:
        row = {"dataset": "d", "image": "a", "codec": "jpeg", "quality": 1.0, "crop_png": b"x", "crop_png_original": b"o"}
        store.add([row])
        assert len(store.crops()) == 2
        store.forget("d", ["a"])
        assert store.crops().empty


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--arch", "cvae", "--lmbda", "-1", "--quality", "1"], "--lmbda: '-1': must be > 0"),
        (["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "256"], "--quality: '256': must be ≤ 255"),
        (["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--stages", "99"], "--stages: '99': must be ≤ 8"),
        (["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--lr", "nan"], "--lr: 'nan': must be > 0"),
        (["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--steps", "0"], "--steps: '0': must be ≥ 1"),
        (["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--split-seed", "-1"], "--split-seed: '-1'"),
        (["classifier", "train", "--copies", "0"], "--copies: '0': must be ≥ 1"),
        (["latent", "--arch", "jpeg"], "--arch: invalid choice: 'jpeg'"),
        (["latent", "--train-limit", "0"], "--train-limit: '0': must be ≥ 1"),
        (["datasets", "manifest", "--seed", "-1"], "--seed: '-1': must be ≥ 0"),
        (["codecs", "--codec-file", "/tmp"], "--codec-file: '/tmp': a codec file is a .toml file"),
    ],
)  # fmt: skip
def test_nonsense_numbers_of_every_command_are_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_path_that_cannot_be_written_is_a_usage_error_naming_it(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for argv in (["run", "--codecs", "jpeg", "--limit", "1", "--out", str(tmp_path / "file" / "run")],
                 ["datasets", "manifest", "--out", str(tmp_path / "file" / "m.csv")]):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {tmp_path / 'file'}") and err.count("\n") == 1 and "internal" not in err, err


def test_an_unreachable_scheduler_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    assert main(["run", "--codecs", "jpeg", "--limit", "1", "--out", str(tmp_path / "run"), "--scheduler", "nope"]) == 2
    assert "--scheduler nope: cannot connect" in capsys.readouterr().err


def test_baseline_and_manifest_never_replace_a_file_of_another_kind(tmp_path, capsys):
    out = _small_run(tmp_path)
    database = (out / "results.sqlite").read_bytes()
    for argv in (["baseline", str(out), "--out", str(out / "results.sqlite")],
                 ["datasets", "manifest", "--out", str(out / "results.sqlite")]):  # fmt: skip
        assert main(argv) == 2
        assert "results.sqlite: a" in capsys.readouterr().err
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    (tmp_path / "notes.csv").write_text("a,b\n")
    for argv, path in ((["baseline", str(out), "--out"], "notes.json"), (["datasets", "manifest", "--out"], "notes.csv")):
        assert main([*argv, str(tmp_path / path)]) == 2
        assert "exists and is not a" in capsys.readouterr().err
    assert (out / "results.sqlite").read_bytes() == database and (tmp_path / "notes.json").read_text() == '{"mine": 1}'
    assert main(["baseline", str(out), "--out", str(tmp_path / "base.json")]) == 0
    assert main(["baseline", str(out), "--out", str(tmp_path / "base.json")]) == 0  # updating a baseline is fine


def test_a_run_directory_never_mixes_two_image_populations(tmp_path, capsys):
    import json
    import sqlite3

    out = _small_run(tmp_path)
    with sqlite3.connect(out / "results.sqlite") as db:
        (info,) = db.execute("SELECT info FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        info = json.loads(info)
        info["dataset_identities"]["eurosat"].update(kind="full", images=26000)  # as if run on the full dataset
        db.execute("UPDATE runs SET info = ?", (json.dumps(info),))
    argv = ["run", "--codecs", "jpeg", "--qualities", "50", "--limit", "4", "--out", str(out), "--no-progress", "--no-classify"]
    assert main(argv) == 2
    assert "holds eurosat rows of other images: kind full (stored) vs sample (now), images 26000 (stored) vs 500" in capsys.readouterr().err


def test_a_selection_of_no_images_is_refused_not_an_empty_run(tmp_path, capsys):
    for extra, message in ((["--split", "val"], "eurosat: split val selects no images (shipped sample"),
                           (["--datasets", "folder:"], "folder: needs a path")):  # fmt: skip
        assert main(["run", "--codecs", "jpeg", "--out", str(tmp_path / "run"), "--no-progress", *extra]) == 2
        assert message in capsys.readouterr().err


def test_file_and_folder_names_that_are_not_utf8_are_measured_not_fatal(tmp_path, capsys):
    import os

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for name in (b"x\xe9y.png", b"x\\xe9y.png", b"ok.png", b"class_\xff/a.png"):  # a byte, and a backslash
        path = tmp_path / "data" / os.fsdecode(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    out = tmp_path / "run"
    assert main(["run", "--datasets", f"folder:{tmp_path / 'data'}", "--codecs", "jpeg", "--qualities", "50",
                 "--out", str(out), "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    images = set(pd.read_csv(out / "results.csv")["image"])
    assert images == {"x\\xe9y.png", "x\\\\xe9y.png", "ok.png", "class_\\xff/a.png"}  # four files, four ids
    assert main(["run", "--codecs", "jpeg", "--out", os.fsdecode(bytes(tmp_path / "run") + b"\xff")]) == 2
    assert "the name is not valid UTF-8" in capsys.readouterr().err


def test_a_refused_resume_forgets_no_stored_row(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for index in range(3):
        Image.new("RGB", (16, 16), (index * 40, 0, 0)).save(data / f"im{index}.png")
    argv = ["run", "--datasets", f"folder:{data}", "--codecs", "jpeg", "--qualities", "50", "--out", str(tmp_path / "run"),
            "--jobs", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    Image.new("RGB", (16, 16), (0, 255, 0)).save(data / "im0.png")  # replaced: its rows would be measured again...
    Image.new("RGB", (16, 16), (0, 0, 255)).save(data / "im3.png")  # ...but a new image makes it another population
    assert main(argv) == 2
    assert "rows of other images: images 3 (stored) vs 4 (now)" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "run" / "results.csv")) == 3
    from bench.store import ResultStore

    with ResultStore(tmp_path / "run" / "results.sqlite") as store:
        assert len(store.frame()) == 3
