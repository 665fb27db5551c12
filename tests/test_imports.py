"""Classical work never pays for torch and CompressAI (~5 s of imports): checked in a fresh interpreter."""

import subprocess
import sys

import pytest

_PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("HEAVY:" + ",".join(m for m in ("torch", "compressai") if m in sys.modules)))
sys.argv = ["bench", *sys.argv[1:]]
runpy.run_module("bench", run_name="__main__")
"""


def _heavy_modules(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.rsplit("HEAVY:", 1)[1].strip()


def test_listing_codecs_imports_neither_torch_nor_compressai():
    assert _heavy_modules("codecs") == ""


@pytest.mark.parametrize("classify", [False, True], ids=["no-classify", "unlabelled"])
def test_a_classical_sweep_and_its_report_import_neither(tmp_path, classify):
    out = tmp_path / "run"
    if classify:  # an unlabelled folder: nothing to classify, so no reason to load torch
        (tmp_path / "images").mkdir()
        from PIL import Image

        Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / "images" / "a.png")
        args = ["--datasets", f"folder:{tmp_path / 'images'}"]
    else:
        args = ["--limit", "3", "--no-classify"]
    assert _heavy_modules("run", *args, "--codecs", "jpeg,webp", "--out", str(out), "--jobs", "1", "--no-progress") == ""
    assert _heavy_modules("report", str(out)) == ""
