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
